"""Gaussian atomic-density descriptors on a grid, as LAMMPS ``compute gaussian/grid/local``.

For each species :math:`s` (one column each, in the order of ``params.radius``)
the value at grid point :math:`\\mathbf r` is the smeared atomic density

.. math:: g_s(\\mathbf r) = \\sum_{j \\in s,\\ r_j < R_s}
          \\frac{1}{(\\sqrt{2\\pi}\\,\\sigma_s)^3} \\exp\\!\\left(-\\frac{r_j^2}{2\\sigma_s^2}\\right),
          \\qquad R_s = 2\\,\\mathrm{radius}_s\\,\\mathrm{rcutfac},

in atoms/Å³ (MALA's "atomic density" descriptor). The sum runs over all
periodic images.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from pydantic import Field, field_validator

from matterflow.core import Params
from matterflow.core.errors import InputError
from matterflow.core.registry import validate_params
from matterflow.electrons.descriptors._cells import bin_run, bin_window, numba_threads, offset
from matterflow.electrons.descriptors._grid import (
    NeighbourGrid,
    check_atoms,
    check_grid_shape,
    grid_points,
    normalize_points,
    species_index,
)

__all__ = ["GaussianDescriptorParams", "gaussian_descriptors", "n_gaussian_features"]


class GaussianDescriptorParams(Params):
    """Parameters of LAMMPS ``compute gaussian/grid/local`` (same names, same meaning)."""

    rcutfac: float = Field(4.67637, gt=0, description="scale factor of the radii; cut-off of "
                           "species s is 2 * radius[s] * rcutfac", json_schema_extra={"units": "Å"})
    radius: dict[str, float] = Field(default_factory=lambda: {"Al": 0.5},
                                     description="radius per species (LAMMPS R_i; dimensionless)")
    sigma: dict[str, float] = Field(default_factory=lambda: {"Al": 0.2},
                                    description="Gaussian width per species, Å",
                                    json_schema_extra={"units": "Å"})

    @field_validator("radius", "sigma")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for sym, r in value.items():
            if not (r > 0 and math.isfinite(r)):
                raise ValueError(f"value for {sym} must be a positive number; got {r}")
        return value


def n_gaussian_features(params: GaussianDescriptorParams) -> int:
    """Number of columns :func:`gaussian_descriptors` returns (one per species)."""
    return len(params.radius)


@njit(cache=True, parallel=True)
def _gaussian_kernel(pts, xyz, spec, start, lo, bin_size, nbins, cutsq, pref, argfac, out):
    npts = pts.shape[0]
    for ip in prange(npts):
        px = pts[ip, 0]
        py = pts[ip, 1]
        pz = pts[ip, 2]
        win = bin_window(px, py, pz, lo, bin_size, nbins)
        for a in range(win[0], win[1] + 1):
            for b in range(win[2], win[3] + 1):
                i0, i1 = bin_run(win, a, b, nbins, start)
                for ia in range(i0, i1):
                    dx, dy, dz, rsq = offset(xyz, ia, px, py, pz)
                    s = spec[ia]
                    if rsq < cutsq[s]:
                        out[ip, s] += pref[s] * math.exp(-rsq * argfac[s])


def gaussian_descriptors(atoms, grid_shape, params: GaussianDescriptorParams | dict | None = None,
                         *, points=None, n_threads: int | None = None) -> np.ndarray:
    """Gaussian atomic-density descriptors of ``atoms`` on a grid (atoms/Å³).

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure; positions outside the cell are wrapped.
    grid_shape : (nx, ny, nz)
        Grid point ``(i, j, k)`` sits at fractional coordinates ``(i/nx, j/ny, k/nz)``.
    params : GaussianDescriptorParams or dict
        None gives the defaults.
    points : slice or 1-D int array, optional
        Flat C-order indices of the grid points to compute.
    n_threads : int, optional
        Numba threads (default: numba's setting).

    Returns
    -------
    ndarray
        ``(nx, ny, nz, n_species)`` or ``(n_points, n_species)``, atoms/Å³.
    """
    params = validate_params(GaussianDescriptorParams, params, where="gaussian_descriptors", prefix="params")
    shape = check_grid_shape(grid_shape)
    idx = normalize_points(points, shape)
    cell, pos, symbols = check_atoms(atoms)
    species = list(params.radius)
    missing = [s for s in species if s not in params.sigma]
    if missing:
        raise InputError(f"params.sigma: no width for species {', '.join(missing)} "
                         f"(params.radius has {', '.join(species)}); give both for every species")
    spec = species_index(symbols, species, "params.radius")
    rcut = np.array([2.0 * params.radius[s] * params.rcutfac for s in species])
    sig = np.array([params.sigma[s] for s in species])
    pref = 1.0 / (math.sqrt(2.0 * math.pi) * sig) ** 3
    argfac = 1.0 / (2.0 * sig ** 2)
    pts = grid_points(cell, shape, idx)
    out = np.zeros((len(pts), len(species)))
    if len(pts):
        ngrid = NeighbourGrid(cell, pos, spec, float(rcut.max()))
        with numba_threads(n_threads):
            _gaussian_kernel(pts, ngrid.xyz, ngrid.species, ngrid.start, ngrid.lo, ngrid.bin_size,
                             ngrid.nbins, rcut ** 2, pref, argfac, out)
    return out if idx is not None else out.reshape(*shape, out.shape[1])
