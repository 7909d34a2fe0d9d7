"""Grid descriptors of atomic structures: bispectrum (LAMMPS ``sna/grid``), Gaussian density,
and the neighbour lists the equivariant model reads (:mod:`.neighbours`).

All take ``(atoms, grid_shape, params, *, points=None)`` and return
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
from matterflow.electrons.descriptors.neighbours import (
    NeighbourParams,
    n_neighbour_features,
    neighbour_descriptors,
)

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "BispectrumParams",
    "GaussianDescriptorParams",
    "NeighbourParams",
    "bispectrum_descriptors",
    "bispectrum_indices",
    "compute_descriptors",
    "gaussian_descriptors",
    "grid_coordinates",
    "n_features",
    "neighbour_descriptors",
]

DescriptorParams = BispectrumParams | GaussianDescriptorParams | NeighbourParams


def n_features(params: DescriptorParams) -> int:
    """Number of descriptor columns the given parameters produce."""
    if isinstance(params, BispectrumParams):
        return n_bispectrum_features(params)
    if isinstance(params, GaussianDescriptorParams):
        return n_gaussian_features(params)
    if isinstance(params, NeighbourParams):   # neighbour lists of the se3 model
        return n_neighbour_features(params)
    raise InputError(f"params: BispectrumParams, GaussianDescriptorParams or NeighbourParams is needed; got "
                     f"{type(params).__name__}")


def compute_descriptors(atoms: Atoms, grid_shape: tuple[int, int, int],
                        params: DescriptorParams, *,
                        points: slice | np.ndarray | None = None, n_threads: int | None = None
                        ) -> np.ndarray:
    """Descriptors of the kind ``params`` selects (see the two functions)."""
    if isinstance(params, BispectrumParams):
        return bispectrum_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    if isinstance(params, GaussianDescriptorParams):
        return gaussian_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    if isinstance(params, NeighbourParams):   # neighbour lists of the se3 model
        return neighbour_descriptors(atoms, grid_shape, params, points=points, n_threads=n_threads)
    raise InputError(f"params: BispectrumParams, GaussianDescriptorParams or NeighbourParams is needed; got "
                     f"{type(params).__name__}")
