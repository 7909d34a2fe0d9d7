"""Atomic structures for DFT training data: fcc aluminium supercells with thermal displacements.

The displacements are Gaussian with the mean-square amplitude of the Debye
model (zero-point motion included),

.. math::

    \\langle u_x^2 \\rangle = \\frac{3\\hbar^2}{M k_B \\Theta_D}
        \\left[\\frac{1}{4} + \\left(\\frac{T}{\\Theta_D}\\right)^2\\int_0^{\\Theta_D/T}
        \\frac{x\\,dx}{e^x - 1}\\right]

per Cartesian direction (Debye temperature of Al: 428 K). At 298 K this gives
an r.m.s. displacement of 0.096 Å per direction (14 % below in mean square the measured Debye-Waller
factor of Al, B = 0.85 Å² at room temperature, :math:`\\langle u_x^2\\rangle = B/8\\pi^2`).
The centre of mass is kept fixed.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk

from matterflow.core.errors import InputError

__all__ = ["aluminium_supercell", "debye_msd_a2", "wrap_atoms", "AL_LATTICE_A", "AL_DEBYE_K"]

AL_LATTICE_A = 4.05
"""fcc lattice constant of aluminium (Å)."""
AL_DEBYE_K = 428.0
"""Debye temperature of aluminium (K)."""
_HBAR_JS = 1.054571817e-34
_KB_JK = 1.380649e-23
_AMU_KG = 1.66053906660e-27


def debye_msd_a2(temperature_k: float, mass_amu: float, debye_k: float) -> float:
    """Mean-square displacement per Cartesian direction in the Debye model (Å²).

    Parameters
    ----------
    temperature_k : float
        Temperature (K), >= 0.
    mass_amu : float
        Atomic mass (u).
    debye_k : float
        Debye temperature (K).
    """
    if temperature_k < 0:
        raise InputError(f"temperature_k must be >= 0 K; got {temperature_k}")
    pref = 3.0 * _HBAR_JS**2 / (mass_amu * _AMU_KG * _KB_JK * debye_k) * 1e20  # Å²
    if temperature_k == 0:
        return pref * 0.25
    xmax = debye_k / temperature_k
    x = np.linspace(1e-12, xmax, 4001)
    integrand = x / np.expm1(x)
    phi = np.trapezoid(integrand, x) / xmax
    return float(pref * (0.25 + phi / xmax))


def wrap_atoms(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` with every atom wrapped into the periodic cell."""
    out = atoms.copy()
    if not np.all(out.pbc):
        out.pbc = True
    out.wrap(eps=0.0)
    return out


def aluminium_supercell(repeat: int | tuple[int, int, int] = (1, 1, 1), temperature_k: float = 298.0,
                        seed: int = 0, *, lattice_a: float = AL_LATTICE_A,
                        cubic: bool = True) -> Atoms:
    """An fcc Al supercell with Debye-model thermal displacements.

    Parameters
    ----------
    repeat : int or (3,) ints
        Repetitions of the cell (the 4-atom conventional cube if ``cubic``,
        else the 1-atom primitive cell); ``2`` means (2, 2, 2).
    temperature_k : float
        Temperature of the displacements (K); 0 gives zero-point motion only.
    seed : int
        Random seed of the displacements.
    lattice_a : float
        Lattice constant (Å).

    Returns
    -------
    ase.Atoms
        Periodic, atoms wrapped into the cell.
    """
    if isinstance(repeat, (int, np.integer)):
        repeat = (int(repeat),) * 3
    repeat = tuple(int(r) for r in repeat)
    if len(repeat) != 3 or min(repeat) < 1:
        raise InputError(f"repeat must be a positive int or three positive ints; got {repeat}")
    atoms = bulk("Al", "fcc", a=lattice_a, cubic=cubic).repeat(repeat)
    msd = debye_msd_a2(temperature_k, float(atoms.get_masses()[0]), AL_DEBYE_K)
    rng = np.random.default_rng(seed)
    disp = rng.normal(0.0, np.sqrt(msd), size=(len(atoms), 3))
    disp -= disp.mean(axis=0)
    atoms.positions += disp
    return wrap_atoms(atoms)
