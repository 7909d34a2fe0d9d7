"""Fast binary phase-diagram engine: compiled Gibbs energies + lower convex hull.

pycalphad builds the Gibbs energy of each phase (:class:`pycalphad.Model`);
here the chosen model parameters stay *symbols*, so one compiled function
(symengine ``Lambdify``, LLVM backend) serves every posterior draw. (pycalphad's
``mapping`` module ignores ``parameters=``; this engine is the work-around.)

For a binary A-B at temperature T the equilibrium is the lower convex hull of
the molar Gibbs energies of all phases, each sampled on a grid of its internal
degrees of freedom (site fractions). Hull vertices of one phase form its
single-phase region; an edge between two phases is a two-phase region (a
tie-line). Everything here is per mole of atoms, J/mol, temperatures in K,
compositions are the mole fraction of the *second* component ``x_B``.

Accuracy: on the default grids (1/``n_grid`` spacing with points refined
towards the pure ends and towards stoichiometry) the hull energy is within
~0.1 J/mol of the true minimum, i.e. invariant temperatures are within
~0.1 K of a full Gibbs-energy minimiser (checked against pycalphad's
``equilibrium`` in the tests).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np

from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pycalphad import Database

__all__ = ["BinaryModel", "CompiledPhases", "load_database", "lower_hull", "Region", "Invariant",
           "add_offset_parameters"]

R_GAS = 8.314462618  # J/(mol K)


def load_database(source: str | Path | Database) -> Database:
    """A pycalphad ``Database`` from a path (TDB) or a Database (returned as is).

    A file that does not parse raises :class:`InputError` naming the file and,
    where pycalphad tells it, the offending line.
    """
    from pycalphad import Database

    if isinstance(source, Database):
        return source
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: TDB file not found")
    text = path.read_text(errors="replace")
    try:
        return Database(text) if "\n" in text else Database(str(path))
    except Exception as exc:  # pyparsing / pycalphad errors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # pycalphad parses command by command ("!"-terminated): find the first bad one
        line = _first_bad_command_line(text)
        where = f"{path}:{line}" if line else str(path)
        raise InputError(f"{where}: TDB file does not parse ({msg})") from None


def add_offset_parameters(database: Database, offsets: dict[str, str]) -> Database:
    """Make numeric database parameters free: add a symbol to each (value 0).

    Parameters
    ----------
    database : pycalphad Database
        Modified in place (and returned).
    offsets : dict
        ``symbol name -> target``; a target is a TDB parameter such as
        ``"G(LIQUID,CU,MG;0)"`` (adds the symbol, J/mol of formula unit) or
        ``"G(LIQUID,CU,MG;0)*T"`` (adds symbol * T: an entropy-like term, J/(mol K)).
    """
    import re

    import symengine as se
    from pycalphad import variables as v

    pat = re.compile(r"^\s*[GL]\((\w+),([^;]+);(\d+)\)\s*(\*\s*T)?\s*$", re.I)
    for name, target in offsets.items():
        m = pat.match(target)
        if not m:
            raise InputError(f"offset {name}: target {target!r} is not like 'G(PHASE,A,B;0)' "
                             "or 'G(PHASE,A:B;0)*T'")
        phase, const, order, times_t = m.group(1).upper(), m.group(2).upper(), int(m.group(3)), m.group(4)
        subl = tuple(tuple(sorted(s.strip() for s in sub.split(","))) for sub in const.split(":"))
        hits = []
        for doc in database._parameters.all():
            if doc["phase_name"] != phase or int(doc["parameter_order"]) != order or \
                    doc["parameter_type"] not in ("G", "L"):
                continue
            arr = tuple(tuple(sorted(str(getattr(s, "name", s)) for s in sub))
                        for sub in doc["constituent_array"])
            if arr == subl:
                hits.append(doc)
        if len(hits) != 1:
            raise InputError(f"offset {name}: parameter {target} found {len(hits)} times in the "
                             "database (need exactly one)")
        sym = se.Symbol(name)
        term = sym * v.T if times_t else sym
        database._parameters.update({"parameter": _add_term(hits[0]["parameter"], term)},
                                    doc_ids=[hits[0].doc_id])
        database.symbols[name] = se.S(0.0)
    return database


def _symbol_value(expr) -> float:
    """Numeric value of a database symbol (a TDB FUNCTION may be piecewise in T)."""
    from pycalphad import variables as v

    try:
        return float(expr)
    except (RuntimeError, TypeError, ValueError):
        return float(expr.xreplace({v.T: 1000.0}))


def _add_term(expr, term):
    """``expr + term``, inside each branch of a piecewise expression (so it writes as TDB)."""
    import symengine as se

    if isinstance(expr, se.Piecewise):
        args = expr.args
        pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
        new = [(e + term, c) if c != se.true else (e, c) for e, c in pairs]
        return se.Piecewise(*new)
    return expr + term


def _first_bad_command_line(text: str) -> int | None:
    """Line number of the ``!``-terminated TDB command whose removal lets the file parse."""
    import warnings

    from pycalphad import Database

    chunks = text.split("!")
    starts, line_no = [], 1
    for chunk in chunks:
        lead = chunk[: len(chunk) - len(chunk.lstrip())]
        starts.append(line_no + lead.count("\n"))
        line_no += chunk.count("\n")
    for i, chunk in enumerate(chunks):
        body = chunk.strip()
        if not body or body.startswith("$"):
            continue
        trial = "!".join(chunks[:i] + [""] + chunks[i + 1:])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Database(trial)
        except Exception:
            continue
        return starts[i]
    return None


@numba.njit(cache=True)
def _hull_indices(x, g):  # pragma: no cover - compiled
    """Indices of the lower convex hull of points sorted by (x, g) (monotone chain)."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if k > 0 and x[i] == x[out[k - 1]]:
            if g[i] >= g[out[k - 1]]:
                continue  # same x: the lowest g wins
            k -= 1
        while k >= 2:
            o, a = out[k - 2], out[k - 1]
            cross = (x[a] - x[o]) * (g[i] - g[o]) - (g[a] - g[o]) * (x[i] - x[o])
            if cross <= 0.0:
                k -= 1
            else:
                break
        out[k] = i
        k += 1
    return out[:k]


def lower_hull(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Indices (into ``x``) of the lower convex hull vertices, sorted by x.

    Parameters
    ----------
    x, g : ndarray, shape (n,)
        Compositions and energies of candidate points (any order).
    """
    order = np.argsort(x, kind="stable")
    return lower_hull_sorted(x, g, order)


def lower_hull_sorted(x: np.ndarray, g: np.ndarray, order: np.ndarray) -> np.ndarray:
    """As :func:`lower_hull` with ``order = argsort(x)`` precomputed (x fixed, g varies)."""
    idx = _hull_indices(np.ascontiguousarray(x[order]), np.ascontiguousarray(g[order]))
    return order[idx]


def composition_grid(n: int) -> np.ndarray:
    """Site-fraction grid on [0, 1]: uniform plus geometric refinement at both ends."""
    ends = np.geomspace(1e-9, 0.5 / n, 12)
    grid = np.concatenate([[0.0], ends, np.linspace(0, 1, n + 1)[1:-1], 1 - ends[::-1], [1.0]])
    return np.unique(np.clip(grid, 0.0, 1.0))


@dataclass(frozen=True)
class Region:
    """One stretch of the equilibrium at a temperature: single- or two-phase."""

    phases: tuple[str, ...]
    x_left: float
    x_right: float


@dataclass(frozen=True)
class Invariant:
    """An invariant (or congruent/melting) point of a binary phase diagram."""

    kind: str  # eutectic, eutectoid, peritectic, peritectoid, congruent, melting
    phases: tuple[str, ...]  # sorted by composition
    temperature_k: float
    compositions: tuple[float, ...]  # x_B of each phase in ``phases``

    @property
    def label(self) -> str:
        return f"{self.kind}:{'+'.join(self.phases)}"


class CompiledPhases:
    """What the binary and ternary models share: the phases of a database made of the chosen
    components, database symbols kept free, and one compiled molar Gibbs energy per phase.

    pycalphad builds each phase's ``GM``; the free parameters stay symbols, and symengine
    compiles ``GM(T, site fractions..., parameters...)`` once (LLVM backend), so one
    compiled function serves every posterior draw. A subclass sets ``components``, calls
    :meth:`_select` and :meth:`_compile`, keeps its constructor arguments in
    ``_init_args`` (it is rebuilt from them when unpickled) and its site-fraction grids in
    ``_grids``.
    """

    database: Database
    components: tuple[str, ...]
    phases: tuple[str, ...]
    parameter_names: tuple[str, ...]
    default_parameters: np.ndarray
    t_range: tuple[float, float]
    _funcs: list
    _grids: list[np.ndarray]
    _init_args: dict

    def _select(self, phases: Sequence[str] | None, parameters: Sequence[str]) -> list[str]:
        """Check and set ``phases`` and the free parameters; returns the species (with VA)."""
        dbf = self.database
        species = list(self.components) + (["VA"] if "VA" in {str(e) for e in dbf.elements} else [])
        avail = sorted(name for name, ph in dbf.phases.items()
                       if all(any(str(s) in species for s in sub) for sub in ph.constituents))
        chosen = avail if phases is None else [p.strip().upper() for p in phases]
        for p in chosen:
            if p not in avail:
                raise InputError(f"phase {p!r} is not in the model; phases of "
                                 f"{'-'.join(self.components)}: {', '.join(avail)}")
        self.phases = tuple(chosen)
        self.parameter_names = tuple(str(p) for p in parameters)
        for p in self.parameter_names:
            if p not in dbf.symbols:
                known = sorted(s for s in dbf.symbols if s.upper().startswith("VV")) or \
                    sorted(dbf.symbols)[:20]
                raise InputError(f"parameter {p!r} is not a symbol of the database; "
                                 f"known: {', '.join(known)}")
        self.default_parameters = np.array(
            [_symbol_value(dbf.symbols[p]) for p in self.parameter_names], dtype=float)
        return species

    def _compile(self, mod):
        """``GM(T, *site_fractions, *parameters)`` of one pycalphad ``Model`` at 1 atm, compiled."""
        import symengine as se
        from pycalphad import variables as v

        expr = mod.GM.xreplace({v.P: 101325.0})
        args = [v.T, *mod.site_fractions, *[se.Symbol(p) for p in self.parameter_names]]
        try:
            return se.Lambdify(args, [expr], backend="llvm")
        except RuntimeError:  # complex round-off constants (magnetic terms): drop i*1e-16
            cplx = [a for a in expr.atoms(se.Number) if a.is_complex and not a.is_real]
            expr = expr.xreplace({a: se.RealDouble(complex(a).real) for a in cplx})
            return se.Lambdify(args, [expr], backend="llvm")

    def __getstate__(self):  # compiled functions do not pickle: rebuild on the other side
        return {"database": self.database, **self._init_args}

    def __setstate__(self, state):
        db = state.pop("database")
        self.__init__(db, **state)  # type: ignore[misc]

    def params_array(self, params: ArrayLike | None = None) -> np.ndarray:
        """The free parameters' values (the database's when ``params`` is None), checked."""
        if params is None:
            return self.default_parameters
        p = np.asarray(params, dtype=float).ravel()
        if p.size != len(self.parameter_names):
            raise InputError(f"parameters: expected {len(self.parameter_names)} values "
                             f"({', '.join(self.parameter_names)}); got {p.size}")
        return p

    def check_temperature(self, temperature: ArrayLike) -> None:
        """InputError unless every temperature (K) lies in ``t_range``."""
        t = np.atleast_1d(np.asarray(temperature, dtype=float))
        lo, hi = self.t_range
        bad = t[(t < lo) | (t > hi) | ~np.isfinite(t)]
        if bad.size:
            raise InputError(f"temperature {bad[0]:g} K is outside the model's range "
                             f"[{lo:g}, {hi:g}] K")

    def _gibbs(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Molar Gibbs energy (J/mol of atoms) of every grid point, shape (n_T, n_points)."""
        n_points = sum(len(y) for y in self._grids)
        out = np.empty((len(t), n_points))
        col = 0
        for f, y in zip(self._funcs, self._grids, strict=True):
            n = len(y)
            args = np.empty((len(t), n, 1 + y.shape[1] + len(p)))
            args[:, :, 0] = t[:, None]
            args[:, :, 1:1 + y.shape[1]] = y[None]
            args[:, :, 1 + y.shape[1]:] = p
            out[:, col:col + n] = np.asarray(f(args.reshape(-1, args.shape[-1]))).reshape(len(t), n)
            col += n
        if not np.all(np.isfinite(out)):
            from matterflow.core.errors import ComputeError
            raise ComputeError("Gibbs energy is not finite at some grid points "
                               f"(T in [{t.min():g}, {t.max():g}] K; parameters {p.tolist()})")
        return out


class BinaryModel(CompiledPhases):
    """Compiled Gibbs energies of all phases of a binary, with free parameters.

    Parameters
    ----------
    database : pycalphad Database or path
        The thermodynamic model (TDB).
    components : sequence of str, optional
        The two elements (``["CU", "MG"]``); default: the two non-VA elements
        of the database. ``x`` is the mole fraction of the second.
    phases : sequence of str, optional
        Phases to include (default: all phases made of these components).
    parameters : sequence of str
        Names of database symbols (``VV0001`` ...) kept free; their values are
        passed to every call. Default values come from the database.
    n_grid : int
        Points per site-fraction axis (single-sublattice phases); two-sublattice
        phases use ``n_grid // 8`` per sublattice.
    t_range : (float, float)
        Temperatures (K) at which the model is valid; outside raises InputError.
    """

    def __init__(self, database: Database | str | Path, components: Sequence[str] | None = None,
                 phases: Sequence[str] | None = None, parameters: Sequence[str] = (), n_grid: int = 400,
                 t_range: tuple[float, float] = (298.15, 3000.0)) -> None:
        from pycalphad import Model

        self.database = load_database(database)
        dbf = self.database
        elements = sorted(str(e) for e in dbf.elements if str(e) not in ("VA", "/-"))
        if components is None:
            if len(elements) != 2:
                raise InputError(f"database has elements {elements}; give the two components")
            components = elements
        components = [c.upper() for c in components]
        if len(components) != 2 or any(c not in elements for c in components):
            raise InputError(f"components: need two of the database's elements {elements}; "
                             f"got {components}")
        self.components = tuple(components)
        comps = self._select(phases, parameters)
        self.t_range = (float(t_range[0]), float(t_range[1]))
        self.n_grid = int(n_grid)
        self._funcs, self._points, self._x, self._phase_of = [], [], [], []
        for i, name in enumerate(self.phases):
            mod = Model(dbf, comps, name, parameters=list(self.parameter_names))
            y_grid, x_b = self._internal_grid(mod)
            self._funcs.append(self._compile(mod))
            self._points.append(y_grid)
            self._x.append(x_b)
            self._phase_of.append(np.full(len(x_b), i))
        self.x_all = np.concatenate(self._x)
        self.phase_all = np.concatenate(self._phase_of)
        self._grids = self._points
        self.n_points = len(self.x_all)
        self.x_order = np.argsort(self.x_all, kind="stable")
        # largest spacing of each phase's own x points: a longer hull edge between two
        # points of one phase is a miscibility gap
        self._max_gap = np.array([np.max(np.diff(np.unique(x)), initial=0.0) * 1.5 + 1e-9
                                  for x in self._x])
        self._init_args = dict(components=components, phases=phases, parameters=parameters,
                               n_grid=n_grid, t_range=t_range)

    # ------------------------------------------------------------------ grids
    def _internal_grid(self, mod) -> tuple[np.ndarray, np.ndarray]:
        """Site-fraction points (n, n_y) and their x_B (n,) for one phase."""
        a, b = self.components
        per_sub = []
        n_sub_mixing = sum(1 for sub in mod.constituents if len(sub) > 1)
        n1 = self.n_grid if n_sub_mixing <= 1 else max(self.n_grid // 8, 20)
        for sub in mod.constituents:
            species = sorted(str(s.name) for s in sub)
            if len(species) == 1:
                per_sub.append([np.ones(1)])
            elif len(species) == 2:
                g = composition_grid(n1)
                per_sub.append([1 - g, g])
            else:
                raise InputError(f"phase {mod.phase_name}: sublattice with {species}; only up "
                                 "to two species per sublattice are supported")
        cols = []
        for combo in itertools.product(*[range(len(s[0])) for s in per_sub]):
            row = []
            for sub_vals, k in zip(per_sub, combo, strict=False):
                row.extend(v[k] for v in sub_vals)
            cols.append(row)
        y = np.array(cols, dtype=float)
        # moles of A and B per formula unit
        na = np.zeros(len(y))
        nb = np.zeros(len(y))
        col = 0
        for ratio, sub in zip(mod.site_ratios, mod.constituents, strict=False):
            for s in sorted(str(s.name) for s in sub):
                if s == a:
                    na += float(ratio) * y[:, col]
                elif s == b:
                    nb += float(ratio) * y[:, col]
                col += 1
        keep = (na + nb) > 0
        y, x_b = y[keep], nb[keep] / (na + nb)[keep]
        # the site-fraction order of the Model (sorted species per sublattice) is
        # what Lambdify expects; check it matches our column order
        names = [(sf.sublattice_index, str(sf.species.name)) for sf in mod.site_fractions]
        if names != sorted(names):
            raise RuntimeError(f"unexpected site-fraction order in {mod.phase_name}: {names}")
        return y, x_b

    # ------------------------------------------------------------------ energies
    def energies(self, temperatures: ArrayLike, params: ArrayLike | None = None) -> np.ndarray:
        """Molar Gibbs energy (J/mol of atoms) of every grid point, shape (n_T, n_points)."""
        return self._gibbs(np.atleast_1d(np.asarray(temperatures, dtype=float)),
                           self.params_array(params))

    # ------------------------------------------------------------------ equilibrium
    def hull(self, temperature: float, params: ArrayLike | None = None, g_row: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hull vertices at one temperature: (x (m,), g (m,), phase index (m,))."""
        g = self.energies([temperature], params)[0] if g_row is None else g_row
        idx = lower_hull_sorted(self.x_all, g, self.x_order)
        return self.x_all[idx], g[idx], self.phase_all[idx]

    def regions(self, temperature: float, params: ArrayLike | None = None, g_row: np.ndarray | None = None
                ) -> list[Region]:
        """Single- and two-phase regions across x at one temperature, left to right."""
        x, _, ph = self.hull(temperature, params, g_row)
        out: list[Region] = []
        start = 0
        gap = self._max_gap
        for k in range(1, len(x) + 1):
            if k == len(x) or ph[k] != ph[start] or x[k] - x[k - 1] > gap[ph[k]]:
                out.append(Region((self.phases[ph[start]],), float(x[start]), float(x[k - 1])))
                if k < len(x):
                    out.append(Region((self.phases[ph[k - 1]], self.phases[ph[k]]),
                                      float(x[k - 1]), float(x[k])))
                start = k
        return out

    def topology(self, temperature: float, params: ArrayLike | None = None, g_row: np.ndarray | None = None
                 ) -> tuple[str, ...]:
        """The sequence of stable phases across x (single-phase regions only)."""
        return tuple(r.phases[0] for r in self.regions(temperature, params, g_row)
                     if len(r.phases) == 1)

    def phase_set(self, temperature: float, x: np.ndarray, params: ArrayLike | None = None,
                  g_row: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
        """Stable phases and phase fractions at compositions ``x`` (n,) at one T.

        Returns
        -------
        labels : list of str, length n
            ``"A"`` or ``"A+B"`` (sorted names).
        fractions : ndarray, shape (n, n_phases)
            Mole fraction of each phase (lever rule).
        """
        regs = self.regions(temperature, params, g_row)
        x = np.atleast_1d(np.asarray(x, dtype=float))
        labels, frac = [], np.zeros((len(x), len(self.phases)))
        for i, xi in enumerate(x):
            for r in regs:
                if r.x_left - 1e-12 <= xi <= r.x_right + 1e-12:
                    if len(r.phases) == 1:
                        frac[i, self.phases.index(r.phases[0])] = 1.0
                    else:
                        w = (xi - r.x_left) / (r.x_right - r.x_left)
                        frac[i, self.phases.index(r.phases[0])] += 1 - w
                        frac[i, self.phases.index(r.phases[1])] += w
                    labels.append("+".join(sorted(set(r.phases))))
                    break
            else:
                raise InputError(f"composition x={xi:g} is outside [0, 1]")
        return labels, frac

    def chemical_potentials(self, temperature: float, x: float, params: ArrayLike | None = None,
                            g_row: np.ndarray | None = None) -> tuple[float, float]:
        """Equilibrium chemical potentials (mu_A, mu_B) in J/mol at (T, x) from the hull."""
        hx, hg, ph = self.hull(temperature, params, g_row)
        k = int(np.clip(np.searchsorted(hx, x), 1, len(hx) - 1))
        slope = (hg[k] - hg[k - 1]) / (hx[k] - hx[k - 1])
        g = hg[k - 1] + slope * (x - hx[k - 1])

        def same(i, j):
            return 0 <= i < len(hx) and 0 <= j < len(hx) and ph[i] == ph[j] and \
                abs(hx[j] - hx[i]) <= self._max_gap[ph[i]]

        if same(k - 1, k):  # inside a single-phase region: 3-point (quadratic) derivative
            third = k + 1 if same(k, k + 1) else (k - 2 if same(k - 2, k - 1) else None)
            if third is not None:
                idx = sorted([k - 1, k, third])
                c = np.polyfit(hx[idx] - x, hg[idx], 2)
                g, slope = c[2], c[1]
        return g - x * slope, g + (1 - x) * slope

    # ------------------------------------------------------------------ phase diagram
    def boundaries(self, temperatures: ArrayLike, params: ArrayLike | None = None) -> dict[str, np.ndarray]:
        """Two-phase region edges vs temperature.

        Returns a dict ``"A|B" -> array (n_T, 2)`` of (x_left, x_right) of the
        A+B region (A on the left), NaN where that region does not exist. If a
        pair occurs twice at one T, the first (lowest x) is kept.
        """
        t = np.atleast_1d(np.asarray(temperatures, dtype=float))
        g = self.energies(t, params)
        out: dict[str, np.ndarray] = {}
        for i in range(len(t)):
            seen = set()
            for r in self.regions(t[i], g_row=g[i]):
                if len(r.phases) == 2:
                    key = f"{r.phases[0]}|{r.phases[1]}"
                    if key in seen:
                        continue
                    seen.add(key)
                    arr = out.setdefault(key, np.full((len(t), 2), np.nan))
                    arr[i] = (r.x_left, r.x_right)
        return out

    def invariants(self, params: ArrayLike | None = None, t_min: float | None = None,
                   t_max: float | None = None, dt: float = 10.0, tol: float = 0.01,
                   include_melting: bool = False) -> list[Invariant]:
        """All invariant, congruent (and optionally pure-melting) points, by temperature.

        Scans T from ``t_min`` to ``t_max`` in steps of ``dt`` (K), and refines
        each change of the phase sequence by bisection to ``tol`` (K).
        """
        lo = self.t_range[0] if t_min is None else t_min
        hi = self.t_range[1] if t_max is None else t_max
        self.check_temperature([lo, hi])
        p = self.params_array(params)
        ts = np.linspace(lo, hi, max(int(np.ceil((hi - lo) / dt)) + 1, 2))
        g = self.energies(ts, p)
        topo = [self.topology(t, g_row=gi) for t, gi in zip(ts, g, strict=False)]
        found: list[Invariant] = []
        for k in range(len(ts) - 1):
            if topo[k] == topo[k + 1]:
                continue
            found.extend(self._refine(ts[k], ts[k + 1], topo[k], p, tol, include_melting))
        return sorted(found, key=lambda inv: inv.temperature_k)

    def _refine(self, t_lo, t_hi, topo_lo, p, tol, include_melting):
        """Bisection in [t_lo, t_hi] for the first change; recurse on the rest."""
        a, b = t_lo, t_hi
        topo_b = self.topology(b, p)
        while b - a > tol:
            m = 0.5 * (a + b)
            tm = self.topology(m, p)
            if tm == topo_lo:
                a = m
            else:
                b, topo_b = m, tm
        out = []
        inv = self._classify(a, b, p, include_melting)
        if inv is not None:
            out.append(inv)
        if self.topology(t_hi, p) != topo_b and t_hi - b > tol:  # a second change in the step
            out.extend(self._refine(b, t_hi, topo_b, p, tol, include_melting))
        return out

    def _classify(self, t_below, t_above, p, include_melting):
        """Name the change of the phase sequence between two close temperatures."""
        import difflib

        below = [r for r in self.regions(t_below, p) if len(r.phases) == 1]
        above = [r for r in self.regions(t_above, p) if len(r.phases) == 1]
        sb = [r.phases[0] for r in below]
        sa = [r.phases[0] for r in above]
        t_mid = 0.5 * (t_below + t_above)
        ops = [op for op in difflib.SequenceMatcher(None, sb, sa, autojunk=False).get_opcodes()
               if op[0] != "equal"]
        if len(ops) != 1 or ops[0][0] == "replace":
            return None
        tag, i1, i2, j1, j2 = ops[0]
        # the richer sequence (where the extra phases exist) and the changed stretch
        rich, lo, hi = (above, j1, j2) if tag == "insert" else (below, i1, i2)
        seq = [r.phases[0] for r in rich]
        left = lo - 1 if lo > 0 else None
        right = hi if hi < len(seq) else None
        changed = list(range(lo, hi))
        is_liq = [q.startswith("LIQ") for q in seq]

        def mean_x(k):
            return 0.5 * (rich[k].x_left + rich[k].x_right)

        # the two flanks may be one phase on both sides of its miscibility gap
        # (FCC+LIQUID+FCC, as Cu-Ag): separate regions of the sequence all the same
        if len(changed) == 1 and left is not None and right is not None:
            k = changed[0]
            phases = (seq[left], seq[k], seq[right])
            xs = (rich[left].x_right, mean_x(k), rich[right].x_left)
            if tag == "insert":  # the middle phase exists above only: it decomposes on cooling
                kind = "eutectic" if is_liq[k] else "eutectoid"
            else:
                kind = "peritectic" if (is_liq[left] or is_liq[right]) else "peritectoid"
            return Invariant(kind, phases, t_mid, tuple(float(v) for v in xs))
        # a solid flanked by liquid on both sides that vanishes: congruent melting
        window = [k for k in [left, *changed, right] if k is not None]
        solids = [k for k in changed if not is_liq[k]]
        liquids = [k for k in window if is_liq[k]]
        if tag == "delete" and len(solids) == 1 and liquids:
            k = solids[0]
            flanked = 0 < k < len(seq) - 1 and is_liq[k - 1] and is_liq[k + 1]
            if flanked:
                return Invariant("congruent", (seq[k], seq[liquids[0]]), t_mid,
                                 (float(mean_x(k)), float(mean_x(k))))
            if include_melting and (k == 0 or k == len(seq) - 1):
                return Invariant("melting", (seq[k], seq[liquids[0]]), t_mid,
                                 (float(mean_x(k)), float(mean_x(k))))
        return None
