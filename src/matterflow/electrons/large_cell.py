"""Helpers that keep chunked inference linear in the cell size (10⁵ atoms and more).

A chunk of grid points of a large cell sees only the atoms within the descriptor's
cut-off. :func:`atoms_near_points` hands the descriptor code that subset (same cell,
same periodic boundary conditions), so each chunk's set-up (periodic images, cell
list) costs O(atoms near the chunk) instead of O(all atoms): for contiguous C-order
chunks the points lie in a thin slab along the first cell vector. The descriptors
are bit-for-bit those of the whole cell: every atom image within the cut-off of a
point of the chunk is kept and the images keep their relative order (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["atoms_near_points", "descriptor_cutoff"]


def descriptor_cutoff(dparams: Any) -> float | None:
    """Largest cut-off (Å) of bispectrum or Gaussian descriptor parameters; None otherwise."""
    name = type(dparams).__name__
    if name in ("BispectrumParams", "GaussianDescriptorParams") and getattr(dparams, "radius", None):
        return float(2.0 * max(dparams.radius.values()) * dparams.rcutfac)
    return None


def atoms_near_points(atoms: Any, grid_shape: tuple[int, int, int], points: np.ndarray,
                      cutoff: float) -> Any:
    """The atoms of ``atoms`` that may lie within ``cutoff`` (Å) of the grid ``points``.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic cell.
    grid_shape : (nx, ny, nz)
        Grid point ``(i, j, k)`` at fractional ``(i/nx, j/ny, k/nz)``.
    points : (n,) int
        Flat C-order indices of the chunk.
    cutoff : float
        Å.

    Returns
    -------
    ase.Atoms
        ``atoms`` itself when every atom may be needed, else the subset (same cell, pbc),
        in the original order. A periodic image of an atom within ``cutoff`` of a point
        lies within ``cutoff / h_d`` (fractional) of the points' range along every axis
        ``d`` (``h_d`` the lattice-plane spacing), so no neighbour is lost.
    """
    pts = np.asarray(points)
    if pts.size == 0:
        return atoms
    cell = np.asarray(atoms.cell[:], dtype=float)
    inv = np.linalg.inv(cell)
    margin = cutoff * np.linalg.norm(inv, axis=0) * (1 + 1e-9) + 1e-12   # cutoff / plane spacing
    nx, ny, nz = grid_shape
    i, rem = np.divmod(pts, ny * nz)
    j, k = np.divmod(rem, nz)
    frac_atoms = atoms.get_positions() @ inv
    frac_atoms -= np.floor(frac_atoms)
    keep = np.ones(len(atoms), dtype=bool)
    for d, (idx, n) in enumerate(((i, nx), (j, ny), (k, nz))):
        lo, hi = idx.min() / n, idx.max() / n
        if hi - lo + 2 * margin[d] >= 1.0:
            continue                                      # the whole axis is needed
        t = (frac_atoms[:, d] - lo) % 1.0                 # position above lo, periodic
        keep &= (t <= hi - lo + margin[d]) | (t >= 1.0 - margin[d])
    if keep.all() or not keep.any():
        return atoms
    return atoms[np.flatnonzero(keep)]
