"""Re-broadening of an LDOS to a wider Gaussian width (no new DFT run).

An LDOS computed with Gaussian broadening ``σ₀`` is the sum of the states'
Gaussians of width ``σ₀``; convolving it along energy with a Gaussian of width
``√(σ² − σ₀²)`` gives exactly the LDOS of width ``σ`` (Gaussians convolve into
Gaussians with variances adding), up to the ends of the energy window and the
discretisation of the energy grid. A wider LDOS is smoother (easier to learn)
but carries a larger broadening error in the energies derived from it (see
``docs/electrons.md``: about 1 meV/atom at σ = 0.1 eV, 3 at 0.15, 10 at 0.3 eV
for Al at 298 K).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from matterflow.electrons.snapshot import Snapshot

__all__ = ["rebroaden_ldos", "rebroaden_snapshot"]


def rebroaden_ldos(ldos: np.ndarray, energies_ev: np.ndarray, sigma_from_ev: float,
                   sigma_to_ev: float) -> np.ndarray:
    """Convolve an LDOS of Gaussian width ``sigma_from_ev`` into one of width ``sigma_to_ev``.

    Parameters
    ----------
    ldos : ndarray, shape (..., ne)
        LDOS (any units) on the uniform energy grid ``energies_ev``.
    energies_ev : ndarray, shape (ne,)
        Uniformly spaced energies, eV.
    sigma_from_ev, sigma_to_ev : float
        Present and wanted Gaussian standard deviation, eV (``sigma_to_ev >= sigma_from_ev``).

    Returns
    -------
    ndarray, shape (..., ne)
        The re-broadened LDOS (zero beyond the window is assumed at its ends).
    """
    from scipy.ndimage import gaussian_filter1d

    e = np.asarray(energies_ev, dtype=np.float64)
    ldos = np.asarray(ldos)
    if e.ndim != 1 or len(e) < 2 or ldos.shape[-1] != len(e):
        raise InputError(f"energies_ev: a 1-D grid matching the LDOS' last axis is needed; got {e.shape} "
                         f"for an LDOS of shape {ldos.shape}")
    step = np.diff(e)
    if not np.allclose(step, step[0], rtol=1e-6, atol=1e-9) or step[0] <= 0:
        raise InputError("energies_ev: a uniform, increasing energy grid is needed")
    if not (np.isfinite(sigma_from_ev) and sigma_from_ev >= 0):
        raise InputError(f"sigma_from_ev: a width >= 0 eV is needed; got {sigma_from_ev}")
    if not (np.isfinite(sigma_to_ev) and sigma_to_ev >= sigma_from_ev):
        raise InputError(f"sigma_to_ev: {sigma_to_ev} eV is narrower than the LDOS' present width "
                         f"{sigma_from_ev} eV; only widening is possible")
    extra = float(np.sqrt(sigma_to_ev**2 - sigma_from_ev**2))
    if extra == 0.0:
        return ldos.copy()
    return gaussian_filter1d(ldos, extra / float(step[0]), axis=-1, mode="constant", truncate=5.0)


def rebroaden_snapshot(snap: Snapshot, sigma_ev: float) -> Snapshot:
    """A copy of a :class:`~matterflow.electrons.snapshot.Snapshot` with its LDOS widened to ``sigma_ev``.

    Density, energies, eigenvalues and Fermi level (DFT values) are kept; only
    ``ldos`` and ``ldos_smearing_ev`` change.
    """
    if snap.ldos is None:
        raise InputError("ldos: the snapshot holds no LDOS to re-broaden")
    ldos = rebroaden_ldos(snap.ldos, snap.energy_grid_ev, float(snap.ldos_smearing_ev), sigma_ev)
    meta = {**snap.meta, "ldos_rebroadened_from_ev": float(snap.ldos_smearing_ev)}
    return snap.with_(ldos=ldos, ldos_smearing_ev=float(sigma_ev), meta=meta)
