"""Kohn-Sham energy terms as Quantum ESPRESSO computes them, from a density, without QE.

QE's ``pw.x`` prints the free energy of a cell as

.. math::

    F = \\underbrace{E_\\mathrm{band} - \\int n\\,(v_H[n_\\mathrm{in}] + v_{xc}[n_\\mathrm{in} + n_c])}
        _\\text{one-electron} + E_H[n] + E_{xc}[n + n_c] + E_\\mathrm{Ewald} - TS

(plane waves, pseudopotentials; ``electrons.f90``: ``eband + deband``, ``ehart``,
``etxc``, ``ewld``, ``demet``). Here each term is computed from the valence density
:math:`n` on QE's dense FFT grid (e.g. MALA's ``.dens.npy``), the UPF pseudopotentials and
the Kohn-Sham eigenvalues (or a DOS):

- :math:`E_H = 2\\pi\\Omega\\sum_{G\\ne0}|n_G|^2/G^2` (Hartree units) by FFT;
- :math:`E_{xc}` through libxc (PySCF's binding ``pyscf.dft.libxc``; see :data:`FUNCTIONALS`),
  on the density plus the UPF core charge :math:`n_c` (``PP_NLCC``), which is built as QE
  does: :math:`n_c(G) = \\Omega^{-1}\\sum_a e^{-iG\\tau_a}\\int 4\\pi r^2 n_c(r) j_0(Gr)\\,dr`
  on the G-sphere :math:`G^2 \\le` ``ecutrho``. Gradients (GGA) are taken in G space
  on that sphere, and the GGA potential is :math:`v_\\rho - \\nabla\\cdot(2 v_\\sigma\\nabla n)`;
- :math:`E_\\mathrm{Ewald}` of the UPF valence charges ``z_valence``;
- :math:`E_\\mathrm{band}`, :math:`-TS` and the Fermi level from the eigenvalues and k weights
  with QE's smearing (Fermi-Dirac or Gaussian of width ``degauss``);
- the input density :math:`n_\\mathrm{in}` of the one-electron term is :math:`n` itself
  (self-consistent) or, to reproduce an SCF that QE stopped after its first iteration,
  the superposition of the UPF atomic densities (``PP_RHOATOM``) that QE started from,
  renormalised to the electron count.

Units: eV, Å in and out; atomic units inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.optimize import brentq
from scipy.special import erfc, expit

from matterflow.core.errors import ComputeError, InputError
from matterflow.core.registry import quantity
from matterflow.electrons.upf import Pseudopotential, radial_fourier

__all__ = ["FUNCTIONALS", "libxc_name", "grid_gvectors", "radial_density_on_grid",
           "hartree_energy_potential", "xc_energy_potential", "smearing_occupations",
           "fermi_from_eigenvalues", "band_terms_from_eigenvalues", "QeTerms", "qe_energy_terms"]

HARTREE_EV = 27.211386245988
RYDBERG_EV = HARTREE_EV / 2
BOHR_A = 0.52917721092

FUNCTIONALS = {
    "LDA-PZ": "LDA_X,LDA_C_PZ",
    "LDA-PW": "LDA_X,LDA_C_PW",
    "PBE": "GGA_X_PBE,GGA_C_PBE",
    "PBESOL": "GGA_X_PBE_SOL,GGA_C_PBE_SOL",
}
"""Supported functionals (matterflow name -> libxc functionals)."""

_ALIASES = {
    "PZ": "LDA-PZ", "LDA": "LDA-PZ", "SLA PZ": "LDA-PZ", "SLA PZ NOGX NOGC": "LDA-PZ",
    "LDA,PZ": "LDA-PZ", "LDA-PZ": "LDA-PZ",
    "PW": "LDA-PW", "SLA PW": "LDA-PW", "SLA PW NOGX NOGC": "LDA-PW", "LDA-PW": "LDA-PW",
    "PBE": "PBE", "SLA PW PBX PBC": "PBE", "SLA PW PBE PBE": "PBE", "GGA_X_PBE,GGA_C_PBE": "PBE",
    "PBESOL": "PBESOL", "SLA PW PSX PSC": "PBESOL",
}


def libxc_name(functional: str, *, where: str = "functional") -> str:
    """libxc functionals of a QE/UPF functional name; unsupported -> InputError listing them."""
    key = re.sub(r"[\s\-_]+", " ", functional.strip().upper())
    key = re.sub(r"\(.*\)", "", key).strip()
    canon = _ALIASES.get(key) or _ALIASES.get(key.replace(" ", "-"))
    if canon is None:
        raise InputError(f"{where}: functional {functional!r} is not supported; supported: "
                         f"{', '.join(FUNCTIONALS)} (QE names such as 'SLA PW PBX PBC', "
                         f"'SLA PZ NOGX NOGC' are accepted)")
    return FUNCTIONALS[canon]


# ----------------------------------------------------------------------------- grids

def _cell_bohr(atoms: Atoms) -> np.ndarray:
    cell = np.asarray(atoms.cell[:], dtype=float) / BOHR_A
    if abs(np.linalg.det(cell)) < 1e-8:
        raise InputError("atoms: the cell has zero volume; a periodic cell is required")
    return cell


def grid_gvectors(cell_bohr: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """G vectors (nx, ny, nz, 3) in 1/Bohr in FFT order (Miller indices of ``fftfreq``)."""
    b = 2 * np.pi * np.linalg.inv(cell_bohr).T
    m = [np.fft.fftfreq(n, 1.0 / n) for n in shape]
    return (m[0][:, None, None, None] * b[0] + m[1][None, :, None, None] * b[1]
            + m[2][None, None, :, None] * b[2])


def radial_density_on_grid(atoms: Atoms, pseudos: dict[str, Pseudopotential],
                           shape: tuple[int, int, int], *, ecutrho_ry: float, kind: str) -> np.ndarray:
    """Sum over atoms of a radial UPF density on the FFT grid (1/Bohr³), G-sphere ``ecutrho``.

    ``kind``: ``"core"`` (PP_NLCC, times 4πr²) or ``"atomic"`` (PP_RHOATOM, already 4πr²).
    Species without that field contribute nothing (core) or raise (atomic).
    """
    cell = _cell_bohr(atoms)
    vol = abs(np.linalg.det(cell))
    g = grid_gvectors(cell, shape)
    g2 = np.einsum("...i,...i->...", g, g)
    inside = g2 <= ecutrho_ry + 1e-8
    gnorm = np.sqrt(g2[inside])
    pos = np.asarray(atoms.get_positions(), dtype=float) / BOHR_A
    syms = np.array(atoms.get_chemical_symbols())
    rho_g = np.zeros(shape, dtype=complex)
    for sym in sorted(set(syms)):
        pp = pseudos[sym]
        if kind == "core":
            if pp.core_density is None:
                continue
            f = 4 * np.pi * pp.r**2 * pp.core_density
        else:
            if pp.atomic_density is None:
                raise InputError(f"{pp.path}: UPF field PP_RHOATOM is missing (needed for the "
                                 "starting density)")
            f = pp.atomic_density
        # radial transform on the distinct |G| (QE tabulates per G shell)
        gs, inv = np.unique(np.round(gnorm, 10), return_inverse=True)
        form = radial_fourier(pp.r, pp.rab, f, gs)[inv] / vol
        phase = np.exp(-1j * g[inside] @ pos[syms == sym].T).sum(axis=1)
        rho_g[inside] += form * phase
    return np.real(np.fft.ifftn(rho_g) * np.prod(shape))


def _to_g(f: np.ndarray) -> np.ndarray:
    return np.fft.fftn(f) / f.size


def _to_r(fg: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifftn(fg) * fg.size)


def hartree_energy_potential(n_bohr: np.ndarray, cell_bohr: np.ndarray) -> tuple[float, np.ndarray]:
    """Hartree energy (Ha) and potential (Ha, on the grid) of a periodic density (1/Bohr³)."""
    vol = abs(np.linalg.det(cell_bohr))
    g = grid_gvectors(cell_bohr, n_bohr.shape)
    g2 = np.einsum("...i,...i->...", g, g)
    ng = _to_g(n_bohr)
    g2[0, 0, 0] = np.inf
    vg = 4 * np.pi * ng / g2
    e_h = 0.5 * vol * float(np.sum(np.real(np.conj(ng) * vg)))
    return e_h, _to_r(vg)


def xc_energy_potential(n_bohr: np.ndarray, core_bohr: np.ndarray | None, cell_bohr: np.ndarray,
                        functional: str, *, ecutrho_ry: float | None = None
                        ) -> tuple[float, np.ndarray]:
    """E_xc[n + n_c] (Ha) and v_xc (Ha, grid) through libxc (``pyscf.dft.libxc``), spin-unpolarised.

    Gradients and the divergence of the GGA term by FFT, restricted to the G-sphere
    ``ecutrho_ry`` (Ry) when given, as QE does.
    """
    from pyscf.dft import libxc

    xc = libxc_name(functional)
    rho = n_bohr + (core_bohr if core_bohr is not None else 0.0)
    shape = rho.shape
    vol = abs(np.linalg.det(cell_bohr))
    dv = vol / rho.size
    gga = libxc.is_gga(xc)
    if gga:
        g = grid_gvectors(cell_bohr, shape)
        mask = np.ones(shape, bool)
        if ecutrho_ry is not None:
            mask = np.einsum("...i,...i->...", g, g) <= ecutrho_ry + 1e-8
        rg = _to_g(rho) * mask
        grad = np.stack([_to_r(1j * g[..., i] * rg) for i in range(3)])
        inp = np.concatenate([rho.reshape(1, -1), grad.reshape(3, -1)])
    else:
        inp = rho.reshape(1, -1)
    if np.any(rho < 0):
        neg = float(-rho[rho < 0].sum() * dv)
        if neg > 1e-3:
            raise ComputeError(f"density: {neg:.3g} electrons of negative density (n + n_core); "
                               "exchange-correlation needs n >= 0")
    out = libxc.eval_xc(xc, inp, spin=0, deriv=1)
    exc, vrho = out[0], out[1][0]
    e_xc = float(np.sum(exc * inp[0]) * dv)
    v = vrho.reshape(shape).copy()
    if gga:
        h = 2 * out[1][1].reshape(shape)[None] * grad
        div = sum(1j * g[..., i] * (_to_g(h[i]) * mask) for i in range(3))
        v -= _to_r(div)
    return e_xc, v


# ----------------------------------------------------------------------------- band terms

def smearing_occupations(x: np.ndarray, smearing: str) -> tuple[np.ndarray, np.ndarray]:
    """Occupation f and QE's ``w1gauss`` (-TS per state / degauss) at x = (ε - μ)/degauss."""
    if smearing == "fermi-dirac":
        f = expit(-x)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where((f > 0) & (f < 1), f * np.log(f) + (1 - f) * np.log1p(-f), 0.0)
        return f, s
    if smearing == "gaussian":
        return 0.5 * erfc(x), -np.exp(-x * x) / (2 * np.sqrt(np.pi))
    raise InputError(f"smearing: supported 'fermi-dirac', 'gaussian'; got {smearing!r}")


def fermi_from_eigenvalues(eig_ev: np.ndarray, kweights: np.ndarray, n_electrons: float,
                           degauss_ev: float, smearing: str) -> float:
    """Fermi level (eV) giving ``n_electrons`` (both spins) with QE's smearing."""
    e = np.asarray(eig_ev, float)
    w = 2.0 * np.asarray(kweights, float)[:, None] / np.sum(kweights)

    def excess(mu: float) -> float:
        return float(np.sum(w * smearing_occupations((e - mu) / degauss_ev, smearing)[0])
                     - n_electrons)

    lo, hi = e.min() - 40 * degauss_ev - 1, e.max() + 40 * degauss_ev + 1
    if excess(hi) < 0:
        raise InputError(f"eigenvalues: {e.shape[1]} bands hold at most {2 * e.shape[1]} electrons; "
                         f"{n_electrons} asked")
    return float(brentq(excess, lo, hi, xtol=1e-12))


def band_terms_from_eigenvalues(eig_ev: np.ndarray, kweights: np.ndarray, fermi_ev: float,
                                degauss_ev: float, smearing: str) -> tuple[float, float]:
    """Band energy Σ w f ε and the smearing term -TS (both eV, both spins)."""
    e = np.asarray(eig_ev, float)
    w = 2.0 * np.asarray(kweights, float)[:, None] / np.sum(kweights)
    f, s = smearing_occupations((e - fermi_ev) / degauss_ev, smearing)
    return float(np.sum(w * f * e)), float(degauss_ev * np.sum(w * s))


# ----------------------------------------------------------------------------- all terms

@dataclass(frozen=True)
class QeTerms:
    """QE's printed energy terms, recomputed (eV per cell)."""

    terms_ev: dict = quantity("eV", "band, one_electron, hartree, xc, ewald, minus_ts, total")
    fermi_ev: float = quantity("eV", "Fermi level used for the band terms")
    core_electrons: float = quantity("e", "integral of the UPF core charge on the grid")
    input_density: str = quantity("dimensionless", "'self' or 'atomic' (the one-electron term)")
    functional: str = quantity("dimensionless", "libxc functionals used")


def qe_energy_terms(density: np.ndarray, atoms: Atoms, pseudos: dict[str, Pseudopotential], *,
                    functional: str, ecutrho_ev: float, band_energy_ev: float,
                    minus_ts_ev: float, fermi_ev: float = float("nan"),
                    input_density: str = "self", n_electrons: float | None = None) -> QeTerms:
    """QE's energy terms from a valence density (nx, ny, nz) in electrons/Å³.

    ``band_energy_ev`` and ``minus_ts_ev`` come from the eigenvalues
    (:func:`band_terms_from_eigenvalues`) or a DOS. ``input_density``: ``"self"`` (the density
    is self-consistent) or ``"atomic"`` (QE's starting superposition of atomic densities, the
    input of an SCF that stopped after one iteration).
    """
    from matterflow.electrons.observables import ewald_energy

    syms = atoms.get_chemical_symbols()
    missing = sorted(set(syms) - set(pseudos))
    if missing:
        raise InputError(f"pseudopotentials: none given for species {missing}; given for "
                         f"{sorted(pseudos)}")
    for s in set(syms):
        if pseudos[s].element.lower() != s.lower():
            raise InputError(f"{pseudos[s].path}: UPF field PP_HEADER.element is "
                             f"{pseudos[s].element!r}; it is given for species {s!r}")
    if input_density not in ("self", "atomic"):
        raise InputError(f"input_density: accepted 'self', 'atomic'; got {input_density!r}")
    n = np.asarray(density, float) * BOHR_A**3
    if n.ndim != 3 or not np.all(np.isfinite(n)):
        raise InputError(f"density: expected a finite (nx, ny, nz) array; got shape {n.shape}")
    cell = _cell_bohr(atoms)
    dv = abs(np.linalg.det(cell)) / n.size
    ecut_ry = ecutrho_ev / RYDBERG_EV
    core = radial_density_on_grid(atoms, pseudos, n.shape, ecutrho_ry=ecut_ry, kind="core")
    e_h, v_h = hartree_energy_potential(n, cell)
    e_xc, v_xc = xc_energy_potential(n, core, cell, functional, ecutrho_ry=ecut_ry)
    if input_density == "atomic":
        n_in = radial_density_on_grid(atoms, pseudos, n.shape, ecutrho_ry=ecut_ry, kind="atomic")
        nel = float(n.sum() * dv) if n_electrons is None else float(n_electrons)
        n_in *= nel / (n_in.sum() * dv)
        _, v_h_in = hartree_energy_potential(n_in, cell)
        _, v_xc_in = xc_energy_potential(n_in, core, cell, functional, ecutrho_ry=ecut_ry)
    else:
        v_h_in, v_xc_in = v_h, v_xc
    deband = -float(np.sum(n * (v_h_in + v_xc_in)) * dv) * HARTREE_EV
    z = np.array([pseudos[s].z_valence for s in syms])
    terms = {"band": float(band_energy_ev), "one_electron": float(band_energy_ev) + deband,
             "hartree": e_h * HARTREE_EV, "xc": e_xc * HARTREE_EV,
             "ewald": ewald_energy(atoms, z), "minus_ts": float(minus_ts_ev)}
    terms["total"] = (terms["one_electron"] + terms["hartree"] + terms["xc"] + terms["ewald"]
                      + terms["minus_ts"])
    terms = {k: float(v) for k, v in terms.items()}
    return QeTerms(terms_ev=terms, fermi_ev=float(fermi_ev), core_electrons=float(core.sum() * dv),
                   input_density=input_density, functional=libxc_name(functional))
