"""Periodic boxes of dense molecular hydrogen: molecular solid and molecular liquid.

- ``phase="solid"``: molecular centres on an hcp lattice (``n_cells`` repeats of the
  ideal-c/a hcp cell, 2 centres each), scaled to the
  requested mass density; each centre displaced by an isotropic Gaussian of
  standard deviation ``thermal_ang * sqrt(T / 100 K)`` (an Einstein-model stand-in for
  thermal displacements) and each molecule's axis tilted from the c-axis by a
  random libration angle of standard deviation ``libration_deg * sqrt(T / 100 K)``.
- ``phase="liquid"``: molecules (centre and axis uniform on the sphere) placed by random
  sequential insertion with a hard-sphere exclusion: centres at least ``min_distance_ang``
  apart and atoms of different molecules at least ``0.75 * min_distance_ang`` (a stated
  hard-sphere model, no MD).

Bond length 0.74 Å (gas-phase H₂). Structures only: the DFT of these boxes is
``matterflow.electrons.dft.run_dft`` (explicit ``mesh``, Fermi–Dirac smearing).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from matterflow.core.errors import ComputeError, InputError

__all__ = ["hydrogen_box", "atomic_density_sum", "H2_BOND_ANG"]

H2_BOND_ANG = 0.74
_AMU_G = 1.66053906660e-24
_M_H = 1.00794


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def hydrogen_box(n_cells: tuple[int, int, int] = (2, 2, 2), *, density_g_cm3: float = 0.6,
                 temperature_k: float = 100.0, phase: Literal["solid", "liquid"] = "solid",
                 thermal_ang: float = 0.1, libration_deg: float = 15.0, min_distance_ang: float = 1.6,
                 seed: int = 0) -> Any:
    """An ``ase.Atoms`` box of H₂ molecules (2 molecules per hcp cell, ``prod(n_cells)`` cells).

    Parameters
    ----------
    n_cells : 3 ints
        Repeats of the hcp cell (2 molecular centres each; also the liquid's box shape).
    density_g_cm3 : float
        Mass density, g/cm³ (solid H₂ at ambient pressure ≈ 0.087; 0.3–1 is compressed).
    temperature_k : float
        Ionic temperature scaling displacements and librations, K.
    phase : ``"solid"`` or ``"liquid"``.
    """
    from ase import Atoms

    if phase not in ("solid", "liquid"):
        raise InputError(f"phase: solid or liquid is accepted; got {phase!r}")
    if not (0 < density_g_cm3 <= 5):
        raise InputError(f"density_g_cm3: a value in (0, 5] is needed; got {density_g_cm3}")
    if temperature_k < 0:
        raise InputError(f"temperature_k: must be >= 0; got {temperature_k}")
    n_cells = tuple(int(n) for n in n_cells)
    if len(n_cells) != 3 or min(n_cells) < 1:
        raise InputError(f"n_cells: three positive integers are needed; got {n_cells}")
    rng = np.random.default_rng(seed)
    n_mol = 2 * int(np.prod(n_cells))
    volume = n_mol * 2 * _M_H * _AMU_G / density_g_cm3 * 1e24          # Å³
    # hcp cell, ideal c/a: V_cell = sqrt(3)/2 a² c = sqrt(2) a³ for 2 centres
    a = (volume / np.prod(n_cells) / np.sqrt(2.0)) ** (1.0 / 3.0)
    c = a * np.sqrt(8.0 / 3.0)
    prim = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    cell = prim * np.array(n_cells)[:, None]
    scale = np.sqrt(max(temperature_k, 0.0) / 100.0)
    if phase == "solid":
        basis = np.array([[0, 0, 0], [1 / 3, 2 / 3, 1 / 2]])
        idx = np.array(np.meshgrid(*[np.arange(n) for n in n_cells], indexing="ij")).reshape(3, -1).T
        frac = (idx[:, None, :] + basis[None]).reshape(-1, 3) / np.array(n_cells)
        centres = frac @ cell + rng.normal(scale=thermal_ang * scale, size=(n_mol, 3))
        tilt = np.deg2rad(libration_deg * scale) * np.abs(rng.normal(size=n_mol))
        phi = rng.uniform(0, 2 * np.pi, n_mol)
        axes = np.stack([np.sin(tilt) * np.cos(phi), np.sin(tilt) * np.sin(phi), np.cos(tilt)], axis=1)
    else:
        inv = np.linalg.inv(cell)

        def mic(d: np.ndarray) -> np.ndarray:
            f = d @ inv
            return np.linalg.norm((f - np.round(f)) @ cell, axis=-1)

        centres, axes = np.zeros((0, 3)), np.zeros((0, 3))
        for _ in range(2000 * n_mol):
            if len(centres) == n_mol:
                break
            p, u = rng.uniform(size=3) @ cell, _unit_vectors(rng, 1)[0]
            if len(centres):
                if np.min(mic(centres - p)) < min_distance_ang:
                    continue
                old = np.concatenate([centres - 0.5 * H2_BOND_ANG * axes, centres + 0.5 * H2_BOND_ANG * axes])
                new = np.stack([p - 0.5 * H2_BOND_ANG * u, p + 0.5 * H2_BOND_ANG * u])
                if np.min(mic(old[:, None, :] - new[None])) < 0.75 * min_distance_ang:
                    continue
            centres, axes = np.vstack([centres, p]), np.vstack([axes, u])
        if len(centres) < n_mol:
            raise ComputeError(f"hydrogen_box: could place only {len(centres)} of {n_mol} molecules with "
                               f"min_distance_ang {min_distance_ang} at {density_g_cm3} g/cm³; lower it")
    half = 0.5 * H2_BOND_ANG * axes
    pos = np.concatenate([centres - half, centres + half])
    atoms = Atoms(f"H{2 * n_mol}", positions=pos, cell=cell, pbc=True)
    atoms.wrap()
    atoms.info.update({"phase": phase, "density_g_cm3": float(density_g_cm3),
                       "temperature_k": float(temperature_k), "seed": int(seed)})
    return atoms


def atomic_density_sum(atoms: Any, grid_shape: tuple[int, int, int], n_electrons: float | None = None
                       ) -> np.ndarray:
    """Sum-of-atomic-densities baseline (1/Å³) on the grid of ``atoms`` (H only).

    Hydrogenic 1s densities ``exp(-2r/a0) / (pi a0^3)`` of every atom and its periodic
    images within 6 Å, scaled so the cell holds ``n_electrons`` (default: one per atom).
    Point (i, j, k) at fractional (i/nx, j/ny, k/nz), as the snapshots.
    """
    from matterflow.electrons.descriptors._grid import grid_points, image_atoms

    syms = set(atoms.get_chemical_symbols())
    if syms != {"H"}:
        raise InputError(f"atoms: atomic_density_sum knows H only; got {sorted(syms)}")
    a0 = 0.52917721092
    cell = np.asarray(atoms.cell[:], dtype=float)
    pts = grid_points(cell, tuple(int(g) for g in grid_shape), None)
    xyz, _ = image_atoms(cell, atoms.positions, np.zeros(len(atoms), dtype=int), 6.0)
    rho = np.zeros(len(pts))
    for s in range(0, len(pts), 2048):
        r = np.linalg.norm(pts[s:s + 2048, None, :] - xyz[None], axis=-1)
        rho[s:s + 2048] = np.exp(-2 * r / a0).sum(axis=1) / (np.pi * a0**3)
    n = float(len(atoms) if n_electrons is None else n_electrons)
    rho *= n / (rho.sum() * abs(np.linalg.det(cell)) / len(pts))
    return rho.reshape(tuple(int(g) for g in grid_shape))
