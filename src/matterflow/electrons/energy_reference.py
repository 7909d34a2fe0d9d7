"""Global energy reference of the LDOS: a shift of the energy axis with the atom density.

Periodic DFT (PySCF, QE) measures Kohn-Sham energies from the cell's mean electrostatic
potential (the G = 0 terms are dropped), a *global* quantity that moves with the number
density of atoms N/V (for a superposition of neutral atoms exactly by
-(N/V) ∫ v_atom d³r, the mean inner potential). A grid-point descriptor with a 4.7 Å
cut-off sees the local density only through noisy neighbour counts, so a network trained
on cells of two densities (solid and liquid Al at 933 K, 2.55 and 2.375 g/cm³: Fermi
levels 7.44 and 6.70 eV) regresses to the mean: band energies −450…−120 meV/atom on the
solid and +170…+350 on the liquid, on *training* cells as much as on held-out ones, and a
least-squares linear or quadratic model of the descriptors does the same.

The fix: the LDOS is learnt on the axis ``E' = E - s`` with ``s = k (N/V - n0)``, ``k`` the
slope of the training cells' Fermi levels against N/V (least squares, eV Å³) and ``n0``
their mean N/V; the prediction for a cell lives on ``energy_grid + s(cell)``. Cells of one
density get ``k = 0`` (nothing changes). It is stored in ``setup.meta["energy_reference"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["fit_energy_reference", "reference_shift_ev", "shift_ldos_axis"]


def fit_energy_reference(atom_densities_a3: Any, fermi_ev: Any, *, min_spread: float = 1e-4) -> dict:
    """Slope ``k`` (eV Å³) of the Fermi level against N/V (Å⁻³) and the mean N/V ``n0``.

    ``k = 0`` when the relative spread of N/V is below ``min_spread`` (one density).
    """
    n = np.asarray(atom_densities_a3, dtype=float)
    ef = np.asarray(fermi_ev, dtype=float)
    if n.shape != ef.shape or n.ndim != 1 or len(n) == 0:
        raise InputError(f"energy reference: one N/V per Fermi level is needed; got {n.shape} and {ef.shape}")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(ef)) and np.all(n > 0)):
        raise InputError("energy reference: N/V must be > 0 and the Fermi levels finite")
    n0 = float(n.mean())
    if np.ptp(n) <= min_spread * n0:
        return {"k_ev_a3": 0.0, "n0_a3": n0}
    k = float(np.sum((n - n0) * (ef - ef.mean())) / np.sum((n - n0) ** 2))
    return {"k_ev_a3": k, "n0_a3": n0}


def reference_shift_ev(setup: Any, atoms: Any) -> float:
    """The shift ``s`` (eV) of a cell's energy axis for a model's setup (0 without a reference)."""
    ref = (getattr(setup, "meta", None) or {}).get("energy_reference")
    if not ref:
        return 0.0
    return float(ref["k_ev_a3"]) * (len(atoms) / float(atoms.get_volume()) - float(ref["n0_a3"]))


def shift_ldos_axis(ldos: np.ndarray, energy_grid_ev: np.ndarray, shift_ev: float) -> np.ndarray:
    """LDOS on the axis ``E' = E - shift``: ``out(E') = ldos(E' + shift)`` on the same grid.

    Cubic B-spline interpolation along the last axis (the LDOS is Gaussian-broadened, smooth
    on its grid); outside the grid it is 0.
    """
    from scipy.interpolate import make_interp_spline

    e = np.asarray(energy_grid_ev, dtype=float)
    y = np.asarray(ldos)
    if y.shape[-1] != len(e):
        raise InputError(f"ldos: energy axis has {y.shape[-1]} values; energy_grid_ev has {len(e)}")
    if shift_ev == 0.0:
        return y
    flat = y.reshape(-1, len(e))
    target = e + shift_ev
    inside = (target >= e[0]) & (target <= e[-1])
    out = np.zeros_like(flat)
    spline = make_interp_spline(e, flat.T, k=3, axis=0)
    out[:, inside] = spline(target[inside]).T
    return out.reshape(y.shape)
