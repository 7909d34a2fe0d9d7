"""GIXD pattern simulator (own code): fibre-textured thin films on a flat detector.

Physics, step by step
---------------------
1. **Reflections.** The reciprocal lattice of a structure (ASE ``Atoms``, any CIF
   ASE reads), ``G = 2π (h, k, l) · inv(cell)ᵀ``, with the kinematic structure factor
   ``F(G) = Σ_j f_j(|G|) exp(2πi h·x_j)``; ``f_j ≈ Z_j exp(-B s²)`` with
   ``s = |G|/4π`` (a Debye–Waller-like fall-off instead of tabulated form factors).
2. **Fibre texture.** Crystallites share one crystal plane (hkl) parallel to the
   substrate and are free to rotate about its normal n̂: each G lands at
   ``q_z = G·n̂``, ``q_xy = sqrt(|G|² - q_z²)``, ``χ = atan2(q_xy, q_z)``. A
   mosaicity (Gaussian tilt spread, deg) smears it along the arc of constant |q|.
3. **Powder fraction.** A fraction of the crystallites is randomly oriented and
   gives a Debye–Scherrer ring over all χ, intensity summed over the G of one |G|.
4. **Crystallite size.** Scherrer width ``Δq (FWHM) = 2π K / L`` (K = 0.9) added
   in quadrature to the instrumental width.
5. **Grazing incidence.** The pattern is drawn on a detector whose pixels get their
   (|q|, χ) from pyFAI's fibre units (incidence angle included); below the sample
   horizon (exit angle < 0) the film shadows the detector; the Yoneda band
   (exit angle = critical angle) is enhanced; the reciprocal-space region that a flat
   detector cannot reach (the missing wedge near the q_z axis) follows from pyFAI's
   geometry when the detector image is converted back to (|q|, χ).
6. **Detector.** Beamstop, module gaps (rows and columns of pixels), a smooth
   background with an amorphous halo, Poisson noise, hot pixels.

Labels are boxes in polar pixels (x along |q|, y along χ) of the features that
stand out of the noise: ``peak`` (textured: spots and mosaic segments) and
``ring`` (powder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.diffraction.gixd._geometry import PolarConverter, PolarGrid

__all__ = ["CATEGORIES", "Phase", "Feature", "builtin_structure", "BUILTIN", "reflections",
           "phase_features", "render_polar", "Pattern", "simulate_pattern", "random_phases",
           "TRAIN_STRUCTURES", "UNSEEN_STRUCTURES"]

CATEGORIES = {1: "peak", 2: "ring"}
SCHERRER_K = 0.9
B_FACTOR_A2 = 4.0      # Å², fall-off of the form factors
INSTRUMENT_FWHM = 0.12  # 1/nm


def builtin_structure(name: str) -> Any:
    """A small library of thin-film structures (ASE Atoms): perovskite, pbi2, intermediate,
    au, pentacene (the last one is kept out of training: the unseen structure)."""
    from ase import Atoms
    from ase.build import bulk

    if name == "perovskite":      # cubic CsPbI3-like, a = 6.29 Å
        a = 6.29
        return Atoms("CsPbI3", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0),
                                                 (.5, 0, .5), (0, .5, .5)],
                     cell=[a, a, a], pbc=True)
    if name == "pbi2":            # hexagonal PbI2, P-3m1
        from ase.geometry import cellpar_to_cell

        return Atoms("PbI2", scaled_positions=[(0, 0, 0), (1 / 3, 2 / 3, .265), (2 / 3, 1 / 3, .735)],
                     cell=cellpar_to_cell([4.557, 4.557, 6.979, 90, 90, 120]), pbc=True)
    if name == "intermediate":    # an orthorhombic solvate-like precursor (illustrative)
        return Atoms("Pb2I4S2", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.2, .1, .3), (.8, .6, .7),
                                                  (.3, .7, .2), (.7, .3, .8), (.5, 0, .15),
                                                  (0, .5, .65)],
                     cell=[4.60, 8.52, 11.20], pbc=True)
    if name == "au":
        return bulk("Au", "fcc", a=4.078, cubic=True)
    if name == "pentacene":       # thin-film phase cell (approximate), two molecules as C rods
        from ase.geometry import cellpar_to_cell

        cell = cellpar_to_cell([5.96, 7.60, 15.61, 81.25, 86.56, 89.80])
        pos = [(0, 0, z) for z in np.linspace(0.1, 0.9, 6)] + \
              [(.5, .5, z) for z in np.linspace(0.12, 0.88, 6)]
        return Atoms("C12", scaled_positions=pos, cell=cell, pbc=True)
    raise InputError(f"structure: unknown built-in structure {name!r}; known: "
                     f"{', '.join(BUILTIN)} (or give a CIF file)")


BUILTIN = ("perovskite", "pbi2", "intermediate", "au", "pentacene")
TRAIN_STRUCTURES = {"perovskite": [(1, 0, 0), (1, 1, 0), (1, 1, 1)], "pbi2": [(0, 0, 1), (1, 0, 0)],
                    "intermediate": [(0, 1, 0), (0, 0, 1)], "au": [(1, 1, 1), (1, 0, 0)]}
UNSEEN_STRUCTURES = {"pentacene": [(0, 0, 1)]}


def load_structure(spec: str) -> Any:
    """A built-in name or a structure file that ASE reads (CIF, POSCAR, ...)."""
    if spec in BUILTIN:
        return builtin_structure(spec)
    from pathlib import Path

    p = Path(spec)
    if not p.exists():
        raise InputError(f"structure: {spec!r} is neither a built-in structure ({', '.join(BUILTIN)}) "
                         "nor an existing file")
    import ase.io

    try:
        return ase.io.read(p)
    except Exception as exc:
        raise InputError(f"structure: {spec}: ASE cannot read it ({exc})") from None


@dataclass(frozen=True)
class Phase:
    """One textured phase of the film."""

    structure: str
    orientation: tuple[int, int, int] = (0, 0, 1)   # (hkl) parallel to the substrate
    mosaicity_deg: float = 3.0
    powder_fraction: float = 0.0
    size_nm: float = 30.0
    strain: float = 0.0                             # isotropic lattice strain (a -> a (1+ε))
    scale: float = 1.0                              # peak counts of the strongest feature


@dataclass(frozen=True)
class Feature:
    """One feature of the pattern in (|q|, χ)."""

    q: float          # 1/nm
    chi: float        # deg
    sigma_q: float    # 1/nm
    sigma_chi: float  # deg (rings: ignored)
    height: float     # counts at the maximum
    category: int     # 1 peak, 2 ring
    phase: int = 0
    hkl: tuple[int, int, int] = (0, 0, 0)


def reflections(atoms: Any, q_max: float, strain: float = 0.0) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """(G vectors (n, 3) in 1/nm, hkl (n, 3), |F|² (n,)) of all G with 0 < |G| <= q_max."""
    cell = np.asarray(atoms.cell) * (1 + strain)
    rec = 2 * np.pi * np.linalg.inv(cell).T * 10.0   # rows b1, b2, b3 in 1/nm
    nmax = [int(np.ceil(q_max / np.linalg.norm(b))) + 1 for b in rec]
    hh, kk, ll = np.meshgrid(*[np.arange(-n, n + 1) for n in nmax], indexing="ij")
    hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
    g = hkl @ rec
    gn = np.linalg.norm(g, axis=1)
    keep = (gn > 1e-9) & (gn <= q_max)
    hkl, g, gn = hkl[keep], g[keep], gn[keep]
    frac = atoms.get_scaled_positions()
    z = atoms.get_atomic_numbers().astype(float)
    s2 = (gn / 10.0 / (4 * np.pi)) ** 2                # (1/Å)²
    f = z[None, :] * np.exp(-B_FACTOR_A2 * s2)[:, None]
    phase = np.exp(2j * np.pi * hkl @ frac.T)
    intensity = np.abs((f * phase).sum(axis=1)) ** 2
    strong = intensity > 1e-6 * max(intensity.max(), 1e-30)
    return g[strong], hkl[strong], intensity[strong]


def phase_features(phase: Phase, q_range: tuple[float, float], *, index: int = 0,
                   atoms: Any = None) -> list[Feature]:
    """Textured peaks and powder rings of one phase (heights before the visibility cut)."""
    atoms = atoms if atoms is not None else load_structure(phase.structure)
    g, hkl, inten = reflections(atoms, q_range[1] + 1.0, phase.strain)
    if len(g) == 0:
        return []
    cell = np.asarray(atoms.cell) * (1 + phase.strain)
    rec = 2 * np.pi * np.linalg.inv(cell).T * 10.0
    n = np.asarray(phase.orientation, float) @ rec
    if np.linalg.norm(n) == 0:
        raise InputError(f"orientation: (hkl) = {phase.orientation} is not a direction")
    n /= np.linalg.norm(n)
    gn = np.linalg.norm(g, axis=1)
    qz = g @ n
    qxy = np.sqrt(np.clip(gn ** 2 - qz ** 2, 0, None))
    chi = np.degrees(np.arctan2(qxy, qz))
    lorentz = 1.0 / np.maximum(gn, 1.0) ** 2
    inten = inten * lorentz
    fwhm_q = np.hypot(2 * np.pi * SCHERRER_K / phase.size_nm, INSTRUMENT_FWHM)
    sig_q = fwhm_q / 2.3548
    feats: list[Feature] = []
    inrange = (gn >= q_range[0]) & (gn <= q_range[1])
    # textured: G with q_z >= 0, merged when they land on the same (|q|, χ)
    tex = inrange & (qz >= -1e-6)
    key = np.round(np.c_[gn / 0.02, chi / 0.2]).astype(np.int64)
    ring_key = np.round(gn / 0.02).astype(np.int64)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(tex):
        groups.setdefault((int(key[i, 0]), int(key[i, 1])), []).append(i)
    tex_list = []
    for idx in groups.values():
        i0 = idx[0]
        s_chi = float(np.hypot(phase.mosaicity_deg, np.degrees(sig_q / gn[i0])))
        # integrated counts spread over the arc: height ~ I / (σχ √2π)
        tex_list.append((float(gn[i0]), float(chi[i0]), s_chi, float(inten[idx].sum()),
                         tuple(int(v) for v in hkl[i0])))
    rings: dict[int, list[int]] = {}
    for i in np.flatnonzero(inrange):
        rings.setdefault(int(ring_key[i]), []).append(i)
    raw = [(t[3] / (t[2] * np.sqrt(2 * np.pi)) * (1 - phase.powder_fraction), "t", t) for t in tex_list]
    raw += [(inten[idx].sum() / 90.0 * phase.powder_fraction, "r", idx) for idx in rings.values()]
    top = max((r[0] for r in raw), default=0.0) or 1.0
    for h, kind, t in raw:
        if h <= 0:
            continue
        height = phase.scale * h / top
        if kind == "t":
            feats.append(Feature(t[0], t[1], float(sig_q), t[2], height, 1, index, t[4]))
        else:
            i0 = t[0]
            feats.append(Feature(float(gn[i0]), 45.0, float(sig_q), 90.0, height, 2, index,
                                 tuple(int(v) for v in hkl[i0])))
    return feats


def render_polar(features: list[Feature], grid: PolarGrid) -> np.ndarray:
    """Sum of the features on a polar grid (n_chi, n_q), counts (no background, no noise)."""
    q = grid.q_axis
    chi = grid.chi_axis
    img = np.zeros(grid.shape, np.float64)
    for f in features:
        j0 = max(0, int((f.q - 5 * f.sigma_q - grid.q_min) / grid.dq))
        j1 = min(grid.n_q, int((f.q + 5 * f.sigma_q - grid.q_min) / grid.dq) + 2)
        if j1 <= j0:
            continue
        gq = np.exp(-0.5 * ((q[j0:j1] - f.q) / f.sigma_q) ** 2)
        if f.category == 2:
            img[:, j0:j1] += f.height * gq[None, :]
            continue
        # χ profile, mirrored at χ = 0 (the fibre is symmetric about the q_z axis)
        gc = np.exp(-0.5 * ((chi - f.chi) / f.sigma_chi) ** 2) + \
            np.exp(-0.5 * ((chi + f.chi) / f.sigma_chi) ** 2)
        img[:, j0:j1] += f.height * gc[:, None] * gq[None, :]
    return img


@dataclass
class Pattern:
    """One simulated frame: detector image, polar image, labels."""

    detector: np.ndarray                     # (rows, cols) counts
    polar: np.ndarray                        # (n_chi, n_q) counts
    boxes: np.ndarray                        # (n, 4) x0, y0, x1, y1 polar pixels
    labels: np.ndarray                       # (n,) category ids
    q: np.ndarray                            # (n,) 1/nm feature centres
    chi: np.ndarray                          # (n,) deg
    sigma_q: np.ndarray                      # (n,) 1/nm
    phase: np.ndarray                        # (n,) phase index
    extra: dict[str, Any] = field(default_factory=dict)


def random_phases(rng: np.random.Generator, structures: dict[str, list[tuple[int, int, int]]],
                  n_max: int = 3) -> list[Phase]:
    """1..n_max random phases: structure, orientation, mosaicity, size, powder fraction."""
    names = list(structures)
    n = int(rng.integers(1, min(n_max, len(names)) + 1))
    chosen = rng.choice(names, size=n, replace=False)
    out = []
    for name in chosen:
        orients = structures[name]
        out.append(Phase(structure=str(name), orientation=tuple(orients[rng.integers(len(orients))]),
                         mosaicity_deg=float(np.exp(rng.uniform(np.log(0.6), np.log(12.0)))),
                         powder_fraction=float(0.0 if rng.random() < 0.35 else rng.uniform(0.05, 0.7)),
                         size_nm=float(np.exp(rng.uniform(np.log(8.0), np.log(80.0)))),
                         strain=float(rng.uniform(-0.02, 0.02)),
                         scale=float(np.exp(rng.uniform(np.log(40.0), np.log(2000.0))))))
    return out


def _background(q: np.ndarray, rng: np.random.Generator, level: float) -> np.ndarray:
    halo_q = rng.uniform(12, 18)
    return level * (0.3 + 2.0 * np.exp(-q / rng.uniform(3, 8))
                    + rng.uniform(0.2, 1.0) * np.exp(-0.5 * ((q - halo_q) / rng.uniform(2, 5)) ** 2))


def simulate_pattern(phases: list[Phase], conv: PolarConverter, *, rng: np.random.Generator,
                     background: float | None = None, critical_deg: float | None = None,
                     gaps: bool = True, hot_pixels: int | None = None, vis_sigma: float = 4.0,
                     structures: dict[str, Any] | None = None) -> Pattern:
    """One GIXD frame: features drawn on the detector through the pyFAI fibre geometry,
    detector effects and Poisson noise, converted back to the polar grid; labels kept for
    the features whose peak stands ``vis_sigma`` standard deviations above the background."""
    grid = conv.grid
    feats: list[Feature] = []
    for i, ph in enumerate(phases):
        atoms = (structures or {}).get(ph.structure)
        feats.extend(phase_features(ph, (grid.q_min, grid.q_max), index=i, atoms=atoms))
    bg_level = float(background if background is not None else np.exp(rng.uniform(np.log(2), np.log(30))))
    alpha_c = float(critical_deg if critical_deg is not None else rng.uniform(0.12, 0.3))
    # fine polar rendering, then each detector pixel takes the value at its (|q|, χ)
    fine = PolarGrid(n_q=4 * grid.n_q, n_chi=4 * grid.n_chi, q_min=grid.q_min - 1.0,
                     q_max=grid.q_max + 1.0, chi_min=0.0, chi_max=90.0)
    polar_fine = render_polar(feats, fine)
    q_pix, chi_pix, qz_pix = conv.pixel_q_chi
    x, y = fine.to_px(q_pix, np.minimum(chi_pix, 90.0))
    xi = np.clip(np.floor(x - 0.5).astype(np.int64), 0, fine.n_q - 2)
    yi = np.clip(np.floor(y - 0.5).astype(np.int64), 0, fine.n_chi - 2)
    fx = np.clip(x - 0.5 - xi, 0, 1)
    fy = np.clip(y - 0.5 - yi, 0, 1)
    sig = (polar_fine[yi, xi] * (1 - fx) * (1 - fy) + polar_fine[yi, xi + 1] * fx * (1 - fy)
           + polar_fine[yi + 1, xi] * (1 - fx) * fy + polar_fine[yi + 1, xi + 1] * fx * fy)
    bg = _background(q_pix, rng, bg_level)
    # exit angle: sin αf = q_z/k - sin αi; Yoneda peak at αf = αc, shadow below the horizon
    sin_af = qz_pix / conv.k - np.sin(np.radians(conv.incidence_deg))
    af = np.degrees(np.arcsin(np.clip(sin_af, -1, 1)))
    yoneda = 1.0 + rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((af - alpha_c) / 0.05) ** 2)
    lam = (sig + bg) * yoneda
    lam[af < 0] *= 0.02
    rows, cols = conv.shape
    mask = np.zeros(conv.shape, bool)
    rr, cc = np.ogrid[:rows, :cols]
    beam = np.unravel_index(np.argmin(q_pix), q_pix.shape)
    mask |= (rr - beam[0]) ** 2 + (cc - beam[1]) ** 2 < rng.uniform(8, 16) ** 2
    if gaps:
        for _ in range(int(rng.integers(0, 3))):
            c0 = int(rng.integers(cols // 5, cols - 8))
            mask[:, c0:c0 + int(rng.integers(2, 6))] = True
        for _ in range(int(rng.integers(0, 3))):
            r0 = int(rng.integers(rows // 5, rows - 8))
            mask[r0:r0 + int(rng.integers(2, 6)), :] = True
    counts = rng.poisson(np.clip(lam, 0, 1e9)).astype(np.float32)
    n_hot = int(hot_pixels if hot_pixels is not None else rng.integers(0, 6))
    if n_hot:
        counts[rng.integers(0, rows, n_hot), rng.integers(0, cols, n_hot)] = 1e5
    counts[mask] = 0
    polar = conv(counts, mask=mask.astype(np.int8))
    # labels: features whose maximum stands out of the local background
    cover = conv.coverage
    keep_boxes, keep_lab, keep_q, keep_chi, keep_sq, keep_ph = [], [], [], [], [], []
    keep_hkl = []
    bg_polar = _polar_of(conv, bg * yoneda, mask)
    for f in feats:
        # the box is ±2σ of the profile as the polar image shows it: a Gaussian of width σ
        # binned into pixels of width Δ has variance σ² + Δ²/12 (a peak narrower than a bin
        # is one bin wide in the image, not 4σ < 1 px)
        s_q = float(np.hypot(f.sigma_q, grid.dq / np.sqrt(12.0)))
        s_chi = float(np.hypot(f.sigma_chi, grid.dchi / np.sqrt(12.0)))
        x0, _ = grid.to_px(f.q - 2.0 * s_q, 0)
        x1, _ = grid.to_px(f.q + 2.0 * s_q, 0)
        xc = int(np.clip(grid.to_px(f.q, 0)[0], 0, grid.n_q - 1))
        if f.q < grid.q_min or f.q > grid.q_max:
            continue
        col = cover[:, xc]
        if not col.any():
            continue
        if f.category == 2:
            rows_ok = np.flatnonzero(col)
            y0, y1 = float(rows_ok[0]), float(rows_ok[-1] + 1)
            yc = int(rows_ok[len(rows_ok) // 2])
        else:
            _, y0 = grid.to_px(0, f.chi - 2.0 * s_chi)
            _, y1 = grid.to_px(0, f.chi + 2.0 * s_chi)
            yc = int(np.clip(grid.to_px(0, f.chi)[1], 0, grid.n_chi - 1))
            if not cover[yc, xc]:
                continue
            # the visible part of the arc: clip to covered rows of this column
            rows_ok = np.flatnonzero(col)
            y0, y1 = max(y0, float(rows_ok[0])), min(y1, float(rows_ok[-1] + 1))
            if y1 - y0 < 1.0:
                continue
        b = max(float(bg_polar[yc, xc]), 1.0)
        if f.height < vis_sigma * np.sqrt(b) or f.height < 3.0:
            continue
        box = [max(0.0, x0), max(0.0, y0), min(float(grid.n_q), x1), min(float(grid.n_chi), y1)]
        if box[2] - box[0] < 1.0 or box[3] - box[1] < 1.0:
            continue
        keep_boxes.append(box)
        keep_lab.append(f.category)
        keep_q.append(f.q)
        keep_chi.append(f.chi if f.category == 1 else np.nan)
        keep_sq.append(f.sigma_q)
        keep_ph.append(f.phase)
        keep_hkl.append(f.hkl)
    boxes = np.asarray(keep_boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(keep_lab, np.int64)
    order = _merge_overlaps(boxes, labels, np.asarray([1.0] * len(labels)))
    return Pattern(detector=counts, polar=polar, boxes=boxes[order], labels=labels[order],
                   q=np.asarray(keep_q, float)[order], chi=np.asarray(keep_chi, float)[order],
                   sigma_q=np.asarray(keep_sq, float)[order], phase=np.asarray(keep_ph)[order],
                   extra={"mask": mask,
                          "hkl": np.asarray(keep_hkl, np.int64).reshape(-1, 3)[order]})


def _polar_of(conv: PolarConverter, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return conv(np.asarray(image, np.float32), mask=mask.astype(np.int8))


def _merge_overlaps(boxes: np.ndarray, labels: np.ndarray, weight: np.ndarray,
                    iou_max: float = 0.5) -> np.ndarray:
    """Indices of boxes kept after dropping those that overlap a kept box of the same class by
    more than ``iou_max`` (ambiguous labels: two features in one place)."""
    from matterflow.diffraction.gixd._metrics import box_iou

    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-area * weight)
    kept: list[int] = []
    for i in order:
        if kept:
            same = [k for k in kept if labels[k] == labels[i]]
            if same and box_iou(boxes[[i]], boxes[same]).max() > iou_max:
                continue
        kept.append(int(i))
    return np.asarray(sorted(kept), np.int64)
