"""Periodic Kohn-Sham DFT with PySCF: one snapshot's LDOS, density and energies.

:func:`run_dft` solves LDA Kohn-Sham equations for a periodic cell
(``pyscf.pbc.dft.KRKS``: GTH pseudopotentials, a GTH Gaussian basis, a
Monkhorst-Pack k-grid including Gamma, Fermi-Dirac smearing at the
electronic temperature) and evaluates on PySCF's uniform real-space grid
(``cell.mesh``; point (i, j, k) at fractional (i/nx, j/ny, k/nz)):

- the Kohn-Sham density :math:`n(r)=\\sum_k w_k\\sum_n f_{nk}|\\psi_{nk}(r)|^2`
  (both spins, f in [0, 2] from PySCF);
- the local density of states, Gaussian-broadened (width ``sigma``),
  :math:`L(r,\\varepsilon)=\\sum_k w_k\\sum_n 2|\\psi_{nk}(r)|^2 g_\\sigma(\\varepsilon-\\varepsilon_{nk})`.

Energies: ``total_energy_ev`` is the Mermin free energy ``E - T S`` (PySCF's
``e_free``; Quantum ESPRESSO's "total energy" with smearing), the internal
energy ``E`` and ``T S`` are kept in ``meta``. The GTH local pseudopotential's
G = 0 ("alpha Z") term is part of PySCF's core Hamiltonian, hence of the
eigenvalues and of the band energy.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from matterflow.core.errors import ComputeError, InputError
from matterflow.electrons.snapshot import Snapshot
from matterflow.electrons.structures import wrap_atoms

__all__ = ["run_dft", "gaussian_ldos", "HARTREE_EV", "BOHR_A", "KB_EV"]

HARTREE_EV = 27.211386245988
"""Hartree in eV (PySCF's ``nist.HARTREE2EV``)."""
BOHR_A = 0.52917721092
"""Bohr radius in Å (PySCF's ``lib.param.BOHR``)."""
KB_EV = 8.617333262e-5
"""Boltzmann constant (eV/K)."""

XC_CHOICES = ("lda,pz", "lda,vwn")
BASIS_CHOICES = ("gth-szv", "gth-dzv", "gth-dzvp", "gth-tzvp")
PSEUDO_CHOICES = ("gth-pade", "gth-lda")


def _build_cell(atoms: Atoms, *, basis: str, pseudo: str, mesh: tuple[int, int, int] | None):
    from pyscf.pbc import gto

    atoms = wrap_atoms(atoms)
    cell = gto.Cell()
    cell.atom = [(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions,
                                                          strict=True)]
    cell.a = np.asarray(atoms.cell[:], dtype=float)
    cell.unit = "A"
    cell.basis = basis
    cell.pseudo = pseudo
    cell.verbose = 0
    if mesh is not None:
        cell.mesh = list(mesh)
    try:
        cell.build()
    except (KeyError, RuntimeError, ValueError) as exc:
        syms = sorted(set(atoms.get_chemical_symbols()))
        raise InputError(f"atoms: PySCF cannot build a cell with species {syms}, basis {basis!r}, "
                         f"pseudopotential {pseudo!r}: {exc}") from None
    if cell.nelectron % 2:
        raise InputError(f"atoms: odd number of valence electrons ({cell.nelectron}); "
                         "only spin-unpolarised (even) cells are supported")
    return atoms, cell


def _cached_numint(max_bytes: float = 1.5e9):
    """A PySCF ``KNumInt`` that keeps AO values on the grid between SCF cycles.

    PySCF re-evaluates the periodic GTOs on the uniform grid in every cycle, for the
    XC potential and again for the Coulomb matrix; that is most of the SCF time for
    small cells. The grid and k-points do not change, so the values are cached (up to
    ``max_bytes``; read-only arrays). Same energies to the last digit, about half the CPU time.
    """
    import hashlib

    from pyscf.pbc.dft import numint as pnumint

    class CachedKNumInt(pnumint.KNumInt):
        def __init__(self):
            super().__init__()
            self._ao_cache: dict = {}
            self._ao_bytes = 0

        def eval_ao(self, cell, coords, kpts=None, deriv=0, relativity=0, shls_slice=None,
                    non0tab=None, cutoff=None, out=None, verbose=None, **kwargs):
            key = (hashlib.sha1(np.ascontiguousarray(coords).tobytes()).hexdigest(),
                   None if kpts is None else np.asarray(kpts).tobytes(), deriv, shls_slice)
            hit = self._ao_cache.get(key)
            if hit is not None:
                return hit
            ao = pnumint.eval_ao_kpts(cell, coords, kpts, deriv, relativity, shls_slice, non0tab,
                                      cutoff, out, verbose, **kwargs)
            size = sum(a.nbytes for a in ao)
            if self._ao_bytes + size <= max_bytes:
                for a in ao:
                    a.flags.writeable = False
                self._ao_cache[key] = ao
                self._ao_bytes += size
            return ao

    return CachedKNumInt()


def gaussian_ldos(psi2: np.ndarray, eigenvalues_ev: np.ndarray, weights: np.ndarray,
                  energy_grid_ev: np.ndarray, sigma_ev: float) -> np.ndarray:
    """Gaussian-broadened LDOS from orbital densities.

    Parameters
    ----------
    psi2 : (n_points, n_states)
        :math:`|\\psi|^2` of each state (1/Å³).
    eigenvalues_ev : (n_states,)
    weights : (n_states,)
        Weight of each state (k-weight times spin degeneracy 2).
    energy_grid_ev : (ne,)
    sigma_ev : float
        Gaussian standard deviation (eV).

    Returns
    -------
    (n_points, ne) states/(eV Å³)
    """
    x = (energy_grid_ev[None, :] - eigenvalues_ev[:, None]) / sigma_ev
    g = np.exp(-0.5 * x * x) / (sigma_ev * np.sqrt(2 * np.pi))  # (n_states, ne)
    return psi2 @ (weights[:, None] * g)


def run_dft(atoms: Atoms, *, xc: str = "lda,pz", basis: str = "gth-szv", pseudo: str = "gth-pade",
            kpts: tuple[int, int, int] = (2, 2, 2), mesh: tuple[int, int, int] | None = (18, 18, 18),
            electronic_temperature_k: float = 298.0, energy_grid_ev: np.ndarray | None = None,
            ldos_smearing_ev: float = 0.05, conv_tol_ha: float = 1e-8, max_cycle: int = 100,
            ) -> Snapshot:
    """Self-consistent LDA DFT of one periodic structure, with LDOS on the real-space grid.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure (Å); atoms outside the cell are wrapped.
    xc : {"lda,pz", "lda,vwn"}
        Slater exchange with Perdew-Zunger 81 or VWN5 correlation.
    basis, pseudo : str
        PySCF GTH basis and pseudopotential names.
    kpts : (3,) ints
        Monkhorst-Pack grid (Gamma-centred, no symmetry; equal weights).
    mesh : (3,) ints or None
        Real-space FFT grid; None lets PySCF choose from the basis (fine, slow).
    electronic_temperature_k : float
        Fermi-Dirac smearing temperature (K).
    energy_grid_ev : (ne,) or None
        LDOS energies (eV, uniform); None: from 1 eV below the lowest eigenvalue
        to 2 eV above the Fermi level, step ``ldos_smearing_ev / 2``.
    ldos_smearing_ev : float
        Gaussian standard deviation of the LDOS broadening (eV).
    conv_tol_ha : float
        SCF energy convergence (Hartree).

    Returns
    -------
    Snapshot
    """
    from pyscf import __version__ as pyscf_version
    from pyscf.pbc import dft as pbcdft

    if xc not in XC_CHOICES:
        raise InputError(f"xc: accepted {XC_CHOICES}; got {xc!r}")
    if electronic_temperature_k <= 0:
        raise InputError(f"electronic_temperature_k must be > 0 K; got {electronic_temperature_k}")
    if ldos_smearing_ev <= 0:
        raise InputError(f"ldos_smearing_ev must be > 0 eV; got {ldos_smearing_ev}")
    pos = np.asarray(atoms.positions, dtype=float)
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(np.asarray(atoms.cell[:]))):
        raise InputError("atoms: positions or cell contain NaN/inf")
    if abs(atoms.cell.volume) < 1e-6:
        raise InputError("atoms: cell has zero volume (a periodic cell is required)")
    t0, c0 = time.perf_counter(), time.process_time()
    atoms, cell = _build_cell(atoms, basis=basis, pseudo=pseudo, mesh=mesh)
    kpts_abs = cell.make_kpts(list(kpts))
    nk = len(kpts_abs)
    kweights = np.full(nk, 1.0 / nk)
    kt_ha = KB_EV * electronic_temperature_k / HARTREE_EV

    numint = _cached_numint()

    def make_scf(sigma_ha: float, tol: float, cycles: int):
        mf = pbcdft.KRKS(cell, kpts_abs)
        mf.xc = xc
        mf._numint = numint
        mf.with_df._numint = numint
        mf = mf.smearing(sigma=sigma_ha, method="fermi")
        mf.conv_tol = tol
        # PySCF's final check diagonalises once more and fails the run if the energy moves by
        # more than 10 conv_tol; with |g| at PySCF's default sqrt(conv_tol) the new Fermi-Dirac
        # occupations of a large cell can move it that much, so converge the gradient further
        mf.conv_tol_grad = min(1e-5, float(np.sqrt(tol)))
        mf.max_cycle = cycles
        mf.verbose = 0
        # converge on the free energy E - TS, which is variational; PySCF's E(T) is not, and
        # at high electronic temperature its cycle-to-cycle noise can stay above conv_tol
        smeared_energy_tot = mf.energy_tot

        def free_energy_tot(*args, **kwargs):
            e = smeared_energy_tot(*args, **kwargs)
            return e if mf.e_free is None else mf.e_free

        mf.energy_tot = free_energy_tot
        return mf

    kept = _kept_scf_file(cell, xc=xc, kpts=kpts, temperature_k=electronic_temperature_k,
                          conv_tol_ha=conv_tol_ha)
    dm_kept = _load_kept_scf(kept)
    mf = make_scf(kt_ha, conv_tol_ha, max_cycle)
    f_tot = mf.kernel() if dm_kept is None else mf.kernel(dm0=dm_kept)
    annealed = False
    if not mf.converged:
        # charge sloshing with sharp occupations (large cell, few k-points, low T):
        # converge at 3000 K first and start the target temperature from that density
        hot = make_scf(max(kt_ha, KB_EV * 3000.0 / HARTREE_EV), 1e-6, max_cycle)
        hot.kernel()
        mf = make_scf(kt_ha, conv_tol_ha, max_cycle)
        mf.diis_space = 12
        f_tot = mf.kernel(dm0=hot.make_rdm1())
        annealed = True
    if not mf.converged or not np.isfinite(f_tot):
        raise ComputeError(f"PySCF SCF did not converge in {max_cycle} cycles, also after "
                           f"annealing from 3000 K (F = {f_tot} Ha); raise max_cycle or the "
                           "electronic temperature, or use more k-points")
    t_scf, c_scf = time.perf_counter() - t0, time.process_time() - c0

    eig_ev = np.asarray(mf.mo_energy) * HARTREE_EV  # (nk, nmo)
    occ = np.asarray(mf.mo_occ)  # (nk, nmo) in [0, 2]
    ts_ev = float(mf.sigma * mf.entropy) * HARTREE_EV
    e_int_ev = float(f_tot) * HARTREE_EV + ts_ev
    fermi_ev = _fermi_from_occupations(eig_ev, occ, KB_EV * electronic_temperature_k,
                                       cell.nelectron)

    if energy_grid_ev is None:
        step = ldos_smearing_ev / 2
        energy_grid_ev = np.arange(np.floor(eig_ev.min() - 1.0), fermi_ev + 2.0 + step, step)
    energy_grid_ev = np.asarray(energy_grid_ev, dtype=float)
    if energy_grid_ev.ndim != 1 or len(energy_grid_ev) < 2:
        raise InputError("energy_grid_ev must be a 1-d array of at least 2 energies")
    need_lo = eig_ev.min() - 3 * ldos_smearing_ev
    need_hi = fermi_ev + 10 * KB_EV * electronic_temperature_k + 3 * ldos_smearing_ev
    problems = []
    if need_lo < energy_grid_ev[0]:
        problems.append(f"the lowest energy {energy_grid_ev[0]:.3f} eV (energy_min_ev, "
                        f"--energy-min) must lie 3 sigma below the lowest eigenvalue "
                        f"{eig_ev.min():.3f} eV: give --energy-min {np.floor(need_lo * 2) / 2:g} "
                        "or lower")
    if need_hi > energy_grid_ev[-1]:
        problems.append(f"the highest energy {energy_grid_ev[-1]:.3f} eV (energy_max_ev, "
                        f"--energy-max) must lie above the Fermi level {fermi_ev:.3f} eV + 10 kT "
                        f"+ 3 sigma = {need_hi:.3f} eV: give --energy-max "
                        f"{np.ceil(need_hi * 2) / 2:g} or higher")
    if problems:
        where = _keep_scf(kept, mf)
        raise InputError("LDOS energy window: " + "; ".join(problems) + (
            f". The converged SCF is kept ({where}): a rerun with the new window starts from "
            "it" if where else ""))
    if kept is not None:
        kept.unlink(missing_ok=True)

    # orbitals on the uniform grid
    coords = cell.get_uniform_grids(cell.mesh)
    ngrid = len(coords)
    ldos = np.zeros((ngrid, len(energy_grid_ev)))
    density = np.zeros(ngrid)
    bohr3 = BOHR_A**3
    ao_all = numint.eval_ao(cell, coords, kpts_abs)  # cached if the SCF used one grid block
    for k in range(nk):
        psi = np.asarray(ao_all[k]) @ np.asarray(mf.mo_coeff[k])
        psi2 = (psi.real**2 + psi.imag**2) / bohr3  # 1/Å³
        density += kweights[k] * psi2 @ occ[k]
        ldos += gaussian_ldos(psi2, eig_ev[k], np.full(eig_ev.shape[1], 2 * kweights[k]),
                              energy_grid_ev, ldos_smearing_ev)
    mesh_t = tuple(int(m) for m in cell.mesh)
    band_ev = float(np.sum(kweights[:, None] * occ * eig_ev))
    # The grid sum of |psi|^2 is 1 only if the mesh resolves the basis functions; otherwise the
    # LDOS holds more (or fewer) electrons than the cell, and the Fermi level found from it for
    # the nominal count is off (by ~0.8 eV and ~10 meV/atom in the total energy for H, gth-szv
    # at 0.4 Å spacing; ~0 at 0.2 Å).
    n_grid = float(density.sum() * atoms.get_volume() / ngrid)
    alias = n_grid / float(cell.nelectron) - 1.0
    if abs(alias) > 1e-3:
        import warnings

        spacing = np.asarray(atoms.cell.lengths()) / np.asarray(mesh_t)
        warnings.warn(f"mesh {list(mesh_t)} (spacing {np.round(spacing, 3).tolist()} Å): the density on the "
                      f"grid holds {n_grid:.4f} electrons, {cell.nelectron} in the cell ({alias:+.2%}); "
                      "observables recomputed from this LDOS will be off; use a finer mesh",
                      stacklevel=2)
    summary = {key: float(val) * HARTREE_EV for key, val in getattr(mf, "scf_summary", {}).items()
               if np.isscalar(val)}
    meta: dict[str, Any] = {
        "code": f"pyscf {pyscf_version}", "method": "KRKS (pyscf.pbc.dft), Fermi-Dirac smearing",
        "functional": xc, "pseudopotential": pseudo, "basis": basis,
        "kpts": list(int(k) for k in kpts), "mesh": list(mesh_t),
        "n_electrons": float(cell.nelectron), "n_electrons_on_grid": n_grid, "conv_tol_ha": conv_tol_ha,
        "internal_energy_ev": e_int_ev, "entropy_ts_ev": ts_ev,
        "ewald_energy_ev": float(cell.energy_nuc()) * HARTREE_EV,
        "pyscf_terms_ev": summary,
        "scf_seconds": t_scf, "total_seconds": time.perf_counter() - t0,
        "scf_annealed": annealed, "scf_cpu_seconds": c_scf, "total_cpu_seconds": time.process_time() - c0,
        "total_energy_definition": "free energy E - TS (PySCF e_free)",
    }
    return Snapshot(atoms=atoms, grid_shape=mesh_t, energy_grid_ev=energy_grid_ev,
                    ldos=ldos.reshape(*mesh_t, -1), density=density.reshape(mesh_t),
                    eigenvalues_ev=eig_ev, kweights=kweights, fermi_ev=fermi_ev,
                    electronic_temperature_k=float(electronic_temperature_k),
                    band_energy_ev=band_ev, total_energy_ev=e_int_ev - ts_ev,
                    ldos_smearing_ev=float(ldos_smearing_ev), meta=meta)


def _kept_scf_file(cell: Any, **settings: Any) -> Path | None:
    """Where the converged density matrix of this cell and these settings is kept when the
    LDOS window did not fit (``$MATTERFLOW_CACHE_DIR/dft`` or ``~/.cache/matterflow/dft``);
    None if caching is off (``MATTERFLOW_CACHE_DIR=off``)."""
    import hashlib
    import json
    import os

    root = os.environ.get("MATTERFLOW_CACHE_DIR")
    if root is not None and root.strip().lower() in ("", "off", "0", "none"):
        return None
    base = Path(root) if root else Path.home() / ".cache" / "matterflow"
    key = json.dumps({"atom": [(a, [round(float(x), 10) for x in xyz]) for a, xyz in cell.atom],
                      "a": np.round(np.asarray(cell.a, float), 10).tolist(), "basis": cell.basis,
                      "pseudo": cell.pseudo, "mesh": [int(m) for m in cell.mesh],
                      **{k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}},
                     sort_keys=True, default=str)
    return base / "dft" / f"scf-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"


def _keep_scf(path: Path | None, mf: Any) -> str:
    """Save the converged density matrix at ``path``; '' if it cannot be written."""
    if path is None:
        return ""
    try:
        from matterflow.core.store import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, np.asarray(mf.make_rdm1()), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    except Exception:  # keeping it is a convenience: never hide the real message
        return ""
    return str(path)


def _load_kept_scf(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _fermi_from_occupations(eig_ev: np.ndarray, occ: np.ndarray, kt_ev: float,
                            n_electrons: float) -> float:
    """Chemical potential reproducing the SCF electron count with Fermi-Dirac occupations."""
    from scipy.optimize import brentq

    nk = eig_ev.shape[0]

    def count(mu: float) -> float:
        x = np.clip((eig_ev - mu) / kt_ev, -700, 700)
        return 2.0 * np.sum(1.0 / (np.exp(x) + 1.0)) / nk - n_electrons

    lo, hi = eig_ev.min() - 50 * kt_ev, eig_ev.max() + 50 * kt_ev
    if count(hi) < 0:
        raise ComputeError("too few bands for the electron count; use a larger basis")
    return float(brentq(count, lo, hi, xtol=1e-12))
