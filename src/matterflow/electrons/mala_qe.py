"""MALA snapshots made with Quantum ESPRESSO, and their energies without QE.

A MALA data set holds NumPy arrays (LDOS, density, descriptors) beside QE's files: the
``pw.x`` output, the ``pw.x`` and ``pp.x`` inputs (``recreate_data/``) and the UPF
pseudopotentials. :func:`load_mala_qe` makes a :class:`Snapshot` whose electron count,
temperature, LDOS energy grid and LDOS broadening come from those QE files (each can be
overridden), never from another code's defaults; :func:`qe_observables` recomputes QE's
printed energy terms from the DFT density (and eigenvalues), and the total energy from the
LDOS, each beside QE's value.

Precedence: explicit argument > ``pp.x`` / ``pw.x`` input > ``pw.x`` output.
- electron count: ``number of electrons`` of the output;
- temperature: ``degauss`` (Fermi-Dirac: k_B T = degauss) of the input (QE prints it rounded
  to 4 digits in Ry), else of the output;
- LDOS energies: ``emin`` and ``delta_e`` of ``pp.x``; broadening σ = ``degauss_ldos``/√2
  (``pp.x`` broadens with :math:`e^{-x^2}`, x = ΔE/degauss_ldos).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms

from matterflow.core.errors import InputError, MatterflowWarning
from matterflow.electrons.qe import (
    KB_EV,
    PwOutput,
    read_pp_ldos_input,
    read_pw_input,
    read_pw_output,
)
from matterflow.electrons.snapshot import Snapshot, check_snapshot
from matterflow.electrons.upf import Pseudopotential, read_upf

__all__ = ["load_mala_qe", "find_qe_inputs", "load_pseudopotentials", "check_qe_matches",
           "qe_observables", "broadening_floor", "is_qe_snapshot", "fit_ldos_broadening",
           "LdosWidthWarning"]


class LdosWidthWarning(MatterflowWarning):
    """The LDOS array is broadened by another width than its QE input says."""


def _has(path: Path, marker: str) -> bool:
    try:
        return marker in path.read_text(errors="replace")[:20000].upper()
    except OSError:
        return False


def find_qe_inputs(qe_output: str | os.PathLike) -> dict[str, Path | None]:
    """``pw.x`` and ``pp.x`` (LDOS) inputs beside a QE output or in its ``recreate_data/``."""
    base = Path(qe_output).parent
    found: dict[str, Path | None] = {"pw_input": None, "pp_input": None}
    for d in (base, base / "recreate_data"):
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.in")):
            if found["pp_input"] is None and _has(f, "&INPUTPP"):
                found["pp_input"] = f
            elif found["pw_input"] is None and _has(f, "&SYSTEM"):
                found["pw_input"] = f
    return found


def load_pseudopotentials(files: dict[str, str], dirs: list[Path]) -> dict[str, Pseudopotential]:
    """Read each species' UPF file (by name, searched in ``dirs``); checks the element."""
    out = {}
    for sym, name in files.items():
        cands = [Path(name)] if Path(name).is_absolute() else [d / Path(name).name for d in dirs]
        path = next((c for c in cands if c.exists()), None)
        if path is None:
            raise InputError(f"{name}: pseudopotential of {sym} not found in "
                             f"{[str(d) for d in dirs]}; give its folder (--pseudo-dir)")
        out[sym] = read_upf(path, element=sym)
    return out


def check_qe_matches(pw: PwOutput, *, grid_shape: tuple[int, ...] | None = None,
                     atoms: Atoms | None = None, density: np.ndarray | None = None,
                     where: str = "arrays") -> None:
    """InputError when the QE output does not describe these arrays (grid, atoms, cell, charge)."""
    if grid_shape is not None and tuple(grid_shape) != tuple(pw.fft_grid):
        raise InputError(f"{where}: grid {tuple(grid_shape)} differs from the dense FFT grid "
                         f"{pw.fft_grid} of {pw.path}; is it the QE output of these arrays?")
    if atoms is not None:
        if len(atoms) != len(pw.atoms):
            raise InputError(f"{where}: {len(atoms)} atoms, but {pw.path} has {len(pw.atoms)}")
        d = np.abs(np.asarray(atoms.cell[:]) - np.asarray(pw.atoms.cell[:])).max()
        if d > 1e-4:
            raise InputError(f"{where}: cell differs from the cell of {pw.path} by up to "
                             f"{d:.3g} Å")
    if density is not None:
        n = float(np.sum(density) * abs(pw.atoms.cell.volume) / density.size)
        if abs(n - pw.n_electrons) > 1e-3 * pw.n_electrons:
            raise InputError(f"{where}: the density integrates to {n:.5f} electrons over the cell "
                             f"of {pw.path}, which has {pw.n_electrons}; another cell, or the "
                             "density not in electrons/Å³?")


def load_mala_qe(ldos_path: str | os.PathLike, qe_output: str | os.PathLike, *,
                 pw_input: str | os.PathLike | None = None,
                 pp_input: str | os.PathLike | None = None,
                 density_path: str | os.PathLike | None = None,
                 pseudo_dir: str | os.PathLike | None = None,
                 energy_offset_ev: float | None = None, energy_spacing_ev: float | None = None,
                 electronic_temperature_k: float | None = None,
                 ldos_smearing_ev: float | None = None, n_electrons: float | None = None,
                 ldos_units: str = "1/(eV*A^3)") -> Snapshot:
    """A :class:`Snapshot` from a MALA LDOS ``.npy`` and the QE files of its calculation.

    ``pw_input`` / ``pp_input`` default to the files :func:`find_qe_inputs` finds; the other
    keywords override what the QE files say (see the module docstring).
    """
    from matterflow.electrons.io_formats import LDOS_UNITS, _load_npy
    from matterflow.electrons.qe_energy import band_terms_from_eigenvalues, fermi_from_eigenvalues

    pw = read_pw_output(qe_output)
    auto = find_qe_inputs(qe_output)
    pw_in = read_pw_input(pw_input) if pw_input else (
        read_pw_input(auto["pw_input"]) if auto["pw_input"] else None)
    pp_path = pp_input or auto["pp_input"]
    pp = read_pp_ldos_input(pp_path) if pp_path else None
    ldos = _load_npy(ldos_path, "LDOS")
    if ldos_units not in LDOS_UNITS:
        raise InputError(f"ldos_units: accepted {sorted(LDOS_UNITS)}; got {ldos_units!r}")
    check_qe_matches(pw, grid_shape=ldos.shape[:3], where=str(ldos_path))
    info_path = Path(ldos_path).with_name(Path(ldos_path).name.split(".")[0] + ".info.json")
    if info_path.exists():  # MALA's summary of the snapshot: its atoms must be QE's
        import json

        try:
            info = json.loads(info_path.read_text())["atoms"]
            atoms = Atoms(numbers=info["numbers"], positions=info["positions"], cell=info["cell"],
                          pbc=True)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{info_path}: not a MALA info.json with 'atoms' ({exc})") from None
        check_qe_matches(pw, atoms=atoms, where=str(info_path))
    sources = {"qe_output": str(Path(qe_output).resolve())}
    pp_path = Path(pp_path).resolve() if pp_path else None
    if energy_offset_ev is None or energy_spacing_ev is None:
        if pp is None:
            raise InputError(f"{ldos_path}: no pp.x LDOS input found beside {qe_output} (or in "
                             "recreate_data/); give --pp-input or --offset and --spacing")
        energy_offset_ev = pp["emin_ev"] if energy_offset_ev is None else energy_offset_ev
        energy_spacing_ev = pp["delta_e_ev"] if energy_spacing_ev is None else energy_spacing_ev
        sources["energy_grid"] = str(pp_path)
        n_pp = int(round((pp["emax_ev"] - pp["emin_ev"]) / pp["delta_e_ev"])) + 1
        if n_pp != ldos.shape[-1]:
            raise InputError(f"{ldos_path}: {ldos.shape[-1]} LDOS energies, but {pp_path} gives "
                             f"{n_pp} (emin..emax step delta_e)")
    if energy_spacing_ev <= 0:
        raise InputError(f"energy_spacing_ev must be > 0; got {energy_spacing_ev}")
    if ldos_smearing_ev is None:
        if pp is None:
            raise InputError(f"{ldos_path}: no pp.x LDOS input found; give --pp-input or "
                             "--ldos-smearing")
        ldos_smearing_ev = float(pp["sigma_ev"])
        sources["ldos_smearing"] = f"{pp_path}: degauss_ldos/sqrt(2)"
    smearing = pw.smearing
    degauss = pw.degauss_ev
    if pw_in is not None and pw_in.degauss_ev is not None:
        from matterflow.electrons.qe import RYDBERG_EV

        if pw.degauss_ev and abs(pw_in.degauss_ev - pw.degauss_ev) > 0.51e-4 * RYDBERG_EV:
            raise InputError(f"{pw_in.path}: degauss {pw_in.degauss_ev / RYDBERG_EV:.7g} Ry does not "
                             f"round to the {pw.degauss_ev / RYDBERG_EV:.4f} Ry of {pw.path}; is it "
                             "the input of this calculation? (give --pw-input)")
        nat = pw_in.system.get("nat")
        if nat is not None and int(nat) != len(pw.atoms):
            raise InputError(f"{pw_in.path}: nat = {nat}, but {pw.path} has {len(pw.atoms)} atoms; "
                             "is it the input of this calculation? (give --pw-input)")
        degauss, smearing = pw_in.degauss_ev, pw_in.smearing or smearing
        sources["degauss"] = str(Path(pw_in.path).resolve())
    if electronic_temperature_k is None:
        if not degauss:
            raise InputError(f"{qe_output}: no smearing width (degauss) in the QE files; give "
                             "--temperature")
        electronic_temperature_k = degauss / KB_EV
    nel = pw.n_electrons if n_electrons is None else float(n_electrons)
    dirs = [Path(pseudo_dir)] if pseudo_dir else []
    dirs += [Path(qe_output).parent, Path(qe_output).parent / "recreate_data"]
    if pw_in is not None and pw_in.pseudo_dir:
        dirs.append(Path(pw_in.pseudo_dir))
    pseudos = load_pseudopotentials(pw.pseudopotentials, dirs)
    for sym, pp_ in pseudos.items():
        if sym in pw.zval and abs(pw.zval[sym] - pp_.z_valence) > 1e-6:
            raise InputError(f"{pp_.path}: UPF field PP_HEADER.z_valence is {pp_.z_valence}, "
                             f"but {pw.path} used Zval = {pw.zval[sym]} for {sym}")
    density = None
    if density_path is not None:
        d = np.asarray(_load_npy(density_path, "density"), float)
        if d.shape[-1] != 1:
            raise InputError(f"{density_path}: MALA density has shape (nx, ny, nz, 1); got {d.shape}")
        density = d[..., 0]
        check_qe_matches(pw, grid_shape=density.shape, density=density, where=str(density_path))
    band = np.nan
    if pw.eigenvalues_ev is not None and pw.kweights is not None and smearing:
        mu = fermi_from_eigenvalues(pw.eigenvalues_ev, pw.kweights, nel, degauss, smearing)
        band = band_terms_from_eigenvalues(pw.eigenvalues_ev, pw.kweights, mu, degauss, smearing)[0]
    arr = np.asarray(ldos, dtype=float) * LDOS_UNITS[ldos_units]
    energies = energy_offset_ev + energy_spacing_ev * np.arange(arr.shape[-1])
    iters = re.findall(r"convergence has been achieved in\s+(\d+) iterations",
                       Path(qe_output).read_text(errors="replace"))
    meta = {"code": f"Quantum ESPRESSO {pw.version} (MALA format)", "source": str(ldos_path),
            "ldos_units_in_file": ldos_units, "n_electrons": nel, "functional": pw.functional,
            "pseudopotentials": {s: str(Path(p.path).resolve()) for s, p in pseudos.items()},
            "valence": {s: p.z_valence for s, p in pseudos.items()},
            "ecutrho_ev": pw.ecutrho_ev, "smearing": smearing, "degauss_ev": degauss,
            "scf_iterations": int(iters[-1]) if iters else None, "qe_terms_ev": pw.terms_ev,
            "qe_fermi_ev": pw.fermi_ev, "sources": sources}
    snap = Snapshot(atoms=pw.atoms, grid_shape=tuple(int(s) for s in arr.shape[:3]),
                    energy_grid_ev=energies, ldos=arr, density=density,
                    eigenvalues_ev=pw.eigenvalues_ev, kweights=pw.kweights, fermi_ev=pw.fermi_ev,
                    electronic_temperature_k=float(electronic_temperature_k),
                    band_energy_ev=float(band), total_energy_ev=pw.terms_ev["total"],
                    ldos_smearing_ev=float(ldos_smearing_ev), meta=meta)
    snap = check_snapshot(snap, where=str(ldos_path))
    if snap.eigenvalues_ev is not None and "ldos_smearing" in sources:
        fit, dmax = fit_ldos_broadening(snap)
        snap.meta["ldos_sigma_fit_ev"] = fit
        if abs(fit - snap.ldos_smearing_ev) > 0.1 * snap.ldos_smearing_ev:
            import warnings

            warnings.warn(LdosWidthWarning(
                f"{ldos_path}: {sources['ldos_smearing']} gives σ = {snap.ldos_smearing_ev:.3f} eV, "
                f"but the DOS of this LDOS matches the eigenvalue DOS broadened by σ = {fit:.3f} eV "
                f"(largest difference {dmax:.3g} states/eV); σ kept from the QE input (override "
                "with --ldos-smearing)"), stacklevel=2)
    return snap


def _eig_dos(eig: np.ndarray, kweights: np.ndarray, e: np.ndarray, sigma: float) -> np.ndarray:
    w = 2 * np.asarray(kweights)[:, None] / np.sum(kweights)
    x = (e[None, None, :] - np.asarray(eig)[..., None]) / sigma
    return np.sum(w[..., None] * np.exp(-0.5 * x * x) / (sigma * np.sqrt(2 * np.pi)), axis=(0, 1))


def fit_ldos_broadening(snap: Snapshot) -> tuple[float, float]:
    """Gaussian width σ (eV) whose eigenvalue DOS best matches the DOS of the LDOS array.

    Returns (σ, largest difference of the two DOS, states/eV): a check of the LDOS width the
    QE inputs state (it needs eigenvalues; least squares over σ in [0.01, 30] eV).
    """
    from scipy.optimize import minimize_scalar

    from matterflow.electrons.observables import dos_from_ldos

    if snap.ldos is None or snap.eigenvalues_ev is None or snap.kweights is None:
        raise InputError("snapshot: fitting the LDOS width needs the LDOS and the eigenvalues")
    e = np.asarray(snap.energy_grid_ev, float)
    dos = dos_from_ldos(np.asarray(snap.ldos), snap.voxel_volume_a3)

    def loss(s: float) -> float:
        return float(np.sum((_eig_dos(snap.eigenvalues_ev, snap.kweights, e, s) - dos) ** 2))

    grid = np.geomspace(0.01, 30, 60)
    s0 = grid[int(np.argmin([loss(s) for s in grid]))]
    res = minimize_scalar(loss, bounds=(s0 / 1.2, s0 * 1.2), method="bounded",
                          options={"xatol": 1e-4})
    s = float(res.x)
    return s, float(np.abs(_eig_dos(snap.eigenvalues_ev, snap.kweights, e, s) - dos).max())


def is_qe_snapshot(snap: Snapshot) -> bool:
    """True when the snapshot came from :func:`load_mala_qe` (it names its pseudopotentials)."""
    return bool(snap.meta.get("pseudopotentials")) and "qe_terms_ev" in snap.meta


def _snapshot_pseudos(snap: Snapshot, pseudo_dir: str | os.PathLike | None) -> dict[str, Pseudopotential]:
    files = dict(snap.meta["pseudopotentials"])
    dirs = [Path(pseudo_dir)] if pseudo_dir else []
    dirs += sorted({Path(p).parent for p in files.values()})
    return load_pseudopotentials({s: Path(p).name if pseudo_dir else p for s, p in files.items()},
                                 dirs)


def _input_density(snap: Snapshot, input_density: str) -> str:
    if input_density != "auto":
        return input_density
    return "atomic" if snap.meta.get("scf_iterations") == 1 else "self"


def broadening_floor(snap: Snapshot, *, kernel: str = "cubic", sigma_ev: float | None = None,
                     broadening_correction: bool = False) -> dict[str, float]:
    """Band-energy error (eV) of the LDOS route when the LDOS were exact but broadened.

    The eigenvalue DOS is broadened with the snapshot's LDOS width (or ``sigma_ev``),
    sampled on its energy grid and integrated as an LDOS-derived DOS is; the differences
    of band energy and -TS to the eigenvalue sums are the floor no LDOS model can beat.
    """
    from matterflow.electrons import observables as ob
    from matterflow.electrons.qe_energy import band_terms_from_eigenvalues, fermi_from_eigenvalues

    if snap.eigenvalues_ev is None or snap.kweights is None:
        raise InputError("snapshot: no eigenvalues; the broadening floor needs them")
    s = snap.ldos_smearing_ev if sigma_ev is None else sigma_ev
    e = np.asarray(snap.energy_grid_ev, float)
    dos = _eig_dos(snap.eigenvalues_ev, snap.kweights, e, s)
    nel = float(snap.n_electrons or 0)
    t = snap.electronic_temperature_k
    corr = s if broadening_correction else 0.0
    mu = ob.fermi_level(dos, e, nel, t, ldos_smearing_ev=corr, kernel=kernel)
    band = ob.band_energy(dos, e, mu, t, ldos_smearing_ev=corr, kernel=kernel)
    ts = ob.entropy_energy(dos, e, mu, t, ldos_smearing_ev=corr, kernel=kernel)
    smearing, degauss = snap.meta.get("smearing") or "fermi-dirac", snap.meta.get("degauss_ev")
    degauss = degauss or KB_EV * t
    mu0 = fermi_from_eigenvalues(snap.eigenvalues_ev, snap.kweights, nel, degauss, smearing)
    band0, mts0 = band_terms_from_eigenvalues(snap.eigenvalues_ev, snap.kweights, mu0, degauss,
                                              smearing)
    return {"sigma_ev": float(s), "fermi_ev": float(mu), "fermi_exact_ev": mu0,
            "band_error_ev": float(band - band0), "minus_ts_error_ev": float(-ts - mts0),
            "floor_ev": float(band - band0 - ts - mts0)}


def qe_observables(snap: Snapshot, *, pseudo_dir: str | os.PathLike | None = None,
                   input_density: str = "auto", kernel: str = "cubic",
                   broadening_correction: bool = False) -> dict:
    """QE's energy terms recomputed (eV), each beside QE's printed value.

    ``"dft_density"``: from the snapshot's DFT density and eigenvalues (needs both);
    ``"ldos"``: from its LDOS alone (DOS -> Fermi level, band energy, -TS; density);
    ``"floor"``: :func:`broadening_floor`. ``input_density`` ``"auto"`` takes QE's starting
    density for the one-electron term when QE's SCF stopped after one iteration.
    """
    from matterflow.electrons import observables as ob
    from matterflow.electrons.qe_energy import (
        band_terms_from_eigenvalues,
        fermi_from_eigenvalues,
        qe_energy_terms,
    )

    if not is_qe_snapshot(snap):
        raise InputError("snapshot: not made from Quantum ESPRESSO files (import it with "
                         "`electrons import-mala` and its QE output)")
    pseudos = _snapshot_pseudos(snap, pseudo_dir)
    mode = _input_density(snap, input_density)
    ref = dict(snap.meta["qe_terms_ev"])
    nel = float(snap.n_electrons or 0)
    kw = {"functional": snap.meta["functional"], "ecutrho_ev": float(snap.meta["ecutrho_ev"]),
          "input_density": mode, "n_electrons": nel}
    n = snap.n_atoms
    out: dict = {"reference_code": snap.meta.get("code", "Quantum ESPRESSO"), "n_atoms": n,
                 "input_density": mode, "scf_iterations": snap.meta.get("scf_iterations"),
                 "reference_ev": ref, "reference_fermi_ev": snap.meta.get("qe_fermi_ev")}

    def rows(terms: dict) -> dict:
        return {k: {"matterflow_ev": v, "reference_ev": ref.get(k),
                    "difference_mev_per_atom": None if ref.get(k) is None
                    else (v - ref[k]) * 1000 / n} for k, v in terms.items()}

    if snap.density is not None and snap.eigenvalues_ev is not None:
        smearing = snap.meta.get("smearing") or "fermi-dirac"
        degauss = float(snap.meta.get("degauss_ev") or KB_EV * snap.electronic_temperature_k)
        mu = fermi_from_eigenvalues(snap.eigenvalues_ev, snap.kweights, nel, degauss, smearing)
        band, mts = band_terms_from_eigenvalues(snap.eigenvalues_ev, snap.kweights, mu, degauss,
                                                smearing)
        t = qe_energy_terms(snap.density, snap.atoms, pseudos, band_energy_ev=band,
                            minus_ts_ev=mts, fermi_ev=mu, **kw)
        out["dft_density"] = {"fermi_ev": mu, "terms": rows(t.terms_ev),
                              "core_electrons": t.core_electrons}
    if snap.ldos is not None:
        e = np.asarray(snap.energy_grid_ev, float)
        corr = snap.ldos_smearing_ev if broadening_correction else 0.0
        t_k = snap.electronic_temperature_k
        ldos = np.asarray(snap.ldos)
        dos = ob.dos_from_ldos(ldos, snap.voxel_volume_a3)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the width warning; the floor below says it in numbers
            mu = ob.fermi_level(dos, e, nel, t_k, ldos_smearing_ev=corr, kernel=kernel)
            band = ob.band_energy(dos, e, mu, t_k, ldos_smearing_ev=corr, kernel=kernel)
            ts = ob.entropy_energy(dos, e, mu, t_k, ldos_smearing_ev=corr, kernel=kernel)
            dens = ob.density_from_ldos(ldos.reshape(-1, len(e)), e, mu, t_k,
                                        ldos_smearing_ev=corr, kernel=kernel).reshape(snap.grid_shape)
            t = qe_energy_terms(dens, snap.atoms, pseudos, band_energy_ev=band, minus_ts_ev=-ts,
                                fermi_ev=mu, **kw)
            res = {"fermi_ev": mu, "terms": rows(t.terms_ev),
                   "broadening_correction": bool(broadening_correction)}
            if snap.density is not None:
                res["density_relative_l1"] = float(np.abs(dens - snap.density).sum()
                                                   / np.abs(snap.density).sum())
            out["ldos"] = res
            if snap.eigenvalues_ev is not None:
                out["floor"] = broadening_floor(snap, kernel=kernel,
                                                broadening_correction=broadening_correction)
                out["floor"]["floor_mev_per_atom"] = out["floor"]["floor_ev"] * 1000 / n
                sig, dmax = fit_ldos_broadening(snap)
                fl = broadening_floor(snap, kernel=kernel, sigma_ev=sig,
                                      broadening_correction=broadening_correction)
                fl["floor_mev_per_atom"] = fl["floor_ev"] * 1000 / n
                fl["dos_max_difference"] = dmax
                out["floor_fitted_sigma"] = fl
    return out
