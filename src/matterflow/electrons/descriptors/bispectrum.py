"""Bispectrum components on a real-space grid, as LAMMPS ``compute sna/grid``.

The definition, parameters and output order are those of LAMMPS (Thompson et
al., J. Comput. Phys. 285, 316 (2015); ``src/ML-SNAP/sna.cpp``): for a grid
point at :math:`\\mathbf r` the neighbour density

.. math:: \\rho(\\mathbf r') = w_\\mathrm{self}\\,\\delta(\\mathbf r')
          + \\sum_{r_j < R_j} f_c(r_j)\\, w_j\\, \\delta(\\mathbf r' - \\mathbf r_j)

is mapped onto the 3-sphere (polar angle
:math:`\\theta_0 = r_\\mathrm{fac0}\\,\\pi (r - r_\\mathrm{min0})/(R_j - r_\\mathrm{min0})`) and expanded
in Wigner matrices :math:`U^j_{m,m'}`, computed by the Cayley-Klein recursion;
the bispectrum components are

.. math:: B_{j_1 j_2 j} = \\sum_{m,m'} (U^j_{m,m'})^*\\, Z^{j}_{j_1 j_2, m m'},\\quad
          Z = \\sum C^{j m}_{j_1 m_1 j_2 m_2} C^{j m'}_{j_1 m'_1 j_2 m'_2}
              U^{j_1}_{m_1 m'_1} U^{j_2}_{m_2 m'_2}

for :math:`j_2 \\le j_1 \\le j`, in LAMMPS's order (``idxb``). With
``bzeroflag`` the value for an empty neighbourhood, :math:`(j+1)\\,w_\\mathrm{self}^3`, is
subtracted; ``bnormflag`` divides each component by :math:`j+1` (LAMMPS's
doubled :math:`j`); with ``chemflag`` each element has its own density
and the components come in blocks for every (element 1, element 2,
element 3) of Z's two U and the conjugated U, element 3 fastest, species
in the order of ``radius`` (``wselfallflag`` puts the self term in every
element's density, otherwise only in the first species', the grid point's
"type 1"); with ``quadraticflag`` the products :math:`B_i B_j/(1+\\delta_{ij})`,
:math:`j \\ge i`, follow the linear components. LAMMPS's inner switching
function (``switchinnerflag``, ``sinner``, ``dinner``) is not offered: LAMMPS
22 Jul 2025 accepts it for ``sna/grid`` but its grid results do not change
(checked), so there is no reference to match.

Neighbour :math:`j` of species :math:`s` counts when
:math:`0 < r_j < R_s = 2\\,\\mathrm{radius}_s\\,\\mathrm{rcutfac}`, as in LAMMPS
(all grid points are of "type 1", and the cut-off is the neighbour's own).
LAMMPS puts the Cartesian coordinates of each grid point in its first three
columns; :func:`bispectrum_descriptors` leaves them out (they are
:func:`~matterflow.electrons.descriptors.grid_coordinates`), so column ``c``
here is LAMMPS column ``c + 3``.

Implementation: numba kernels over periodic images binned in a cell list;
the Wigner U of 8 neighbours and the Z/B contractions of 32 grid points run
together (SIMD lanes), with the Clebsch-Gordan anti-diagonals stored
contiguously; grid batches run in parallel on numba threads. Per grid point
this takes about 0.3x the CPU time of LAMMPS's ``sna/grid`` for MALA's
aluminium setting (``benchmarks/electrons_descriptors.py``).
"""

from __future__ import annotations

import functools
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

__all__ = ["BispectrumParams", "bispectrum_descriptors", "bispectrum_indices",
           "n_bispectrum_features"]


class BispectrumParams(Params):
    """Parameters of LAMMPS ``compute sna/grid`` (same names, same meaning).

    The defaults are MALA's for aluminium (cut-off 4.67637 Å, 2J = 10, 91
    components).
    """

    twojmax: int = Field(10, ge=0, le=24, description="band limit 2J of the expansion")
    rcutfac: float = Field(4.67637, gt=0, description="scale factor of the radii; cut-off of "
                           "species s is 2 * radius[s] * rcutfac",
                           json_schema_extra={"units": "Å"})
    rfac0: float = Field(0.99363, gt=0, le=1, description="fraction of pi the cut-off maps to "
                         "on the 3-sphere")
    rmin0: float = Field(0.0, ge=0, description="distance mapped to the pole of the 3-sphere",
                         json_schema_extra={"units": "Å"})
    radius: dict[str, float] = Field(default_factory=lambda: {"Al": 0.5},
                                     description="radius per species (LAMMPS R_i; dimensionless)")
    weight: dict[str, float] = Field(default_factory=lambda: {"Al": 1.0},
                                     description="neighbour weight per species (LAMMPS w_i)")
    switchflag: bool = Field(True, description="smooth cosine switching function to zero at "
                             "the cut-off")
    bzeroflag: bool = Field(True, description="subtract the components of an empty "
                            "neighbourhood")
    quadraticflag: bool = Field(False, description="append the products B_i B_j, j >= i")
    chemflag: bool = Field(False, description="explicit multi-element bispectrum: one block "
                           "of components per (element1, element2, element3), species in the "
                           "order of radius")
    bnormflag: bool = Field(False, description="divide each component by 2j + 1 (LAMMPS "
                            "bnormflag)")
    wselfallflag: bool = Field(False, description="with chemflag: self term for every "
                               "element, not only the grid point's (the first species)")

    @field_validator("radius")
    @classmethod
    def _positive_radius(cls, value: dict[str, float]) -> dict[str, float]:
        for sym, r in value.items():
            if not (r > 0 and math.isfinite(r)):
                raise ValueError(f"radius of {sym} must be a positive number; got {r}")
        return value

    @field_validator("weight")
    @classmethod
    def _finite_weight(cls, value: dict[str, float]) -> dict[str, float]:
        for sym, w in value.items():
            if not math.isfinite(w):
                raise ValueError(f"weight of {sym} must be finite; got {w}")
        return value

    @field_validator("rmin0")
    @classmethod
    def _finite_rmin(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value


# --------------------------------------------------------------------------- index tables

@functools.lru_cache(maxsize=16)
def bispectrum_indices(twojmax: int) -> np.ndarray:
    """The (j1, j2, j) triples of the components in LAMMPS order, shape (n, 3).

    Values are doubled angular momenta (``2j``), as LAMMPS prints them.
    """
    out = []
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    out.append((j1, j2, j))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def n_bispectrum_features(params: BispectrumParams) -> int:
    """Number of columns :func:`bispectrum_descriptors` returns."""
    n = len(bispectrum_indices(params.twojmax))
    if params.chemflag:
        n *= len(params.radius) ** 3
    return n + n * (n + 1) // 2 if params.quadraticflag else n


def _deltacg(j1: int, j2: int, j: int) -> float:
    f = math.factorial
    return math.sqrt(f((j1 + j2 - j) // 2) * f((j1 - j2 + j) // 2) * f((-j1 + j2 + j) // 2)
                     / f((j1 + j2 + j) // 2 + 1))


@functools.lru_cache(maxsize=16)
def _tables(twojmax: int):
    """idxu_block, rootpq, Clebsch-Gordan list and its block offsets (as LAMMPS builds them)."""
    f = math.factorial
    J = twojmax
    idxu_block = np.zeros(J + 1, dtype=np.int64)
    count = 0
    for j in range(J + 1):
        idxu_block[j] = count
        count += (j + 1) ** 2
    idxu_max = count
    rootpq = np.zeros((J + 2, J + 2))
    for p in range(1, J + 1):
        for q in range(1, J + 1):
            rootpq[p, q] = math.sqrt(p / q)
    idxcg_block = np.full((J + 1, J + 1, J + 1), -1, dtype=np.int64)
    cg = []
    for j1 in range(J + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(J, j1 + j2) + 1, 2):
                idxcg_block[j1, j2, j] = len(cg)
                for m1 in range(j1 + 1):
                    aa2 = 2 * m1 - j1
                    for m2 in range(j2 + 1):
                        bb2 = 2 * m2 - j2
                        m = (aa2 + bb2 + j) // 2
                        if m < 0 or m > j:
                            cg.append(0.0)
                            continue
                        total = 0.0
                        zlo = max(0, -(j - j2 + aa2) // 2, -(j - j1 - bb2) // 2)
                        zhi = min((j1 + j2 - j) // 2, (j1 - aa2) // 2, (j2 + bb2) // 2)
                        for z in range(zlo, zhi + 1):
                            sign = -1.0 if z % 2 else 1.0
                            total += sign / (f(z) * f((j1 + j2 - j) // 2 - z) * f((j1 - aa2) // 2 - z)
                                             * f((j2 + bb2) // 2 - z) * f((j - j2 + aa2) // 2 + z)
                                             * f((j - j1 - bb2) // 2 + z))
                        cc2 = 2 * m - j
                        sfac = math.sqrt(f((j1 + aa2) // 2) * f((j1 - aa2) // 2) * f((j2 + bb2) // 2)
                                         * f((j2 - bb2) // 2) * f((j + cc2) // 2) * f((j - cc2) // 2)
                                         * (j + 1))
                        cg.append(total * _deltacg(j1, j2, j) * sfac)
    return idxu_block, idxu_max, rootpq, np.array(cg), idxcg_block


@functools.lru_cache(maxsize=16)
def _zplan(twojmax: int):
    """Per component t and magnetic index m: the m1 range and its Clebsch-Gordan values.

    For ``Z(ma, mb)`` of component ``t = (j1, j2, j)`` the sums run over
    ``m1 = m1min[t, m] + i``, ``m2 = m2max[t, m] - i``, ``i < n[t, m]`` (for
    ``m = ma`` and ``m = mb`` alike, as in LAMMPS ``compute_zi``), with
    coefficients ``cgm[off[t, m] + i]``: the anti-diagonal of LAMMPS's CG block
    stored contiguously so the inner loops read memory in order.
    """
    _, _, _, cg, idxcg_block = _tables(twojmax)
    idxb = bispectrum_indices(twojmax)
    nt = len(idxb)
    m1min = np.zeros((nt, twojmax + 1), dtype=np.int64)
    m2max = np.zeros((nt, twojmax + 1), dtype=np.int64)
    n = np.zeros((nt, twojmax + 1), dtype=np.int64)
    off = np.zeros((nt, twojmax + 1), dtype=np.int64)
    cgm: list[float] = []
    for t, (j1, j2, j) in enumerate(idxb):
        block = idxcg_block[j1, j2, j]
        for m in range(j + 1):
            lo = max(0, (2 * m - j - j2 + j1) // 2)
            hi2 = (2 * m - j - (2 * lo - j1) + j2) // 2
            cnt = min(j1, (2 * m - j + j2 + j1) // 2) - lo + 1
            m1min[t, m], m2max[t, m], n[t, m], off[t, m] = lo, hi2, cnt, len(cgm)
            cgm.extend(cg[block + (lo + i) * (j2 + 1) + (hi2 - i)] for i in range(cnt))
    return m1min, m2max, n, off, np.array(cgm)


# --------------------------------------------------------------------------- numba kernels

NLANE = 8   # neighbours whose Wigner U are computed together (SIMD over neighbours)


@njit(cache=True, fastmath=True, error_model="numpy")
def _add_uarray_lanes(a_r, a_i, b_r, b_i, fac, elem, nelem, twojmax, idxu_block, rootpq, ur, ui,
                      utr, uti):
    """Wigner U of ``NLANE`` neighbours at once (Cayley-Klein recursion, LAMMPS compute_uarray).

    ``a = (a_r, a_i)``, ``b = (b_r, b_i)`` are the Cayley-Klein parameters of
    each neighbour; ``fac`` (switching function times weight) times U is added
    to the block of ``utr``/``uti`` of the neighbour's element ``elem``.
    """
    for lane in range(NLANE):
        ur[0, lane] = 1.0
        ui[0, lane] = 0.0
    for j in range(1, twojmax + 1):
        jju = idxu_block[j]
        jjup = idxu_block[j - 1]
        mb = 0
        while 2 * mb <= j:
            for lane in range(NLANE):
                ur[jju, lane] = 0.0
                ui[jju, lane] = 0.0
            for ma in range(j):
                rq1 = rootpq[j - ma, j - mb]
                rq2 = rootpq[ma + 1, j - mb]
                for lane in range(NLANE):
                    pr = ur[jjup, lane]
                    pi = ui[jjup, lane]
                    ur[jju, lane] += rq1 * (a_r[lane] * pr + a_i[lane] * pi)
                    ui[jju, lane] += rq1 * (a_r[lane] * pi - a_i[lane] * pr)
                    ur[jju + 1, lane] = -rq2 * (b_r[lane] * pr + b_i[lane] * pi)
                    ui[jju + 1, lane] = -rq2 * (b_r[lane] * pi - b_i[lane] * pr)
                jju += 1
                jjup += 1
            jju += 1
            mb += 1
        jju = idxu_block[j]
        jjup = jju + (j + 1) * (j + 1) - 1
        mbpar = 1
        mb = 0
        while 2 * mb <= j:
            mapar = mbpar
            for _ma in range(j + 1):
                if mapar == 1:
                    for lane in range(NLANE):
                        ur[jjup, lane] = ur[jju, lane]
                        ui[jjup, lane] = -ui[jju, lane]
                else:
                    for lane in range(NLANE):
                        ur[jjup, lane] = -ur[jju, lane]
                        ui[jjup, lane] = ui[jju, lane]
                mapar = -mapar
                jju += 1
                jjup -= 1
            mbpar = -mbpar
            mb += 1
    nu = idxu_block[twojmax] + (twojmax + 1) * (twojmax + 1)
    fe = np.empty(NLANE)
    for e in range(nelem):
        for lane in range(NLANE):
            fe[lane] = fac[lane] if elem[lane] == e else 0.0
        off = e * nu
        for q in range(nu):
            sr = 0.0
            si = 0.0
            for lane in range(NLANE):
                sr += fe[lane] * ur[q, lane]
                si += fe[lane] * ui[q, lane]
            utr[off + q] += sr
            uti[off + q] += si


BATCH = 32  # grid points whose components are computed together (SIMD over points)


@njit(cache=True, fastmath=True, error_model="numpy")
def _bcomp_batch(t, j1, j2, j, o1, o2, o3, idxu_block, m1min, m2max, nm, moff, cgm, UR, UI,
                 URR, URI, zr, zi, sr, si, acc):
    """Component ``t`` (LAMMPS compute_zi + compute_bi) for ``BATCH`` grid points, into ``acc``.

    ``B = 2 Re sum conj(U^j_{mb,ma}) Z_{mb,ma}`` over the half ``mb < j/2`` (all
    ``ma``) plus, for even ``j``, the middle row up to its centre (weight 1/2);
    Z from the U blocks at offsets ``o1`` (j1) and ``o2`` (j2), U^j from
    ``o3`` (elements of an explicit multi-element bispectrum).
    """
    base1 = o1 + idxu_block[j1]
    base2 = o2 + idxu_block[j2]
    base = o3 + idxu_block[j]
    for p in range(BATCH):
        acc[p] = 0.0
    for mb in range(j // 2 + 1):
        mb1min = m1min[t, mb]
        mb2max = m2max[t, mb]
        nb = nm[t, mb]
        ob = moff[t, mb]
        middle = 2 * mb == j
        mamax = mb if middle else j
        for ma in range(mamax + 1):
            ma1min = m1min[t, ma]
            na = nm[t, ma]
            oa = moff[t, ma]
            col2 = j2 - m2max[t, ma]
            for p in range(BATCH):
                zr[p] = 0.0
                zi[p] = 0.0
            for ib in range(nb):
                r1 = base1 + (j1 + 1) * (mb1min + ib) + ma1min
                r2 = base2 + (j2 + 1) * (mb2max - ib) + col2
                for p in range(BATCH):
                    sr[p] = 0.0
                    si[p] = 0.0
                for ia in range(na):
                    c = cgm[oa + ia]
                    for p in range(BATCH):
                        a_r = UR[r1 + ia, p]
                        a_i = UI[r1 + ia, p]
                        b_r = URR[r2 + ia, p]
                        b_i = URI[r2 + ia, p]
                        sr[p] += c * (a_r * b_r - a_i * b_i)
                        si[p] += c * (a_r * b_i + a_i * b_r)
                c = cgm[ob + ib]
                for p in range(BATCH):
                    zr[p] += c * sr[p]
                    zi[p] += c * si[p]
            q = base + (j + 1) * mb + ma
            w = 1.0 if (middle and ma == mb) else 2.0
            for p in range(BATCH):
                acc[p] += w * (UR[q, p] * zr[p] + UI[q, p] * zi[p])


@njit(cache=True, fastmath=True, error_model="numpy")
def _point_utot(px, py, pz, xyz, spec, start, lo, bin_size, nbins, cutsq, rcut, wj, rmin0,
                rfac0, switchflag, twojmax, idxu_block, rootpq, wself, elem_of, nelem,
                wselfall, lanes, lane_elem, ur, ui, utr, uti):
    """Sum of the neighbours' Wigner U (plus ``wself`` on the diagonal) at one grid point.

    ``utr``/``uti`` hold one block per element (``nelem`` blocks; the grid
    point is of element 0, the first species, as in LAMMPS, and gets the
    self term unless ``wselfall`` gives it to every element). ``lanes``
    (5, NLANE) buffers Cayley-Klein parameters and weights of neighbours until
    ``NLANE`` are found; a partial last group is padded with zero weights.
    """
    nu = idxu_block[twojmax] + (twojmax + 1) * (twojmax + 1)
    utr[:] = 0.0
    uti[:] = 0.0
    for e in range(nelem):
        if e == 0 or wselfall:
            for j in range(twojmax + 1):
                jju = e * nu + idxu_block[j]
                for mab in range(j + 1):
                    utr[jju + mab * (j + 2)] = wself
    nfill = 0
    win = bin_window(px, py, pz, lo, bin_size, nbins)
    for a in range(win[0], win[1] + 1):
        for b in range(win[2], win[3] + 1):
            i0, i1 = bin_run(win, a, b, nbins, start)
            for ia in range(i0, i1):
                dx, dy, dz, rsq = offset(xyz, ia, px, py, pz)
                s = spec[ia]
                if rsq < cutsq[s] and rsq > 1e-20:
                    r = math.sqrt(rsq)
                    rc = rcut[s]
                    theta0 = (r - rmin0) * rfac0 * math.pi / (rc - rmin0)
                    z0 = r / math.tan(theta0)
                    if switchflag == 0 or r <= rmin0:
                        sfac = 1.0
                    else:
                        sfac = 0.5 * (math.cos((r - rmin0) * math.pi / (rc - rmin0)) + 1.0)
                    r0inv = 1.0 / math.sqrt(r * r + z0 * z0)
                    lanes[0, nfill] = r0inv * z0
                    lanes[1, nfill] = -r0inv * dz
                    lanes[2, nfill] = r0inv * dy
                    lanes[3, nfill] = -r0inv * dx
                    lanes[4, nfill] = sfac * wj[s]
                    lane_elem[nfill] = elem_of[s]
                    nfill += 1
                    if nfill == NLANE:
                        _add_uarray_lanes(lanes[0], lanes[1], lanes[2], lanes[3], lanes[4],
                                          lane_elem, nelem, twojmax, idxu_block, rootpq,
                                          ur, ui, utr, uti)
                        nfill = 0
    if nfill > 0:
        for lane in range(nfill, NLANE):
            lanes[0, lane] = 1.0
            lanes[1, lane] = 0.0
            lanes[2, lane] = 0.0
            lanes[3, lane] = 0.0
            lanes[4, lane] = 0.0
            lane_elem[lane] = 0
        _add_uarray_lanes(lanes[0], lanes[1], lanes[2], lanes[3], lanes[4], lane_elem, nelem,
                          twojmax, idxu_block, rootpq, ur, ui, utr, uti)


@njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def _bispectrum_kernel(pts, xyz, spec, start, lo, bin_size, nbins, cutsq, rcut, wj,
                       rmin0, rfac0, switchflag, twojmax, idxu_block, idxu_max, rootpq, idxb,
                       m1min, m2max, nm, moff, cgm, bzeroflag, bnormflag, wself, elem_of, nelem,
                       wselfall, out):
    npts = pts.shape[0]
    nbl = idxb.shape[0]
    nblocks = (npts + BATCH - 1) // BATCH
    nu = idxu_max
    for iblock in prange(nblocks):
        ur = np.empty((nu, NLANE))
        ui = np.empty((nu, NLANE))
        lanes = np.empty((5, NLANE))
        lane_elem = np.zeros(NLANE, dtype=np.int64)
        utr = np.empty(nelem * nu)
        uti = np.empty(nelem * nu)
        UR = np.empty((nelem * nu, BATCH))
        UI = np.empty((nelem * nu, BATCH))
        URR = np.empty((nelem * nu, BATCH))
        URI = np.empty((nelem * nu, BATCH))
        zr = np.empty(BATCH)
        zi = np.empty(BATCH)
        sr = np.empty(BATCH)
        si = np.empty(BATCH)
        acc = np.empty(BATCH)
        p0 = iblock * BATCH
        count = min(BATCH, npts - p0)
        for k in range(BATCH):
            if k < count:                    # a short last batch repeats its last point
                ip = p0 + k
                _point_utot(pts[ip, 0], pts[ip, 1], pts[ip, 2], xyz, spec, start, lo, bin_size,
                            nbins, cutsq, rcut, wj, rmin0, rfac0, switchflag, twojmax,
                            idxu_block, rootpq, wself, elem_of, nelem, wselfall, lanes,
                            lane_elem, ur, ui, utr, uti)
            for e in range(nelem):
                for j in range(twojmax + 1):
                    b0 = e * nu + idxu_block[j]
                    for mb in range(j + 1):
                        row = b0 + (j + 1) * mb
                        for ma in range(j + 1):
                            UR[row + ma, k] = utr[row + ma]
                            UI[row + ma, k] = uti[row + ma]
                            URR[row + ma, k] = utr[row + j - ma]
                            URI[row + ma, k] = uti[row + j - ma]
        itriple = 0
        for e1 in range(nelem):
            for e2 in range(nelem):
                for e3 in range(nelem):
                    shift = bzeroflag and (wselfall or (e1 == 0 and e2 == 0 and e3 == 0))
                    for t in range(nbl):
                        j = idxb[t, 2]
                        _bcomp_batch(t, idxb[t, 0], idxb[t, 1], j, e1 * nu, e2 * nu, e3 * nu,
                                     idxu_block, m1min, m2max, nm, moff, cgm, UR, UI, URR, URI,
                                     zr, zi, sr, si, acc)
                        scale = 1.0 / (j + 1) if bnormflag else 1.0
                        bz = 0.0
                        if shift:
                            bz = wself * wself * wself * (1.0 if bnormflag else j + 1.0)
                        col = itriple * nbl + t
                        for k in range(count):
                            out[p0 + k, col] = acc[k] * scale - bz
                    itriple += 1


# --------------------------------------------------------------------------- public API

def _species_arrays(params: BispectrumParams, symbols: list[str]):
    species = list(params.radius)
    missing_w = [s for s in species if s not in params.weight]
    if missing_w:
        raise InputError(f"params.weight: no weight for species {', '.join(missing_w)} "
                         f"(params.radius has {', '.join(species)}); give both for every species")
    index = species_index(symbols, species, "params.radius")
    rcut = np.array([2.0 * params.radius[s] * params.rcutfac for s in species])
    if np.any(rcut <= params.rmin0):
        raise InputError(f"params.rmin0: must be below every cut-off 2*radius*rcutfac "
                         f"({rcut.min():.4g} Å); got {params.rmin0}")
    wj = np.array([params.weight[s] for s in species])
    return index, rcut, wj


def bispectrum_descriptors(atoms, grid_shape, params: BispectrumParams | dict | None = None, *,
                           points=None, n_threads: int | None = None) -> np.ndarray:
    """Bispectrum components of ``atoms`` on a ``grid_shape`` grid (LAMMPS ``sna/grid``).

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure; positions outside the cell are wrapped.
    grid_shape : (nx, ny, nz)
        Grid point ``(i, j, k)`` sits at fractional coordinates ``(i/nx, j/ny, k/nz)``.
    params : BispectrumParams or dict
        Descriptor parameters (LAMMPS names); None gives the defaults.
    points : slice or 1-D int array, optional
        Flat C-order indices of the grid points to compute (chunked inference).
    n_threads : int, optional
        Numba threads (default: numba's setting).

    Returns
    -------
    ndarray
        ``(nx, ny, nz, n_features)``, or ``(n_points, n_features)`` with
        ``points``; dimensionless. Columns in LAMMPS order without LAMMPS's
        three leading coordinate columns.
    """
    params = validate_params(BispectrumParams, params, where="bispectrum_descriptors", prefix="params")
    shape = check_grid_shape(grid_shape)
    idx = normalize_points(points, shape)
    cell, pos, symbols = check_atoms(atoms)
    spec, rcut, wj = _species_arrays(params, symbols)
    pts = grid_points(cell, shape, idx)
    idxu_block, idxu_max, rootpq, _, _ = _tables(params.twojmax)
    idxb = bispectrum_indices(params.twojmax)
    nelem = len(params.radius) if params.chemflag else 1
    elem_of = (np.arange(len(params.radius)) if params.chemflag
               else np.zeros(len(params.radius), dtype=np.int64)).astype(np.int64)
    out = np.empty((len(pts), len(idxb) * nelem ** 3))
    if len(pts):
        ngrid = NeighbourGrid(cell, pos, spec, float(rcut.max()))
        with numba_threads(n_threads):
            _bispectrum_kernel(pts, ngrid.xyz, ngrid.species, ngrid.start, ngrid.lo,
                               ngrid.bin_size, ngrid.nbins, rcut ** 2, rcut, wj,
                               float(params.rmin0), float(params.rfac0), int(params.switchflag),
                               int(params.twojmax), idxu_block, idxu_max, rootpq, idxb,
                               *_zplan(params.twojmax), bool(params.bzeroflag),
                               bool(params.bnormflag), 1.0, elem_of, nelem,
                               bool(params.wselfallflag), out)
    if params.quadraticflag:
        n = out.shape[1]
        iu, ju = np.triu_indices(n)
        quad = out[:, iu] * out[:, ju]
        quad[:, iu == ju] *= 0.5
        out = np.concatenate([out, quad], axis=1)
    if not np.all(np.isfinite(out)):
        from matterflow.core.errors import ComputeError
        raise ComputeError("bispectrum_descriptors: non-finite values computed; check rfac0 < 1 "
                           "and the cut-offs")
    return out if idx is not None else out.reshape(*shape, out.shape[1])
