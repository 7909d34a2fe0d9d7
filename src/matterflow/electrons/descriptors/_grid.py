"""Grid geometry shared by the descriptors: grid points, periodic images, cell lists.

Grid point ``(i, j, k)`` of a ``(nx, ny, nz)`` grid sits at fractional
coordinates ``(i/nx, j/ny, k/nz)`` of the cell (origin at the cell corner),
as in LAMMPS ``compute sna/grid`` and PySCF ``cell.get_uniform_grids``.
Flat grid indices follow NumPy C order: ``flat = (i*ny + j)*nz + k``.
"""

from __future__ import annotations

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["check_atoms", "check_grid_shape", "grid_points", "grid_coordinates", "image_atoms",
           "build_cell_list", "species_index", "normalize_points", "NeighbourGrid"]


def check_grid_shape(grid_shape) -> tuple[int, int, int]:
    """Validate ``grid_shape`` (three positive integers)."""
    try:
        shape = tuple(int(n) for n in grid_shape)
    except (TypeError, ValueError):
        raise InputError(f"grid_shape: three positive integers (nx, ny, nz) are needed; "
                         f"got {grid_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(int(n) != n for n in grid_shape):
        raise InputError(f"grid_shape: three positive integers (nx, ny, nz) are needed; "
                         f"got {grid_shape!r}")
    return shape  # type: ignore[return-value]


def check_atoms(atoms) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cell, wrapped Cartesian positions and chemical symbols of ``atoms``.

    Returns
    -------
    cell : (3, 3) float array, Å (rows are the lattice vectors)
    positions : (n_atoms, 3) float array, Å, wrapped into the cell
    symbols : list of str
    """
    try:
        cell = np.asarray(atoms.get_cell()[:], dtype=float)
        pos = np.asarray(atoms.get_positions(), dtype=float)
        symbols = list(atoms.get_chemical_symbols())
    except AttributeError:
        raise InputError(f"atoms: an ase.Atoms object is needed; got {type(atoms).__name__}") from None
    if not np.all(np.isfinite(cell)):
        raise InputError("atoms.cell: contains NaN or infinite values")
    if abs(np.linalg.det(cell)) < 1e-8:
        raise InputError("atoms.cell: the cell has zero volume; a periodic 3-D cell is needed")
    if not np.all(np.isfinite(pos)):
        bad = np.flatnonzero(~np.all(np.isfinite(pos), axis=1))
        raise InputError(f"atoms.positions: NaN or infinite coordinates for atom(s) "
                         f"{bad[:10].tolist()}")
    if len(pos) == 0:
        raise InputError("atoms: the structure has no atoms")
    frac = np.linalg.solve(cell.T, pos.T).T
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0          # -1e-17 wraps to 1.0 in floating point
    return cell, frac @ cell, symbols


def species_index(symbols: list[str], species: list[str], field: str) -> np.ndarray:
    """Index of each atom's species in ``species``; unknown species name ``field``."""
    lookup = {s: i for i, s in enumerate(species)}
    unknown = sorted({s for s in symbols if s not in lookup})
    if unknown:
        raise InputError(f"{field}: no entry for species {', '.join(unknown)} present in the "
                         f"structure; entries given for: {', '.join(species) or '(none)'}")
    return np.array([lookup[s] for s in symbols], dtype=np.int64)


def grid_points(cell: np.ndarray, grid_shape: tuple[int, int, int],
                points: np.ndarray | None = None) -> np.ndarray:
    """Cartesian coordinates (Å) of grid points, shape (n_points, 3).

    ``points`` are flat C-order indices; None means all points in C order.
    """
    nx, ny, nz = grid_shape
    if points is None:
        points = np.arange(nx * ny * nz)
    i, rem = np.divmod(points, ny * nz)
    j, k = np.divmod(rem, nz)
    frac = np.stack([i / nx, j / ny, k / nz], axis=1)
    return frac @ cell


def grid_coordinates(atoms, grid_shape) -> np.ndarray:
    """Cartesian coordinates of every grid point, shape (nx, ny, nz, 3), Å.

    These are the three leading columns LAMMPS ``compute sna/grid`` writes
    before the bispectrum components.
    """
    shape = check_grid_shape(grid_shape)
    cell, _, _ = check_atoms(atoms)
    return grid_points(cell, shape).reshape(*shape, 3)


def normalize_points(points, grid_shape: tuple[int, int, int]) -> np.ndarray | None:
    """Flat indices from ``points`` (None, a slice or an integer array)."""
    n = int(np.prod(grid_shape))
    if points is None:
        return None
    if isinstance(points, slice):
        return np.arange(n)[points]
    idx = np.asarray(points)
    if idx.dtype == bool:
        raise InputError("points: flat grid indices or a slice are needed; got a boolean array")
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"points: a 1-D array of integer flat grid indices or a slice is needed; "
                         f"got shape {idx.shape} dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"points: flat indices must lie in [0, {n}) for grid {grid_shape}; got "
                         f"range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


def image_atoms(cell: np.ndarray, positions: np.ndarray, species: np.ndarray,
                cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Periodic images of the atoms that can lie within ``cutoff`` of a point of the cell.

    An atom image is kept when each of its fractional coordinates lies within
    ``cutoff / h`` of ``[0, 1)``, where ``h`` is the spacing of the lattice
    planes along that axis: any closer atom is kept, so no neighbour is lost.

    Returns
    -------
    xyz : (n_images, 3) float array, Å
    species : (n_images,) int array
    """
    inv = np.linalg.inv(cell)
    heights = 1.0 / np.linalg.norm(inv, axis=0)        # plane spacings, Å
    margin = cutoff / heights
    nrep = np.ceil(margin).astype(int)
    frac = positions @ inv
    shifts = np.array(np.meshgrid(*[np.arange(-n, n + 1) for n in nrep], indexing="ij")
                      ).reshape(3, -1).T
    allfrac = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    keep = np.all((allfrac > -margin) & (allfrac < 1.0 + margin), axis=1)
    allspec = np.tile(species, len(shifts))
    return allfrac[keep] @ cell, allspec[keep]


def build_cell_list(xyz: np.ndarray, lo: np.ndarray, bin_size: float, nbins: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Sort atom images into cubic bins of edge ``bin_size`` starting at ``lo``.

    Returns ``order`` (atom indices sorted by bin) and ``start`` (n_bins + 1
    offsets into ``order``); bin ``(a, b, c)`` has flat index ``(a*nb + b)*nc + c``.
    """
    b = np.floor((xyz - lo) / bin_size).astype(np.int64)
    b = np.clip(b, 0, nbins - 1)
    flat = (b[:, 0] * nbins[1] + b[:, 1]) * nbins[2] + b[:, 2]
    order = np.argsort(flat, kind="stable").astype(np.int64)
    counts = np.bincount(flat, minlength=int(np.prod(nbins)))
    start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return order, start


class NeighbourGrid:
    """Atom images and a cell list to find neighbours of arbitrary points of the cell."""

    def __init__(self, cell: np.ndarray, positions: np.ndarray, species: np.ndarray,
                 cutoff: float):
        self.cutoff = float(cutoff)
        xyz, spec = image_atoms(cell, positions, species, cutoff)
        corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T @ cell
        lo = corners.min(axis=0) - cutoff
        hi = corners.max(axis=0) + cutoff
        self.bin_size = max(cutoff, 1e-3)
        self.nbins = np.maximum(np.ceil((hi - lo) / self.bin_size).astype(np.int64), 1)
        self.lo = lo
        order, start = build_cell_list(xyz, lo, self.bin_size, self.nbins)
        self.xyz = np.ascontiguousarray(xyz[order])
        self.species = np.ascontiguousarray(spec[order])
        self.start = start

