"""The cell-list walk shared by the numba kernels of the descriptors.

:class:`~matterflow.electrons.descriptors._grid.NeighbourGrid` sorts the atom
images by cubic bin (edge >= the cut-off), so the neighbours of a point lie in
the 3 x 3 x 3 bins around its own. Bins are numbered ``(a*nb + b)*nc + c``, so
for fixed ``(a, b)`` the three bins along ``c`` are one contiguous run of the
sorted images: the walk is at most nine runs ``start[f0] : start[f1 + 1]``.
A kernel writes only what it does with each neighbour::

    win = bin_window(px, py, pz, lo, bin_size, nbins)
    for a in range(win[0], win[1] + 1):
        for b in range(win[2], win[3] + 1):
            i0, i1 = bin_run(win, a, b, nbins, start)
            for ia in range(i0, i1):
                dx, dy, dz, rsq = offset(xyz, ia, px, py, pz)
                ...  # what the kernel does with neighbour ia (species spec[ia])

The images are visited in the same order as bin by bin, so sums are the same
to the last bit. The helpers are inlined into each kernel (no call in the hot loop).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numba
from numba import njit

__all__ = ["bin_window", "bin_run", "offset", "numba_threads"]


@njit(inline="always", cache=True)
def bin_window(px, py, pz, lo, bin_size, nbins):
    """The bins around point ``(px, py, pz)``: ``(a0, a1, b0, b1, c0, c1)``, inclusive, clipped."""
    bx = int(math.floor((px - lo[0]) / bin_size))
    by = int(math.floor((py - lo[1]) / bin_size))
    bz = int(math.floor((pz - lo[2]) / bin_size))
    return (max(bx - 1, 0), min(bx + 1, nbins[0] - 1), max(by - 1, 0), min(by + 1, nbins[1] - 1),
            max(bz - 1, 0), min(bz + 1, nbins[2] - 1))


@njit(inline="always", cache=True)
def bin_run(win, a, b, nbins, start):
    """Range ``[i0, i1)`` of the sorted atom images in the bins ``(a, b, c0..c1)`` of ``win``."""
    f0 = (a * nbins[1] + b) * nbins[2]
    return start[f0 + win[4]], start[f0 + win[5] + 1]


@njit(inline="always", cache=True)
def offset(xyz, ia, px, py, pz):
    """``(dx, dy, dz, r²)`` from point ``(px, py, pz)`` to atom image ``ia`` (Å, Å²)."""
    dx = xyz[ia, 0] - px
    dy = xyz[ia, 1] - py
    dz = xyz[ia, 2] - pz
    return dx, dy, dz, dx * dx + dy * dy + dz * dz


@contextlib.contextmanager
def numba_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block on ``n_threads`` numba threads (None: numba's setting), then restore."""
    old = numba.get_num_threads()
    if n_threads is not None:
        numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)
