"""Neighbour lists of grid points: the "descriptor" of the equivariant (se3) LDOS model.

The vectors (Å) from a grid point to its ``max_neighbours`` nearest atom images
within ``cutoff`` (all periodic images, so the cut-off is not limited to half the
box) and their species codes (index + 1 in ``species``; 0 marks padding).
Descriptor kind ``"neighbours"``; the network is
:class:`matterflow.electrons.equivariant.Se3LdosModel`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from matterflow.core import Params

__all__ = ["NeighbourParams", "n_neighbour_features", "neighbour_descriptors"]


class NeighbourParams(Params):
    """Neighbour-list "descriptor" of the equivariant model."""

    cutoff: float = Field(3.0, gt=0, le=20, description="atom–grid and atom–atom cut-off",
                          json_schema_extra={"units": "Å"})
    max_neighbours: int = Field(16, ge=1, le=256, description="nearest atom images kept per grid point")
    species: tuple[str, ...] = Field(("H",), min_length=1, description="chemical symbols, in code order")


def n_neighbour_features(params: NeighbourParams) -> int:
    """Columns of :func:`neighbour_descriptors`: 4 per neighbour slot (dx, dy, dz, species code)."""
    return 4 * params.max_neighbours


def neighbour_descriptors(atoms: Any, grid_shape: Any, params: NeighbourParams, *, points: Any = None,
                          n_threads: int | None = None) -> np.ndarray:
    """Neighbour lists of grid points, ``(nx, ny, nz, 4K)`` or ``(n_points, 4K)`` for ``points``.

    Slot ``s`` of a point holds ``(x_s - r, species code)``: the vector (Å) to its s-th
    nearest atom image within ``params.cutoff`` and the index + 1 of its species in
    ``params.species``; empty slots are zeros.
    """
    from scipy.spatial import cKDTree

    from matterflow.electrons.descriptors._grid import (
        check_atoms,
        check_grid_shape,
        grid_points,
        image_atoms,
        normalize_points,
        species_index,
    )

    shape = check_grid_shape(grid_shape)
    cell, pos, symbols = check_atoms(atoms)
    spec = species_index(symbols, list(params.species), "NeighbourParams.species")
    idx = normalize_points(points, shape)
    pts = grid_points(cell, shape, idx)
    xyz, sp = image_atoms(cell, pos, spec, params.cutoff)
    k = params.max_neighbours
    out = np.zeros((len(pts), k, 4))
    if len(xyz):
        tree = cKDTree(xyz)
        kq = min(k, len(xyz))
        dist, nb = tree.query(pts, k=kq, distance_upper_bound=params.cutoff)
        dist, nb = dist.reshape(len(pts), kq), nb.reshape(len(pts), kq)
        ok = np.isfinite(dist)
        nbc = np.where(ok, nb, 0)
        out[:, :kq, :3] = np.where(ok[..., None], xyz[nbc] - pts[:, None, :], 0.0)
        out[:, :kq, 3] = np.where(ok, sp[nbc] + 1, 0)
    out = out.reshape(len(pts), 4 * k)
    return out if idx is not None else out.reshape(*shape, 4 * k)
