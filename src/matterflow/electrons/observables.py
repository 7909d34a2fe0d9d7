"""Observables from an LDOS, with no DFT code: DOS, density, Fermi level, band and total energy.

Energy integrals over the LDOS samples :math:`L(r, \\varepsilon_i)` on a uniform
energy grid are done with exact weights for an interpolant of the samples
(``kernel="cubic"``: Keys cubic convolution, which reproduces quadratics;
``"linear"``: hat functions), against the Fermi-Dirac function evaluated on a
64× finer grid, so a Fermi function sharper than the energy step is integrated
correctly (as MALA's "analytical" integration).

The LDOS of a DFT code is broadened with a Gaussian of width :math:`\\sigma`,
:math:`L_\\sigma = L * g_\\sigma`, which shifts every occupation integral by
:math:`\\tfrac{\\sigma^2}{2}\\int L\\,h''`. With ``broadening_correction`` the
weights integrate :math:`h - \\tfrac{\\sigma^2}{2}h''` instead of :math:`h`
(:math:`h = f,\\ \\varepsilon f,\\ s`), which removes that error to order
:math:`\\sigma^4` (it needs :math:`\\sigma \\lesssim 2 k_BT`; measured errors in the tests).

Total energy (Kohn-Sham, Harris-Foulkes form, per cell):

.. math::

    F = E_\\mathrm{band} - E_H[n] + E_{xc}[n] - \\int v_{xc}[n]\\,n
        + E_\\mathrm{Ewald} - TS,

- :math:`E_\\mathrm{band} = \\int \\varepsilon f(\\varepsilon) D(\\varepsilon)`; the
  eigenvalues already contain the local pseudopotential's G = 0 ("alpha Z")
  term, as in PySCF's GTH implementation, so no separate constant is added;
- :math:`E_H = \\tfrac{\\Omega}{2}\\sum_{G\\ne0} 4\\pi|n(G)|^2/G^2` by FFT on the grid;
- LDA: Slater exchange with Perdew-Zunger 81 (``"lda,pz"``) or VWN5
  (``"lda,vwn"``) correlation, evaluated on the grid (weights Ω/N, as PySCF);
- :math:`E_\\mathrm{Ewald}` of the ionic (valence) charges in a neutralising background;
- :math:`TS = k_BT\\int s(\\varepsilon) D(\\varepsilon)`,
  :math:`s = -f\\ln f - (1-f)\\ln(1-f)` (both spins in D).

Units: eV, Å, K; the LDOS in states/(eV·Å³), density in electrons/Å³.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.special import erfc, expit

from matterflow.core.errors import ComputeError, InputError
from matterflow.core.registry import quantity

__all__ = ["LdosObservables", "observables_from_ldos", "dos_from_ldos", "fermi_level",
           "density_from_ldos", "band_energy", "entropy_energy", "total_energy",
           "hartree_energy", "xc_energy", "ewald_energy", "lda_xc", "valence_charges",
           "occupation_weights", "GTH_VALENCE"]

HARTREE_EV = 27.211386245988
BOHR_A = 0.52917721092
KB_EV = 8.617333262e-5
_OVERSAMPLE = 64

GTH_VALENCE = {"H": 1, "He": 2, "Li": 3, "Be": 4, "B": 3, "C": 4, "N": 5, "O": 6, "F": 7,
               "Ne": 8, "Na": 9, "Mg": 10, "Al": 3, "Si": 4, "P": 5, "S": 6, "Cl": 7, "Ar": 8,
               "Ga": 3, "Ge": 4, "As": 5, "Se": 6, "Br": 7}
"""Valence charges of PySCF's ``gth-pade`` pseudopotentials (default variant per element)."""


@dataclass(frozen=True)
class LdosObservables:
    """What an LDOS gives (per cell)."""

    dos: np.ndarray = quantity("1/eV", "(ne,) density of states, both spins")
    density: np.ndarray = quantity("1/Å^3", "(nx, ny, nz) electrons per Å³")
    fermi_ev: float = quantity("eV", "chemical potential at the electronic temperature")
    band_energy_ev: float = quantity("eV", "integral of energy * f * DOS")
    total_energy_ev: float = quantity("eV", "free energy E - TS")
    energy_terms: dict = quantity("eV", "band, hartree, xc, -int v_xc n, ewald, -TS")


# ----------------------------------------------------------------------------- helpers

def _energy_step(energy_grid_ev: np.ndarray, where: str = "energy_grid_ev") -> float:
    e = np.asarray(energy_grid_ev, dtype=float)
    if e.ndim != 1 or len(e) < 4:
        raise InputError(f"{where}: must be a 1-d array of >= 4 energies; got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise InputError(f"{where}: contains NaN or inf")
    d = np.diff(e)
    de = float(d.mean())
    if de <= 0 or np.max(np.abs(d - de)) > 1e-6 * max(abs(de), 1e-12) + 1e-9:
        raise InputError(f"{where}: energies must be uniform and increasing "
                         f"(steps from {d.min():.6g} to {d.max():.6g} eV)")
    return de


def _check_finite(arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: contains NaN or inf")
    return arr


def _kernel_map(energy_grid_ev: np.ndarray, kernel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine energies (n_fine,) and, for each, node indices (n_fine, 4) and weights (n_fine, 4)
    of the interpolant, times the fine quadrature weight (midpoint rule)."""
    e = np.asarray(energy_grid_ev, dtype=float)
    de = _energy_step(e)
    return _kernel_map_cached(float(e[0]), de, len(e), kernel)


@functools.lru_cache(maxsize=16)
def _kernel_map_cached(e0: float, de: float, ne: int, kernel: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = e0 + de * np.arange(ne)
    t = (np.arange(_OVERSAMPLE) + 0.5) / _OVERSAMPLE  # (M,)
    left = np.arange(ne - 1)
    fine = (e[left][:, None] + t[None, :] * de).ravel()
    i0 = np.repeat(left, _OVERSAMPLE)
    tt = np.tile(t, ne - 1)
    if kernel == "linear":
        idx = np.stack([i0, i0 + 1, i0, i0], axis=1)
        w = np.stack([1 - tt, tt, 0 * tt, 0 * tt], axis=1)
    elif kernel == "cubic":
        a = -0.5

        def keys(s: np.ndarray) -> np.ndarray:
            s = np.abs(s)
            return np.where(s <= 1, (a + 2) * s**3 - (a + 3) * s**2 + 1,
                            np.where(s < 2, a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a, 0.0))

        idx = np.stack([i0 - 1, i0, i0 + 1, i0 + 2], axis=1)
        w = np.stack([keys(1 + tt), keys(tt), keys(1 - tt), keys(2 - tt)], axis=1)
        out = (idx < 0) | (idx >= ne)  # the LDOS is taken as zero outside the window
        w = np.where(out, 0.0, w)
        idx = np.clip(idx, 0, ne - 1)
    else:
        raise InputError(f"kernel: accepted 'cubic', 'linear'; got {kernel!r}")
    out = (fine, idx, w * (de / _OVERSAMPLE))
    for arr in out:
        arr.flags.writeable = False
    return out


def _fermi_parts(energy: np.ndarray, mu: float, kt: float):
    x = (energy - mu) / kt
    f = expit(-x)
    g = f * (1 - f)  # = -kT f'
    return x, f, g


def occupation_weights(energy_grid_ev: np.ndarray, fermi_ev: float, temperature_k: float, *,
                       quantity_name: str = "occupation", ldos_smearing_ev: float = 0.0,
                       kernel: str = "cubic") -> np.ndarray:
    """Weights ``w`` (ne,) with ``sum_i w_i D(e_i)`` = the energy integral of D times h.

    ``quantity_name``: ``"occupation"`` (h = f), ``"energy"`` (h = e f) or
    ``"entropy"`` (h = s, dimensionless per state). With ``ldos_smearing_ev > 0`` the
    Gaussian broadening of D is corrected to second order (h - sigma^2/2 h'').
    """
    if temperature_k <= 0:
        raise InputError(f"temperature_k must be > 0 K; got {temperature_k}")
    kt = KB_EV * temperature_k
    fine, idx, w = _kernel_map(energy_grid_ev, kernel)
    x, f, g = _fermi_parts(fine, fermi_ev, kt)
    s2 = 0.5 * ldos_smearing_ev**2
    fpp = g * (1 - 2 * f) / kt**2  # f''
    if quantity_name == "occupation":
        h = f - s2 * fpp
    elif quantity_name == "energy":
        h = fine * f - s2 * (2 * (-g / kt) + fine * fpp)
    elif quantity_name == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -(np.where(f > 0, f * np.log(f), 0.0) + np.where(f < 1, (1 - f) * np.log1p(-f), 0.0))
        spp = (-g + x * (1 - 2 * f) * g) / kt**2
        h = s - s2 * spp
    else:
        raise InputError(f"quantity_name: accepted 'occupation', 'energy', 'entropy'; "
                         f"got {quantity_name!r}")
    return np.bincount(idx.ravel(), weights=(w * h[:, None]).ravel(),
                       minlength=len(energy_grid_ev))


def _check_window(energy_grid_ev: np.ndarray, fermi_ev: float, temperature_k: float,
                  ldos_smearing_ev: float) -> None:
    e = np.asarray(energy_grid_ev)
    top = fermi_ev + 10 * KB_EV * temperature_k + 2 * ldos_smearing_ev
    if not (e[0] < fermi_ev and top <= e[-1]):
        raise InputError(f"energy_grid_ev: [{e[0]:.3f}, {e[-1]:.3f}] eV does not cover the Fermi "
                         f"level {fermi_ev:.3f} eV + 10 kT + 2 sigma = {top:.3f} eV")


# ----------------------------------------------------------------------------- LDOS integrals

def dos_from_ldos(ldos: np.ndarray, voxel_volume_a3: float) -> np.ndarray:
    """DOS (ne,) states/eV: the LDOS (..., ne) summed over grid points times the voxel volume.

    Additive over grid chunks: the DOS of a cell is the sum of its chunks' DOS.
    """
    ldos = np.asarray(ldos)
    if ldos.ndim < 1:
        raise InputError("ldos: must have an energy axis last")
    return ldos.reshape(-1, ldos.shape[-1]).sum(axis=0, dtype=float) * float(voxel_volume_a3)


def _count(dos: np.ndarray, energy_grid_ev: np.ndarray, mu: float, temperature_k: float,
           ldos_smearing_ev: float, kernel: str) -> float:
    w = occupation_weights(energy_grid_ev, mu, temperature_k, ldos_smearing_ev=ldos_smearing_ev,
                           kernel=kernel)
    return float(w @ dos)


def fermi_level(dos: np.ndarray, energy_grid_ev: np.ndarray, n_electrons: float,
                temperature_k: float, *, ldos_smearing_ev: float = 0.0,
                kernel: str = "cubic") -> float:
    """Chemical potential (eV) at which the DOS holds ``n_electrons`` at ``temperature_k``."""
    from scipy.optimize import brentq

    dos = _check_finite(dos, "dos")
    e = np.asarray(energy_grid_ev, dtype=float)
    _energy_step(e)
    if dos.shape != e.shape:
        raise InputError(f"dos: shape {dos.shape} does not match energy_grid_ev {e.shape}")

    def excess(mu: float) -> float:
        return _count(dos, e, mu, temperature_k, ldos_smearing_ev, kernel) - n_electrons

    kt = KB_EV * temperature_k
    if ldos_smearing_ev > 3 * kt:
        import warnings

        from matterflow.core.errors import MatterflowWarning
        warnings.warn(f"LDOS Gaussian width {ldos_smearing_ev:g} eV is more than 3 kT "
                      f"({3 * kt:.3f} eV at {temperature_k:g} K): energies from this LDOS carry a "
                      "broadening error of several meV/atom (about 3 at 0.15 eV, 10 at 0.3 eV for "
                      "Al at 298 K) even for the exact LDOS", MatterflowWarning, stacklevel=2)
    lo, hi = e[0], e[-1]
    if excess(lo) > 0 or excess(hi) < 0:
        raise InputError(f"energy_grid_ev: [{lo:.3f}, {hi:.3f}] eV holds {excess(hi) + n_electrons:.4f}"
                         f" electrons; {n_electrons} needed: the grid does not cover the Fermi level")
    mu = float(brentq(excess, lo, hi, xtol=1e-10))
    _check_window(e, mu, temperature_k, ldos_smearing_ev)
    return mu


def band_energy(dos: np.ndarray, energy_grid_ev: np.ndarray, fermi_ev: float, temperature_k: float,
                *, ldos_smearing_ev: float = 0.0, kernel: str = "cubic") -> float:
    """Band energy (eV): integral of e f(e) DOS(e)."""
    w = occupation_weights(energy_grid_ev, fermi_ev, temperature_k, quantity_name="energy",
                           ldos_smearing_ev=ldos_smearing_ev, kernel=kernel)
    return float(w @ _check_finite(dos, "dos"))


def entropy_energy(dos: np.ndarray, energy_grid_ev: np.ndarray, fermi_ev: float,
                   temperature_k: float, *, ldos_smearing_ev: float = 0.0,
                   kernel: str = "cubic") -> float:
    """Electronic T*S (eV), S the Fermi-Dirac entropy of the occupied DOS."""
    w = occupation_weights(energy_grid_ev, fermi_ev, temperature_k, quantity_name="entropy",
                           ldos_smearing_ev=ldos_smearing_ev, kernel=kernel)
    return float(KB_EV * temperature_k * (w @ _check_finite(dos, "dos")))


def density_from_ldos(ldos_chunk: np.ndarray, energy_grid_ev: np.ndarray, fermi_ev: float,
                      temperature_k: float, *, ldos_smearing_ev: float = 0.0,
                      kernel: str = "cubic") -> np.ndarray:
    """Electron density (e/Å³) of any chunk of LDOS points (..., ne) -> (...)."""
    ldos_chunk = np.asarray(ldos_chunk)
    e = np.asarray(energy_grid_ev, dtype=float)
    if ldos_chunk.shape[-1] != len(e):
        raise InputError(f"ldos: last axis {ldos_chunk.shape[-1]} does not match energy_grid_ev "
                         f"({len(e)} energies)")
    w = occupation_weights(e, fermi_ev, temperature_k, ldos_smearing_ev=ldos_smearing_ev,
                           kernel=kernel)
    return ldos_chunk @ w


# ----------------------------------------------------------------------------- double counting

def valence_charges(atoms: Atoms, valence: dict[str, float] | None = None) -> np.ndarray:
    """Ionic (pseudopotential valence) charge of each atom; unknown species -> InputError."""
    table = dict(GTH_VALENCE)
    if valence:
        table.update(valence)
    syms = atoms.get_chemical_symbols()
    unknown = sorted(set(syms) - set(table))
    if unknown:
        raise InputError(f"atoms: unknown species {unknown}; valence charges known for "
                         f"{sorted(table)} (pass valence={{'X': Z}})")
    return np.array([float(table[s]) for s in syms])


def _cell_bohr(atoms: Atoms) -> np.ndarray:
    cell = np.asarray(atoms.cell[:], dtype=float) / BOHR_A
    if abs(np.linalg.det(cell)) < 1e-8:
        raise InputError("atoms: the cell has zero volume; a periodic cell is required")
    return cell


def _gvectors(cell_bohr: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """|G|^2 (nx, ny, nz) in 1/Bohr^2, FFT ordering."""
    b = 2 * np.pi * np.linalg.inv(cell_bohr).T  # rows b_i
    m = [np.fft.fftfreq(n, 1.0 / n) for n in shape]
    g = (m[0][:, None, None, None] * b[0] + m[1][None, :, None, None] * b[1]
         + m[2][None, None, :, None] * b[2])
    return np.einsum("...i,...i->...", g, g)


def hartree_energy(density: np.ndarray, atoms: Atoms) -> float:
    """Hartree energy (eV) of a periodic density (nx, ny, nz) e/Å³ by FFT (G = 0 excluded)."""
    n = _check_finite(density, "density") * BOHR_A**3  # e/Bohr^3
    cell = _cell_bohr(atoms)
    vol = abs(np.linalg.det(cell))
    ng = np.fft.fftn(n) / n.size
    g2 = _gvectors(cell, n.shape)
    g2[0, 0, 0] = np.inf
    return float(0.5 * vol * np.sum(4 * np.pi * np.abs(ng) ** 2 / g2) * HARTREE_EV)


def lda_xc(n_bohr: np.ndarray, xc: str = "lda,pz") -> tuple[np.ndarray, np.ndarray]:
    """LDA energy per electron and potential (Hartree) of a density (e/Bohr³), spin-unpolarised."""
    n = np.asarray(n_bohr, dtype=float)
    eps = np.zeros_like(n)
    vxc = np.zeros_like(n)
    m = n > 1e-14
    nn = n[m]
    ex = -0.75 * (3 / np.pi) ** (1 / 3) * np.cbrt(nn)
    vx = 4.0 / 3.0 * ex
    rs = np.cbrt(3.0 / (4 * np.pi * nn))
    if xc == "lda,pz":
        gamma, b1, b2 = -0.1423, 1.0529, 0.3334
        a, b, c, d = 0.0311, -0.048, 0.0020, -0.0116
        srs = np.sqrt(rs)
        den = 1 + b1 * srs + b2 * rs
        with np.errstate(divide="ignore", invalid="ignore"):
            ec_hi = gamma / den
            vc_hi = ec_hi * (1 + 7 / 6 * b1 * srs + 4 / 3 * b2 * rs) / den
            lr = np.log(rs)
        ec_lo = a * lr + b + c * rs * lr + d * rs
        vc_lo = a * lr + (b - a / 3) + 2 / 3 * c * rs * lr + (2 * d - c) / 3 * rs
        hi = rs >= 1
        ec, vc = np.where(hi, ec_hi, ec_lo), np.where(hi, vc_hi, vc_lo)
    elif xc == "lda,vwn":
        a, x0, b, c = 0.0310907, -0.10498, 3.72744, 12.9352
        q = np.sqrt(4 * c - b * b)
        x = np.sqrt(rs)
        X = x * x + b * x + c
        X0 = x0 * x0 + b * x0 + c
        at = np.arctan(q / (2 * x + b))
        ec = a * (np.log(x * x / X) + 2 * b / q * at
                  - b * x0 / X0 * (np.log((x - x0) ** 2 / X) + 2 * (b + 2 * x0) / q * at))
        dat = -2 * q / ((2 * x + b) ** 2 + q * q)  # d atan / dx ... times 1
        dec = a * (2 / x - (2 * x + b) / X + 2 * b / q * dat
                   - b * x0 / X0 * (2 / (x - x0) - (2 * x + b) / X + 2 * (b + 2 * x0) / q * dat))
        vc = ec - x / 6 * dec
    else:
        raise InputError(f"xc: accepted 'lda,pz', 'lda,vwn'; got {xc!r}")
    eps[m] = ex + ec
    vxc[m] = vx + vc
    return eps, vxc


def xc_energy(density: np.ndarray, atoms: Atoms, xc: str = "lda,pz") -> tuple[float, float]:
    """LDA exchange-correlation energy and the integral of v_xc * n (both eV), on the grid."""
    n = _check_finite(density, "density") * BOHR_A**3
    vol = abs(np.linalg.det(_cell_bohr(atoms)))
    dv = vol / n.size
    eps, v = lda_xc(n, xc)
    return float(dv * np.sum(n * eps) * HARTREE_EV), float(dv * np.sum(n * v) * HARTREE_EV)


def ewald_energy(atoms: Atoms, charges: np.ndarray | None = None, *, tol: float = 1e-14) -> float:
    """Ewald energy (eV) of point charges in a neutralising uniform background (periodic cell)."""
    z = valence_charges(atoms) if charges is None else np.asarray(charges, dtype=float)
    from matterflow.electrons.ewald import DIRECT_EWALD_MAX_ATOMS, ewald_energy_pme

    if len(z) > DIRECT_EWALD_MAX_ATOMS:   # the direct sum is O(N^2): smooth PME, O(N log N)
        return ewald_energy_pme(atoms, z)
    cell = _cell_bohr(atoms)
    vol = abs(np.linalg.det(cell))
    pos = np.asarray(atoms.get_positions(wrap=True), dtype=float) / BOHR_A
    if not np.all(np.isfinite(pos)):
        raise InputError("atoms.positions: contain NaN or inf")
    eta = np.sqrt(np.pi) / vol ** (1 / 3) * (len(z) ** (1 / 6))
    x = np.sqrt(-np.log(tol))
    rcut, gcut = x / eta, 2 * eta * x
    # real space
    heights = vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    nmax = np.ceil(rcut / heights).astype(int)
    rng = [np.arange(-k, k + 1) for k in nmax]
    lat = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3) @ cell
    e_real = 0.0
    for i in range(len(z)):
        d = pos[i] - pos  # (n, 3)
        r = np.linalg.norm(d[:, None, :] + lat[None, :, :], axis=-1)
        mask = r > 1e-10
        e_real += 0.5 * z[i] * np.sum((z[:, None] * erfc(eta * r) / np.where(mask, r, 1.0))[mask])
    # reciprocal space
    b = 2 * np.pi * np.linalg.inv(cell).T
    gmax = np.ceil(gcut * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    grng = [np.arange(-k, k + 1) for k in gmax]
    gv = np.stack(np.meshgrid(*grng, indexing="ij"), -1).reshape(-1, 3) @ b
    g2 = np.einsum("ij,ij->i", gv, gv)
    keep = (g2 > 1e-12) & (g2 <= gcut**2)
    gv, g2 = gv[keep], g2[keep]
    s = np.exp(-1j * gv @ pos.T) @ z
    e_rec = 2 * np.pi / vol * np.sum(np.abs(s) ** 2 * np.exp(-g2 / (4 * eta**2)) / g2)
    e_self = -eta / np.sqrt(np.pi) * np.sum(z**2)
    e_bg = -np.pi * np.sum(z) ** 2 / (2 * vol * eta**2)
    return float((e_real + e_rec + e_self + e_bg) * HARTREE_EV)


def total_energy(density: np.ndarray, atoms: Atoms, *, band_energy_ev: float,
                 entropy_ts_ev: float = 0.0, xc: str = "lda,pz",
                 valence: dict[str, float] | None = None) -> tuple[float, dict[str, float]]:
    """Free energy (eV) from the band energy and the density; returns (F, terms)."""
    e_h = hartree_energy(density, atoms)
    e_xc, vxc_n = xc_energy(density, atoms, xc)
    e_ew = ewald_energy(atoms, valence_charges(atoms, valence))
    terms = {"band": float(band_energy_ev), "hartree_double_counting": -e_h, "xc": e_xc,
             "vxc_double_counting": -vxc_n, "ewald": e_ew, "minus_ts": -float(entropy_ts_ev)}
    return float(sum(terms.values())), terms


def observables_from_ldos(ldos: np.ndarray, energy_grid_ev: np.ndarray, atoms: Atoms, *,
                          grid_shape: tuple[int, int, int] | None = None, temperature_k: float,
                          ldos_smearing_ev: float, n_electrons: float | None = None,
                          xc: str = "lda,pz", kernel: str = "cubic",
                          broadening_correction: bool = True,
                          valence: dict[str, float] | None = None) -> LdosObservables:
    """DOS, density, Fermi level, band and total energy of a cell from its LDOS.

    Parameters
    ----------
    ldos : (nx, ny, nz, ne) or (n_points, ne)
        States/(eV Å³), both spins; flat input needs ``grid_shape``.
    energy_grid_ev : (ne,)
        Uniform energies (eV).
    atoms : ase.Atoms
        The cell (Å); its volume sets the voxel volume, its ions the Ewald energy.
    temperature_k : float
        Electronic temperature (K).
    ldos_smearing_ev : float
        Gaussian width the LDOS was broadened with (eV), for the broadening correction.
    n_electrons : float or None
        Valence electrons per cell; None: sum of the GTH valence charges.
    """
    ldos = np.asarray(ldos)
    e = np.asarray(energy_grid_ev, dtype=float)
    _energy_step(e)
    if ldos.shape[-1] != len(e):
        raise InputError(f"ldos: energy axis has {ldos.shape[-1]} values; energy_grid_ev has {len(e)}")
    if grid_shape is None:
        if ldos.ndim != 4:
            raise InputError(f"ldos: shape {ldos.shape}; give (nx, ny, nz, ne) or grid_shape")
        grid_shape = ldos.shape[:3]
    grid_shape = tuple(int(g) for g in grid_shape)
    if int(np.prod(grid_shape)) * len(e) != ldos.size:
        raise InputError(f"ldos: shape {ldos.shape} does not match grid_shape {grid_shape} "
                         f"x {len(e)} energies")
    sigma = ldos_smearing_ev if broadening_correction else 0.0
    if n_electrons is None:
        n_electrons = float(valence_charges(atoms, valence).sum())
    dv = abs(atoms.cell.volume) / int(np.prod(grid_shape))
    dos = dos_from_ldos(ldos, dv)
    if not np.all(np.isfinite(dos)):  # a NaN or inf anywhere in the LDOS reaches the DOS
        raise InputError("ldos: contains NaN or inf")
    mu = fermi_level(dos, e, n_electrons, temperature_k, ldos_smearing_ev=sigma, kernel=kernel)
    e_band = band_energy(dos, e, mu, temperature_k, ldos_smearing_ev=sigma, kernel=kernel)
    ts = entropy_energy(dos, e, mu, temperature_k, ldos_smearing_ev=sigma, kernel=kernel)
    density = density_from_ldos(ldos.reshape(-1, len(e)), e, mu, temperature_k,
                                ldos_smearing_ev=sigma, kernel=kernel).reshape(grid_shape)
    e_tot, terms = total_energy(density, atoms, band_energy_ev=e_band, entropy_ts_ev=ts, xc=xc,
                                valence=valence)
    if not np.isfinite(e_tot):
        raise ComputeError("total energy is not finite (negative or NaN density from the LDOS?)")
    return LdosObservables(dos=dos, density=density, fermi_ev=mu, band_energy_ev=e_band,
                           total_energy_ev=e_tot, energy_terms=terms)
