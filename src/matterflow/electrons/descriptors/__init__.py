"""Grid descriptors of atomic structures: bispectrum (LAMMPS ``sna/grid``) and Gaussian density.

Both take ``(atoms, grid_shape, params, *, points=None)`` and return
``(nx, ny, nz, n_features)`` (or ``(n_points, n_features)`` for a chunk of
flat C-order grid indices ``points``). Grid point ``(i, j, k)`` sits at
fractional coordinates ``(i/nx, j/ny, k/nz)`` of the cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from matterflow.core.errors import InputError
from matterflow.electrons.descriptors._grid import grid_coordinates
from matterflow.electrons.descriptors.bispectrum import (
    BispectrumParams,
    bispectrum_descriptors,
    bispectrum_indices,
    n_bispectrum_features,
)
from matterflow.electrons.descriptors.gaussian import (
    GaussianDescriptorParams,
    gaussian_descriptors,
    n_gaussian_features,
)

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "BispectrumParams",
    "GaussianDescriptorParams",
    "bispectrum_descriptors",
    "bispectrum_indices",
    "compute_descriptors",
    "gaussian_descriptors",
    "grid_coordinates",
    "n_features",
]


def n_features(params: BispectrumParams | GaussianDescriptorParams) -> int:
    """Number of descriptor columns the given parameters produce."""
    if isinstance(params, BispectrumParams):
        return n_bispectrum_features(params)
    if isinstance(params, GaussianDescriptorParams):
        return n_gaussian_features(params)
    if type(params).__name__ == "NeighbourParams":   # neighbour lists of the se3 model
        from matterflow.electrons.equivariant import n_neighbour_features

        return n_neighbour_features(params)
    raise InputError(f"params: BispectrumParams or GaussianDescriptorParams is needed; got "
                     f"{type(params).__name__}")


def compute_descriptors(atoms: Atoms, grid_shape: tuple[int, int, int],
                        params: BispectrumParams | GaussianDescriptorParams, *,
                        points: slice | np.ndarray | None = None, n_threads: int | None = None
                        ) -> np.ndarray:
    """Descriptors of the kind ``params`` selects (see the two functions)."""
    if isinstance(params, BispectrumParams):
        return bispectrum_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    if isinstance(params, GaussianDescriptorParams):
        return gaussian_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    if type(params).__name__ == "NeighbourParams":   # neighbour lists of the se3 model
        from matterflow.electrons.equivariant import neighbour_descriptors

        return neighbour_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    raise InputError(f"params: BispectrumParams or GaussianDescriptorParams is needed; got "
                     f"{type(params).__name__}")
