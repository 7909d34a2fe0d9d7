"""Fast ternary phase equilibria: isothermal sections and liquidus projections.

The binary engine (:mod:`matterflow.calphad.engine`) takes the lower convex hull
of all phases' molar Gibbs energies over x; here the same idea in one more
dimension. Each phase's pycalphad ``Model`` is compiled once with the chosen
parameters kept symbolic (symengine/LLVM), evaluated on a grid of its site
fractions, and the lower convex hull of the points ``(x_B, x_C, G)`` (Qhull) is
the equilibrium of the whole composition triangle at once:

- a hull facet whose three vertices belong to one phase instance is inside its
  single-phase region;
- two vertices of one instance and one of another: a tie-line (two-phase);
- three different instances: a tie-triangle (three-phase region).

Two vertices of the *same* phase farther apart than a few grid spacings are two
instances of that phase (a miscibility gap, ``BCC_A2+BCC_A2``). Each target
composition is located in its facet (numba, bucketed barycentric test); the
barycentric weights are the phase fractions (lever rule in 2D).

A liquidus projection scans T: at each T the driving force of the most stable
solid against the tangent plane of the (metastable) liquid at each composition;
its zero crossing in T (linear interpolation between scan temperatures) is the
liquidus temperature and the solid that crosses is the primary phase.

Everything is per mole of atoms (J/mol), temperatures in K, compositions are
mole fractions; a composition is written ``(x_B, x_C)`` for components ``(A, B, C)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np

from matterflow.calphad.engine import R_GAS, CompiledPhases, composition_grid, load_database
from matterflow.core.errors import ComputeError, InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pycalphad import Database

__all__ = ["TernaryModel", "Section", "LiquidusProjection", "section_grid", "to_triangle",
           "crtiv_tdb", "pycalphad_section", "agreement"]


def crtiv_tdb() -> Path:
    """The Cr-Ti-V assessment shipped with pycalphad's tests (Ghosh, J. Phase Equilib. 2002)."""
    from importlib.resources import files

    return Path(str(files("pycalphad.tests.databases") / "crtiv_ghosh.tdb"))


def section_grid(step: float, margin: float = 0.0) -> np.ndarray:
    """Compositions ``(x_B, x_C)`` on a triangular lattice of spacing ``step``, shape (m, 2).

    ``margin`` keeps every mole fraction (also x_A) at least that far from 0.
    """
    if not 0 < step <= 0.5:
        raise InputError(f"step must be in (0, 0.5]; got {step}")
    n = int(round(1.0 / step))
    pts = [(i / n, j / n) for i in range(n + 1) for j in range(n + 1 - i)]
    xy = np.array(pts, dtype=float)
    xa = 1 - xy.sum(axis=1)
    keep = (xy.min(axis=1) >= margin - 1e-12) & (xa >= margin - 1e-12)
    return xy[keep]


def to_triangle(x_b: ArrayLike, x_c: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian coordinates in the Gibbs triangle (A at (0,0), B at (1,0), C at top)."""
    xb, xc = np.asarray(x_b, dtype=float), np.asarray(x_c, dtype=float)
    return xb + 0.5 * xc, xc * np.sqrt(3.0) / 2.0


def _simplex_points(n: int, k: int, refine: bool = True, near: bool = True) -> np.ndarray:
    """Site fractions of ``k`` species on one sublattice, shape (p, k), rows sum to 1.

    ``refine``: geometric refinement towards the edges of the simplex (the
    one-sublattice solutions); otherwise a uniform lattice plus (``near``) a few
    points near the corners (sublattices of an ordered phase, near its ideal occupation).
    """
    if k == 1:
        return np.ones((1, 1))
    ends = [1e-4, 1e-3, 1e-2, 1 - 1e-2, 1 - 1e-3, 1 - 1e-4] if near else []
    g = composition_grid(n) if refine else np.unique(np.concatenate([np.linspace(0, 1, n + 1),
                                                                      ends]))
    if k == 2:
        return np.stack([1 - g, g], axis=1)
    if k == 3:
        if refine:
            a, b = (v.ravel() for v in np.meshgrid(g, g, indexing="ij"))
        else:
            lat = [(i / n, j / n) for i in range(n + 1) for j in range(n + 1 - i)]
            close = [(a, b) for a in (0.0, 1e-4, 1e-3, 1e-2) for b in (0.0, 1e-4, 1e-3, 1e-2)]
            a, b = np.array(lat + (close if near else [])).T
        rows = []
        for dep in range(3):  # each species in turn is 1 - the others: every edge alike
            ok = a + b <= 1.0 + 1e-12
            c = np.clip(1.0 - a[ok] - b[ok], 0.0, 1.0)
            rows.append(np.insert(np.stack([a[ok], b[ok]], axis=1), dep, c, axis=1))
        y = np.concatenate(rows)
        y = y / y.sum(axis=1, keepdims=True)
        return np.unique(np.round(y, 12), axis=0)
    raise InputError(f"a sublattice with {k} species: up to three are supported")


@numba.njit(cache=True)
def _locate(tri, targets, n_cells):  # pragma: no cover - compiled
    """Facet index and barycentric weights of each target (-1 when outside every facet).

    tri: (n_f, 3, 2) projected facet vertices; targets: (m, 2). Targets are bucketed
    on an ``n_cells`` x ``n_cells`` grid over [0, 1]^2; for each facet only the
    targets in the cells of its bounding box are tested. Of several facets that
    hold a target (it lies on a shared edge) the one where it is most interior wins.
    """
    m = targets.shape[0]
    nf = tri.shape[0]
    cell = np.empty(m, dtype=np.int64)
    counts = np.zeros(n_cells * n_cells + 1, dtype=np.int64)
    for t in range(m):
        i = min(max(int(targets[t, 0] * n_cells), 0), n_cells - 1)
        j = min(max(int(targets[t, 1] * n_cells), 0), n_cells - 1)
        cell[t] = i * n_cells + j
        counts[cell[t] + 1] += 1
    for c in range(n_cells * n_cells):
        counts[c + 1] += counts[c]
    order = np.empty(m, dtype=np.int64)
    fill = counts[:-1].copy()
    for t in range(m):
        order[fill[cell[t]]] = t
        fill[cell[t]] += 1
    best = np.full(m, -np.inf)
    out = np.full(m, -1, dtype=np.int64)
    weights = np.zeros((m, 3))
    for f in range(nf):
        x0, y0 = tri[f, 0, 0], tri[f, 0, 1]
        x1, y1 = tri[f, 1, 0], tri[f, 1, 1]
        x2, y2 = tri[f, 2, 0], tri[f, 2, 1]
        det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(det) < 1e-300:
            continue
        lo_x = min(x0, min(x1, x2)) - 1e-12
        hi_x = max(x0, max(x1, x2)) + 1e-12
        lo_y = min(y0, min(y1, y2)) - 1e-12
        hi_y = max(y0, max(y1, y2)) + 1e-12
        i0 = min(max(int(lo_x * n_cells), 0), n_cells - 1)
        i1 = min(max(int(hi_x * n_cells), 0), n_cells - 1)
        j0 = min(max(int(lo_y * n_cells), 0), n_cells - 1)
        j1 = min(max(int(hi_y * n_cells), 0), n_cells - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                c = i * n_cells + j
                for q in range(counts[c], counts[c + 1]):
                    t = order[q]
                    px, py = targets[t, 0], targets[t, 1]
                    if px < lo_x or px > hi_x or py < lo_y or py > hi_y:
                        continue
                    # unnormalised barycentric coordinates (twice the signed sub-areas): the
                    # test is absolute, so a sliver facet (vertices 1e-9 apart) still holds
                    # a point on its long edge
                    sg = 1.0 if det > 0 else -1.0
                    a0 = sg * ((y1 - y2) * (px - x2) + (x2 - x1) * (py - y2))
                    a1 = sg * ((y2 - y0) * (px - x2) + (x0 - x2) * (py - y2))
                    a2 = sg * det - a0 - a1
                    amin = min(a0, min(a1, a2))
                    if amin < -1e-13:
                        continue
                    mn = amin / abs(det)
                    if mn > best[t]:
                        w0 = max(a0, 0.0)
                        w1 = max(a1, 0.0)
                        w2 = max(a2, 0.0)
                        tot = w0 + w1 + w2
                        best[t] = mn
                        out[t] = f
                        weights[t, 0] = w0 / tot
                        weights[t, 1] = w1 / tot
                        weights[t, 2] = w2 / tot
    return out, weights


@dataclass(frozen=True)
class Section:
    """Equilibrium over a set of compositions at one temperature (see :meth:`TernaryModel.section`).

    Attributes
    ----------
    components : (A, B, C)
    temperature_k : float
    x : ndarray, shape (m, 2)
        Target compositions (x_B, x_C).
    labels : list of str, length m
        Phase assemblage at each target, names sorted, a phase twice in a
        miscibility gap (``"BCC_A2+BCC_A2"``).
    phase_fractions : ndarray, shape (m, n_phases)
        Mole fraction of each phase (instances of one phase summed).
    n_phases_present : ndarray, shape (m,)
    gibbs_j_mol : ndarray, shape (m,)
        Equilibrium molar Gibbs energy (the hull), J/mol of atoms.
    tie_lines : ndarray, shape (n_tie, 2, 2)
        Ends (x_B, x_C) of the two-phase hull edges (one per tie-line facet).
    tie_triangles : ndarray, shape (n_tri, 3, 2)
        Corners of the three-phase facets.
    tie_triangle_phases : list of str
        Their assemblage labels.
    """

    components: tuple[str, str, str]
    temperature_k: float
    phases: tuple[str, ...]
    x: np.ndarray
    labels: list[str]
    phase_fractions: np.ndarray
    n_phases_present: np.ndarray
    gibbs_j_mol: np.ndarray
    tie_lines: np.ndarray
    tie_triangles: np.ndarray
    tie_triangle_phases: list[str]


@dataclass(frozen=True)
class LiquidusProjection:
    """Liquidus temperature and primary solid over compositions (:meth:`TernaryModel.liquidus`).

    ``liquidus_k`` is NaN where the liquid is not the only phase at ``t_max`` or
    still is at ``t_min``; ``primary_phase`` is then ``""``.
    """

    components: tuple[str, str, str]
    x: np.ndarray  # (m, 2)
    liquidus_k: np.ndarray  # (m,)
    primary_phase: list[str]
    temperatures_k: np.ndarray  # scan temperatures


class TernaryModel(CompiledPhases):
    """Compiled Gibbs energies of all phases of a ternary A-B-C, with free parameters.

    Parameters
    ----------
    database : pycalphad Database or path
    components : sequence of three str
        ``(A, B, C)``; compositions are ``(x_B, x_C)``.
    phases : sequence of str, optional
        Default: every phase of the database made of these components.
    parameters : sequence of str
        Database symbols kept free (values passed to each call; defaults from the database).
    n_grid : int
        Points per site-fraction axis of a one-sublattice phase (plus refinement
        towards the edges); sublattice products use ``n_grid // 4`` per sublattice.
    liquid : str
        Name of the liquid phase (for :meth:`liquidus`).
    max_points : int
        Largest grid of a phase with several mixing sublattices (its lattice is
        coarsened until the product of the sublattice grids fits; the local
        refinement at the phase boundaries makes up for it).
    """

    def __init__(self, database: Database | str | Path, components: Sequence[str],
                 phases: Sequence[str] | None = None, parameters: Sequence[str] = (),
                 n_grid: int = 60, t_range: tuple[float, float] = (298.15, 6000.0),
                 liquid: str = "LIQUID", max_points: int = 40000) -> None:
        from pycalphad import Model

        self.database = dbf = load_database(database)
        elements = sorted(str(e) for e in dbf.elements if str(e) not in ("VA", "/-"))
        comps = [str(c).strip().upper() for c in components]
        if len(comps) != 3 or len(set(comps)) != 3 or any(c not in elements for c in comps):
            raise InputError(f"components: need three different elements of the database "
                             f"{elements}; got {list(components)}")
        self.components = (comps[0], comps[1], comps[2])
        species = self._select(phases, parameters)
        self.liquid = liquid.upper()
        self.t_range = (float(t_range[0]), float(t_range[1]))
        self.n_grid = int(n_grid)
        self.max_points = int(max_points)
        self._funcs: list = []
        self._y: list[np.ndarray] = []
        xs, owner, tol = [], [], []
        self._site_map: list[np.ndarray] = []
        self._moves: list[list[tuple[int, int]]] = []
        self._step: list[float] = []
        self._coarse: list[bool] = []
        for i, name in enumerate(self.phases):
            mod = Model(dbf, species, name, parameters=list(self.parameter_names))
            y, x = self._internal_grid(mod)
            self._funcs.append(self._compile(mod))
            self._y.append(y)
            xs.append(x)
            owner.append(np.full(len(x), i))
            tol.append(_spacing(x) * 3.0 + 1e-9)
        self._grids = self._y
        self.x_all = np.concatenate(xs)  # (n_points, 2): x_B, x_C
        self.phase_all = np.concatenate(owner)
        self.n_points = len(self.x_all)
        # two vertices of one phase farther apart than this are two instances (a gap)
        self.tolerance = np.array(tol)
        self._init_args = dict(components=comps, phases=phases, parameters=parameters,
                               n_grid=n_grid, t_range=t_range, liquid=liquid,
                               max_points=max_points)

    # ------------------------------------------------------------------ grids
    def _internal_grid(self, mod) -> tuple[np.ndarray, np.ndarray]:
        """Site fractions (p, n_y) and compositions (x_B, x_C) (p, 2) of one phase."""
        subs = [sorted(str(s.name) for s in sub) for sub in mod.constituents]
        n_mixing = sum(1 for s in subs if len(s) > 1)
        n1 = self.n_grid if n_mixing <= 1 else max(self.n_grid // 4, 8)
        near = True
        while True:  # several mixing sublattices: a coarser lattice keeps the product small
            blocks = [_simplex_points(n1, len(s), refine=n_mixing <= 1, near=near) for s in subs]
            if n_mixing <= 1 or np.prod([len(b) for b in blocks]) <= self.max_points:
                break
            if n1 <= 2:
                if not near:
                    break
                near, n1 = False, max(self.n_grid // 4, 8)  # without the near-corner points
                continue
            n1 = max(2, int(n1 * 0.8))
        idx = np.array(list(itertools.product(*[range(len(b)) for b in blocks])))
        y = np.concatenate([b[idx[:, i]] for i, b in enumerate(blocks)], axis=1)
        moles = np.zeros((len(y), 3))
        col = 0
        for ratio, sub in zip(mod.site_ratios, subs, strict=True):
            for s in sub:
                if s in self.components:
                    moles[:, self.components.index(s)] += float(ratio) * y[:, col]
                col += 1
        tot = moles.sum(axis=1)
        keep = tot > 1e-12
        y, moles = y[keep], moles[keep] / tot[keep, None]
        # moles of each component per formula unit = y @ site_map; moves for refinement:
        # a little of one species replaced by another on the same sublattice
        site_map = np.zeros((y.shape[1], 3))
        moves, col = [], 0
        for ratio, sub in zip(mod.site_ratios, subs, strict=True):
            for k, s in enumerate(sub):
                if s in self.components:
                    site_map[col + k, self.components.index(s)] = float(ratio)
            moves += [(col + a, col + b) for a in range(len(sub)) for b in range(len(sub)) if a != b]
            col += len(sub)
        self._site_map.append(site_map)
        self._coarse.append(n_mixing > 1)
        self._moves.append(moves)
        self._step.append(1.0 / n1)
        names = [(sf.sublattice_index, str(sf.species.name)) for sf in mod.site_fractions]
        if names != sorted(names):
            raise ComputeError(f"unexpected site-fraction order in {mod.phase_name}: {names}")
        return y, moles[:, 1:]

    # ------------------------------------------------------------------ energies
    def energies(self, temperature: float, params: ArrayLike | None = None) -> np.ndarray:
        """Molar Gibbs energy (J/mol of atoms) of every grid point at T, shape (n_points,)."""
        self.check_temperature(temperature)
        return self._gibbs(np.array([float(temperature)]), self.params_array(params))[0]

    # ------------------------------------------------------------------ hull
    def _lower_hull(self, x: np.ndarray, g: np.ndarray, temperature: float) -> np.ndarray:
        """Vertex indices (into ``x``) of the lower hull facets, shape (n_f, 3)."""
        # a plane through the corners' minima is subtracted and G scaled by RT: the hull
        # is unchanged, Qhull's precision is better
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        gc, ci = [], []
        for c in corners:
            near = np.flatnonzero(np.abs(x - c).sum(axis=1) < 1e-13)
            if not len(near):
                raise InputError(f"no phase reaches pure {self._corner_name(c)}: the section "
                                 "needs every corner of the triangle")
            ci.append(int(near[np.argmin(g[near])]))
            gc.append(g[ci[-1]])
        plane = gc[0] + (gc[1] - gc[0]) * x[:, 0] + (gc[2] - gc[0]) * x[:, 1]
        z = (g - plane) / (R_GAS * temperature)
        # the hull is a convex function through the corner minima: it lies below that plane,
        # so points above it are never hull vertices
        keep = np.flatnonzero(z <= 1e-9)
        if len(keep) > 12000:
            # the hull of a subsample lies above the full hull: points above it are not
            # vertices either (this drops most of the points before the full hull)
            sub = np.union1d(keep[::8], ci)
            fs = sub[self._qhull(x[sub], z[sub], temperature)]
            f_of, w = _locate(np.ascontiguousarray(x[fs]), np.ascontiguousarray(x[keep]),
                              int(max(4, min(512, np.sqrt(len(fs)) / 2))))
            inside = f_of >= 0
            z_sub = np.where(inside, np.einsum("mk,mk->m", w, z[fs[np.maximum(f_of, 0)]]),
                             np.inf)
            keep = keep[z[keep] <= z_sub + 1e-9]
        return keep[self._qhull(x[keep], z[keep], temperature)]

    @staticmethod
    def _qhull(x: np.ndarray, z: np.ndarray, temperature: float) -> np.ndarray:
        """Lower facets (indices into ``x``) of the hull of the points (x_B, x_C, z)."""
        from scipy.spatial import ConvexHull, QhullError

        # a point far above closes the hull from the top so that every lower facet exists
        top = np.array([[1 / 3, 1 / 3, z.max() + 10.0]])
        try:
            hull = ConvexHull(np.vstack([np.column_stack([x, z]), top]), qhull_options="Qt Q12")
        except QhullError as exc:
            raise ComputeError(f"convex hull failed at T = {temperature:g} K: {exc}") from None
        simp = hull.simplices[hull.equations[:, 2] < -1e-12]
        return simp[(simp < len(x)).all(axis=1)]

    def _corner_name(self, c) -> str:
        return self.components[0 if c.sum() == 0 else (1 if c[0] == 1 else 2)]

    def section(self, temperature: float, x: ArrayLike, params: ArrayLike | None = None,
                refine: int = 2) -> Section:
        """Phase assemblage and fractions at compositions ``x`` (m, 2) = (x_B, x_C) at T.

        ``refine`` levels of local refinement: around every hull vertex at a phase
        boundary, site-fraction moves of half the previous step are added and the
        hull is taken again (each level halves the grid error of the boundaries).
        """
        xt = np.atleast_2d(np.asarray(x, dtype=float))
        if xt.shape[1] != 2:
            raise InputError(f"x: need compositions as (m, 2) = (x_B, x_C); got shape {xt.shape}")
        xa = 1 - xt.sum(axis=1)
        if (xt < -1e-9).any() or (xa < -1e-9).any():
            bad = int(np.flatnonzero((xt < -1e-9).any(axis=1) | (xa < -1e-9))[0])
            raise InputError(f"x[{bad}] = {xt[bad].tolist()} is outside the composition "
                             "triangle (mole fractions must be >= 0)")
        p = self.params_array(params)
        g = self.energies(temperature, p)
        xp, gp, php, yp = self.x_all, g, self.phase_all, None
        facets = self._lower_hull(xp, gp, temperature)
        # coarse lattices (several mixing sublattices) get the extra levels that bring their
        # step down to that of the one-sublattice phases after ``refine`` levels
        fine = 1.0 / (self.n_grid * 2 ** refine)
        extra = max([int(np.ceil(np.log2(h / fine))) for h, c in zip(self._step, self._coarse,
                                                                    strict=True) if c] + [0])
        for level in range(1, max(refine, extra) + 1 if refine else 1):
            # the coarse phases are refined around the facets that hold a target
            f_of, _ = _locate(np.ascontiguousarray(xp[facets]), np.ascontiguousarray(xt),
                              int(max(4, min(512, np.sqrt(len(facets)) / 2))))
            active = set(np.unique(facets[f_of[f_of >= 0]]).tolist())
            xp, gp, php, yp = self._refined(facets, xp, gp, php, yp, temperature, p, level,
                                            all_phases=level <= refine, active=active)
            facets = self._lower_hull(xp, gp, temperature)
        tri = xp[facets]  # (n_f, 3, 2)
        n_cells = int(max(4, min(512, np.sqrt(len(facets)) / 2)))
        f_of, w = _locate(np.ascontiguousarray(tri), np.ascontiguousarray(xt), n_cells)
        if (f_of < 0).any():
            bad = int(np.flatnonzero(f_of < 0)[0])
            raise ComputeError(f"composition {xt[bad].tolist()} is in no hull facet at "
                               f"T = {temperature:g} K")
        # classify every facet once: its phase instances
        inst, n_inst = self._instances(facets, xp, php)
        labels = [""] * len(xt)
        frac = np.zeros((len(xt), len(self.phases)))
        n_present = np.zeros(len(xt), dtype=np.int64)
        for t in range(len(xt)):
            f = f_of[t]
            used: dict[int, float] = {}
            for k in range(3):
                if w[t, k] > 1e-9:
                    key = int(inst[f, k])
                    used[key] = used.get(key, 0.0) + w[t, k]
            names = []
            for key, wt in used.items():
                ph = php[facets[f, key]]
                names.append(self.phases[ph])
                frac[t, ph] += wt
            labels[t] = "+".join(sorted(names))
            n_present[t] = len(used)
        ends = []
        for f in np.flatnonzero(n_inst == 2):
            a = facets[f, 0]
            b = facets[f, int(np.flatnonzero(inst[f] != inst[f, 0])[0])]
            ends.append([xp[a], xp[b]])
        three = np.flatnonzero(n_inst == 3)
        g_eq = np.einsum("mk,mk->m", w, gp[facets[f_of]])
        return Section(self.components, float(temperature), self.phases, xt, labels, frac,
                       n_present, g_eq, np.array(ends).reshape(-1, 2, 2), tri[three],
                       ["+".join(sorted(self.phases[php[v]] for v in facets[f]))
                        for f in three])

    def _site_fractions(self, idx: np.ndarray, php: np.ndarray, yp) -> list[np.ndarray]:
        """Site-fraction rows of the points ``idx`` (one array per point, phase-specific width)."""
        if yp is None:  # the base grid: rows by offset into each phase's grid
            offs = np.concatenate([[0], np.cumsum([len(y) for y in self._y])])
            return [self._y[php[i]][i - offs[php[i]]] for i in idx]
        return [yp[i] for i in idx]

    def _refined(self, facets, xp, gp, php, yp, temperature, p, level, all_phases=True,
                 active=None):
        """Hull vertices plus site-fraction moves around the vertices at phase boundaries
        (``all_phases``) and around the ``active`` vertices of coarse-lattice phases."""
        verts = np.unique(facets)
        _, n_inst = self._instances(facets, xp, php)
        edge = np.unique(facets[n_inst >= 2])
        ys = self._site_fractions(verts, php, yp)
        new_y, new_ph = list(ys), [int(php[i]) for i in verts]
        edge_set = set(edge.tolist())
        for i, y in zip(verts, ys, strict=True):
            # phases with several mixing sublattices sit on coarse lattices: refine around
            # all their vertices (their internal minimum matters inside their region too)
            ph = int(php[i])
            at_edge = all_phases and int(i) in edge_set
            if not at_edge and not (self._coarse[ph] and (active is None or int(i) in active)):
                continue
            h = self._step[ph] / 2 ** level
            for a, b in self._moves[ph]:
                if y[a] >= h - 1e-15:
                    z = y.copy()
                    z[a] -= h
                    z[b] += h
                    new_y.append(np.clip(z, 0.0, 1.0))
                    new_ph.append(ph)
        ph_arr = np.array(new_ph)
        x_new = np.empty((len(new_y), 2))
        g_new = np.empty(len(new_y))
        for ph in np.unique(ph_arr):
            rows = np.flatnonzero(ph_arr == ph)
            y = np.array([new_y[r] for r in rows])
            moles = y @ self._site_map[ph]
            tot = moles.sum(axis=1)
            ok = tot > 1e-12
            x_new[rows] = np.where(ok[:, None], moles[:, 1:] / np.where(ok, tot, 1.0)[:, None], np.nan)
            args = np.empty((len(y), 1 + y.shape[1] + len(p)))
            args[:, 0] = temperature
            args[:, 1:1 + y.shape[1]] = y
            args[:, 1 + y.shape[1]:] = p
            g_new[rows] = np.asarray(self._funcs[ph](args)).reshape(len(y))
        good = np.isfinite(g_new) & np.isfinite(x_new).all(axis=1)
        idx = np.flatnonzero(good)
        return x_new[idx], g_new[idx], ph_arr[idx], [new_y[r] for r in idx]

    def _instances(self, facets: np.ndarray, xp: np.ndarray, php: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """For each facet vertex, the index (0-2) of the first vertex of its phase instance."""
        ph = php[facets]  # (n_f, 3)
        xv = xp[facets]  # (n_f, 3, 2)
        tol = self.tolerance[ph]
        inst = np.tile(np.arange(3), (len(facets), 1))
        for a, b in ((0, 1), (0, 2), (1, 2)):
            near = (ph[:, a] == ph[:, b]) & \
                (np.linalg.norm(xv[:, a] - xv[:, b], axis=1) <= tol[:, a])
            # b joins a's instance (a already points to its root)
            inst[near, b] = np.minimum(inst[near, b], inst[near, a])
        n_inst = 1 + (inst[:, 1] != inst[:, 0]) + \
            ((inst[:, 2] != inst[:, 0]) & (inst[:, 2] != inst[:, 1]))
        return inst, n_inst

    # ------------------------------------------------------------------ liquidus
    def liquidus(self, x: ArrayLike, t_min: float, t_max: float, dt: float = 20.0,
                 params: ArrayLike | None = None) -> LiquidusProjection:
        """Liquidus temperature and primary solid at compositions ``x`` (m, 2).

        At each scan temperature: the tangent plane of the liquid alone at each
        composition (lower hull of the liquid's points) and the most negative
        ``G_solid - plane`` over all solid points (driving force of precipitation).
        The liquidus is its zero crossing, linearly interpolated in T.
        """
        if self.liquid not in self.phases:
            raise InputError(f"liquid phase {self.liquid!r} is not among the phases "
                             f"{', '.join(self.phases)}")
        if not t_max > t_min or dt <= 0:
            raise InputError(f"need t_min < t_max and dt > 0; got {t_min}, {t_max}, {dt}")
        xt = np.atleast_2d(np.asarray(x, dtype=float))
        temps = np.arange(t_max, t_min - 1e-9, -dt)
        li = self.phases.index(self.liquid)
        p = self.params_array(params)
        is_liq = self.phase_all == li
        xl = self.x_all[is_liq]
        xs = self.x_all[~is_liq]
        solid_phase = self.phase_all[~is_liq]
        df = np.empty((len(temps), len(xt)))
        who = np.empty((len(temps), len(xt)), dtype=np.int64)
        for k, t in enumerate(temps):
            g = self.energies(float(t), p)
            gl, gs = g[is_liq], g[~is_liq]
            # the exact tangent of the liquid where it is stable against demixing (no liquid
            # point below it); elsewhere (a liquid gap, or a liquid of several sublattices)
            # the facet of the liquid's own hull. A chord plane tilts by G'' h / 2 per unit
            # x: far solids would see it off by tens of J/mol.
            coef = self._liquid_tangent(xt, float(t), p, li)
            todo = np.ones(len(xt), dtype=bool)
            if coef is not None:
                lowest = np.concatenate([np.min(gl[None, :] - (c[:, :1] + c[:, 1:2] * xl[None, :, 0]
                                                               + c[:, 2:3] * xl[None, :, 1]), axis=1)
                                         for c in np.array_split(coef, max(1, len(xt) // 256))])
                todo = lowest < -1e-3
            else:
                coef = np.zeros((len(xt), 3))
            if todo.any():
                fac = self._lower_hull(xl, gl, float(t))
                tri = xl[fac]
                f_of, _ = _locate(np.ascontiguousarray(tri), np.ascontiguousarray(xt[todo]),
                                  int(max(4, min(512, np.sqrt(len(fac)) / 2))))
                if (f_of < 0).any():
                    raise ComputeError(f"a composition lies outside the liquid's hull at {t:g} K")
                # plane through each located facet: g = c0 + c1 x_B + c2 x_C
                p3 = np.concatenate([tri, gl[fac][:, :, None]], axis=2)[f_of]  # (m', 3, 3)
                a = np.concatenate([np.ones((len(f_of), 3, 1)), p3[:, :, :2]], axis=2)
                coef[todo] = np.linalg.solve(a, p3[:, :, 2:3])[..., 0]
            # only the solids' own lower-hull vertices can minimise G - plane
            try:  # with all three corners among the solids: the pruned hull
                sf = np.unique(self._lower_hull(xs, gs, float(t)))
            except InputError:
                sf = np.unique(self._lower_hull_any(xs, gs, float(t)))
            d = gs[sf][None, :] - (coef[:, :1] + coef[:, 1:2] * xs[sf, 0][None, :] +
                                   coef[:, 2:3] * xs[sf, 1][None, :])
            j = np.argmin(d, axis=1)
            df[k] = d[np.arange(len(xt)), j]
            who[k] = solid_phase[sf[j]]
            if k and np.all((df[:k + 1] <= 0).any(axis=0)):  # every liquidus crossed (or none
                df, who, temps = df[:k + 1], who[:k + 1], temps[:k + 1]  # liquid at the top)
                break
        liq = np.full(len(xt), np.nan)
        prim = [""] * len(xt)
        for m in range(len(xt)):
            cross = np.flatnonzero((df[:-1, m] > 0) & (df[1:, m] <= 0))
            if not len(cross) or df[0, m] <= 0:
                continue
            k = int(cross[0])
            f0, f1 = df[k, m], df[k + 1, m]
            liq[m] = temps[k] + (temps[k + 1] - temps[k]) * f0 / (f0 - f1)
            prim[m] = self.phases[who[k + 1, m]]
        return LiquidusProjection(self.components, xt, liq, prim, temps)

    def _liquid_tangent(self, xt: np.ndarray, temperature: float, p: np.ndarray, li: int
                        ) -> np.ndarray | None:
        """Tangent planes (c0, c1, c2) of a one-sublattice liquid at ``xt`` (central differences).

        None when the liquid is not one sublattice of the three components.
        """
        site_map = self._site_map[li]
        if site_map.shape[0] != 3 or not np.allclose(np.sort(site_map, axis=1)[:, :2], 0) \
                or not np.allclose(site_map.sum(axis=1), 1.0):
            return None
        comp_of = np.argmax(site_map, axis=1)  # column -> component
        xa = 1.0 - xt.sum(axis=1)
        full = np.column_stack([xa, xt])  # (m, 3) in component order A, B, C
        delta = np.minimum(1e-5, 0.5 * full.min(axis=1))
        rows = []
        for db, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            shift = np.column_stack([-(db + dc) * delta, db * delta, dc * delta])
            rows.append((full + shift)[:, comp_of])
        y = np.concatenate(rows)
        args = np.empty((len(y), 1 + 3 + len(p)))
        args[:, 0] = temperature
        args[:, 1:4] = y
        args[:, 4:] = p
        g = np.asarray(self._funcs[li](args)).reshape(5, len(xt))
        gb = (g[1] - g[2]) / (2 * delta)
        gc = (g[3] - g[4]) / (2 * delta)
        return np.column_stack([g[0] - gb * xt[:, 0] - gc * xt[:, 1], gb, gc])

    def _lower_hull_any(self, x: np.ndarray, g: np.ndarray, temperature: float) -> np.ndarray:
        """Lower-hull vertices of any point set that need not reach the corners."""
        from scipy.spatial import ConvexHull

        z = g / (R_GAS * temperature)
        top = np.array([[1 / 3, 1 / 3, z.max() + 10.0]])
        hull = ConvexHull(np.vstack([np.column_stack([x, z]), top]), qhull_options="Qt Q12")
        simp = hull.simplices[hull.equations[:, 2] < -1e-12]
        return simp[simp < len(x)]


def _spacing(x: np.ndarray) -> float:
    """Largest nearest-neighbour distance among a phase's distinct compositions."""
    from scipy.spatial import cKDTree

    u = np.unique(np.round(x, 12), axis=0)
    if len(u) < 2:
        return 0.0
    d, _ = cKDTree(u).query(u, k=2)
    return float(np.max(d[:, 1]))


def pycalphad_section(database: Database | str | Path, components: Sequence[str],
                      phases: Sequence[str], temperature: float, x: ArrayLike
                      ) -> tuple[list[str], np.ndarray, float]:
    """pycalphad's ``equilibrium`` at ``x`` (m, 2): labels, molar G (J/mol), seconds.

    The reference for :meth:`TernaryModel.section`. pycalphad's models and phase
    records are built once and compiled by a one-point warm-up that is not timed,
    so ``seconds`` is the minimisation alone. The compositions are given to
    pycalphad as the product of the distinct x_B and x_C values (points outside the
    triangle come back empty and are dropped); labels are written as ours (sorted
    names, a phase twice in a miscibility gap). A point pycalphad does not
    converge comes back ``""``.
    """
    import time
    import warnings

    from pycalphad import equilibrium
    from pycalphad import variables as v
    from pycalphad.codegen.phase_record_factory import PhaseRecordFactory
    from pycalphad.core.utils import instantiate_models

    dbf = load_database(database)
    comps = [c.upper() for c in components]
    xt = np.atleast_2d(np.asarray(x, dtype=float))
    xb = np.unique(np.round(xt[:, 0], 10))
    xc = np.unique(np.round(xt[:, 1], 10))
    species = comps + (["VA"] if "VA" in {str(e) for e in dbf.elements} else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # pycalphad at its best: models and phase records built once, compiled by a warm-up
        models = instantiate_models(dbf, species, list(phases))
        conds = {v.T: float(temperature), v.P: 101325.0, v.N: 1.0,
                 v.X(comps[1]): xb, v.X(comps[2]): xc}
        records = PhaseRecordFactory(dbf, species, set(conds), models)
        equilibrium(dbf, species, list(phases), {**conds, v.X(comps[1]): xb[:1],
                                                 v.X(comps[2]): xc[:1]},
                    model=models, phase_records=records)
        t0 = time.perf_counter()
        eq = equilibrium(dbf, species, list(phases), conds, model=models, phase_records=records)
        seconds = time.perf_counter() - t0
    ph = np.asarray(eq.Phase.values).reshape(len(xb), len(xc), -1)
    gm = np.asarray(eq.GM.values).reshape(len(xb), len(xc))
    labels, g = [], []
    for xb_i, xc_i in xt:
        i = int(np.argmin(np.abs(xb - xb_i)))
        j = int(np.argmin(np.abs(xc - xc_i)))
        labels.append("+".join(sorted(str(p) for p in ph[i, j] if str(p))))
        g.append(gm[i, j])
    return labels, np.array(g, dtype=float), seconds


def agreement(ours: Sequence[str], reference: Sequence[str]) -> float:
    """Fraction of compositions with the same phase assemblage (reference failures excluded)."""
    pairs = [(a, b) for a, b in zip(ours, reference, strict=True) if b]
    if not pairs:
        raise ComputeError("the reference has no converged point")
    return float(np.mean([a == b for a, b in pairs]))
