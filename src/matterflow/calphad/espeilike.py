"""ESPEI's likelihood, vectorised: every data type ESPEI fits, with its error model.

:class:`AllDataLikelihood` evaluates the same function as ESPEI 0.9's
``EmceeOptimizer.predict`` (the sum of its residual functions' log-likelihoods,
constants included) on a binary, for the same parameter vector:

* **ZPF** (phase equilibria, ``espei.error_functions.zpf_error``): for each
  tie-line the target hyperplane is the mean of the *equilibrium* chemical
  potentials (all phases) at the compositions of the vertices with a known
  composition (NaN where the equilibrium there is a single phase without internal
  degrees of freedom); each vertex's driving force is ``mu . X - G`` with G the
  phase's energy minimised at fixed composition (known X) or the largest
  ``mu . X - G`` over the phase's constitutions (unknown X).
  Normal(0, 1000 J/mol / weight), normalisation included.
* **Activity** (``ACR_*``): ``mu_i(T, X) - (R T ln a + mu_i^ref)`` with the
  reference equilibrium of the dataset's reference phases; Normal(0, 500 J/mol / weight).
* **Non-equilibrium thermochemical** (``HM/SM/CPM`` ``_FORM`` and ``_MIX`` at fixed
  sublattice configurations): the same pycalphad ``Model`` expressions ESPEI builds
  (its ``get_thermochemical_data``, reference states, excluded contributions),
  compiled once with the parameters symbolic; Normal(0, 500 J/mol, 0.2 J/(mol K),
  0.2 J/(mol K) / weight).

Equilibria come from :class:`~matterflow.calphad.engine.BinaryModel` (all
temperatures of the data in one compiled call, lower convex hull per
temperature) instead of pycalphad's minimiser; the thermochemical terms are
exact. Agreement with ESPEI is tested on Cu-Mg (``tests/calphad/test_espeilike.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from matterflow.calphad.engine import BinaryModel, lower_hull_sorted
from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pycalphad import Database
    from tinydb import TinyDB

__all__ = ["AllDataLikelihood", "PYCALPHAD_R"]

PYCALPHAD_R = 8.3145  # J/(mol K): pycalphad's ``variables.R``, which ESPEI's activity error uses
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _norm_logpdf(r: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return -0.5 * (r / scale) ** 2 - np.log(scale) - _LOG_SQRT_2PI


class _Vertex:
    __slots__ = ("phase", "x", "known", "stoich")

    def __init__(self, phase: int, x: float, stoich: bool) -> None:
        self.phase, self.x, self.known, self.stoich = phase, x, np.isfinite(x), stoich


class AllDataLikelihood:
    """ESPEI's log-likelihood of all data types of a binary, evaluated on the hull engine.

    Parameters
    ----------
    database : pycalphad Database
        The model; the sampled ``parameters`` are its symbols (ESPEI's ``VV....``).
    datasets : TinyDB
        ESPEI datasets (:func:`matterflow.calphad.datasets.load_datasets`).
    parameters : sequence of str
        Symbols to fit, in the order of the parameter vectors passed to ``__call__``
        (ESPEI sorts them; here any order is accepted).
    n_grid : int
        Site-fraction grid of the equilibrium engine (see :class:`BinaryModel`).
    n_line : int
        Points of the scan at fixed composition of a phase with two mixing sublattices.
    data_weights : dict, optional
        ESPEI's per-type weights (``{"ZPF": 1, "ACR": 1, "HM": 1, "SM": 1, "CPM": 1}``).
    """

    def __init__(self, database: Database, datasets: TinyDB, parameters: Sequence[str],
                 n_grid: int = 150, n_line: int = 121,
                 data_weights: dict[str, float] | None = None) -> None:
        import symengine

        self._init = (database, datasets, list(parameters), n_grid, n_line, data_weights)
        self._lin: dict[Any, Any] = {}
        self.parameters = [str(p) for p in parameters]
        dbf = copy.deepcopy(database)
        for name in self.parameters:  # as ESPEI's setup_context
            if name not in dbf.symbols:
                raise InputError(f"parameter {name!r} is not a symbol of the database")
            if isinstance(dbf.symbols[name], symengine.Piecewise):
                dbf.symbols[name] = dbf.symbols[name].args[0]
        self.database = dbf
        self.weights = {"ZPF": 1.0, "ACR": 1.0, **(data_weights or {})}
        self.model = BinaryModel(dbf, parameters=self.parameters, n_grid=n_grid)
        self.n_line = int(n_line)
        self._phase_info()
        self._setup_zpf(datasets)
        self._setup_activity(datasets)
        self._setup_thermochemical(datasets)
        temps = [r[0] for r in self.zpf] + [t for a in self.activities for t in a["temps"]] + \
            [a["ref_t"] for a in self.activities]
        if temps:
            self.model.check_temperature(temps)
        self.temperatures = np.unique(np.asarray(temps, dtype=float))
        self._t_index = {float(t): i for i, t in enumerate(self.temperatures)}
        self.n_evaluations = 0

    # ------------------------------------------------------------------ setup
    def _phase_info(self) -> None:
        """Per phase: its grid points, whether it is stoichiometric, and how to put it at x."""
        from pycalphad import Model

        m = self.model
        comps = [*m.components, "VA"]
        b = m.components[1]
        self._stoich, self._line = [], []
        self._idx = []
        for k, name in enumerate(m.phases):
            idx = np.where(m.phase_all == k)[0]
            self._idx.append(idx)
            mod = Model(self.database, comps, name)
            mixing = [i for i, sub in enumerate(mod.constituents) if len(sub) > 1]
            self._stoich.append(not mixing)
            # moles of B and of atoms per formula unit, linear in the site fractions:
            # n_B = b0 + sum_s r_s y_s(B), n = a0 + sum_s r_s (y_s(A) + y_s(B))
            self._line.append((mod, mixing))
        self._samples = []
        self._sample_cache: dict = {}
        from pycalphad import calculate

        for name in m.phases:  # the points ESPEI's shadow ``calculate_`` samples (pdens=50)
            res = calculate(self.database, comps, name, T=1000.0, P=101325.0, N=1.0, pdens=50,
                            output="GM")
            y = np.asarray(res.Y).reshape(-1, res.Y.shape[-1])
            xb = np.asarray(res.X.sel(component=b)).reshape(-1)
            ok = np.all(np.isfinite(y), axis=1)
            self._samples.append((y[ok], xb[ok]))

    def _setup_zpf(self, datasets) -> None:
        m = self.model
        a, b = m.components
        self.zpf: list[tuple[float, float, list[_Vertex], str]] = []
        self.zpf_sources: list[str] = []  # file name (or reference) of each tie-line's data set
        for ds in datasets.all():
            if ds["output"] != "ZPF":
                continue
            if not set(ds["components"]) <= {a, b, "VA"}:
                continue
            if not set(ds["phases"]) & set(m.phases):
                continue
            temps = np.atleast_1d(np.asarray(ds["conditions"]["T"], dtype=float))
            weight = float(ds.get("weight", 1.0))
            for i, region in enumerate(ds["values"]):
                t = float(temps[i] if len(temps) > 1 else temps[0])
                verts = []
                for vtx in region:
                    phase, vcomps, vals = vtx[0], vtx[1], vtx[2]
                    if len(vtx) == 4 and vtx[3] == "disordered":
                        raise InputError(f"{ds.get('_file', '?')}: 'disordered' ZPF vertices "
                                         "are not supported by the fast likelihood")
                    if phase.upper() == "__HYPERPLANE__":
                        raise InputError(f"{ds.get('_file', '?')}: __HYPERPLANE__ vertices are "
                                         "not supported by the fast likelihood")
                    if phase not in m.phases:
                        raise InputError(f"{ds.get('_file', '?')}: phase {phase!r} is not in "
                                         f"the model ({', '.join(m.phases)})")
                    val = vals[0] if vals else None
                    if val is None:
                        x = np.nan
                    elif vcomps[0].upper() == b:
                        x = float(val)
                    else:
                        x = 1.0 - float(val)
                    k = m.phases.index(phase)
                    verts.append(_Vertex(k, x, self._stoich[k]))
                self.zpf.append((t, weight, verts, str(ds.get("reference", ""))))
                src = ds.get("_file")
                self.zpf_sources.append(Path(src).name if src else str(ds.get("reference", "")))

    def _setup_activity(self, datasets) -> None:
        m = self.model
        a, b = m.components
        self.activities: list[dict[str, Any]] = []
        for ds in datasets.all():
            if "ACR" not in ds["output"] or not set(ds["components"]) <= {a, b, "VA"}:
                continue
            species = ds["output"].split("_")[1].upper()
            ref = ds["reference_state"]
            cond = ds["conditions"]
            vals = np.asarray(ds["values"], dtype=float)
            temps = np.atleast_1d(np.asarray(cond["T"], dtype=float))
            key = [k for k in cond if k.startswith("X_")]
            if len(key) != 1:
                raise InputError(f"{ds.get('_file', '?')}: activity data need one X_ condition")
            xs = np.atleast_1d(np.asarray(cond[key[0]], dtype=float))
            if key[0][2:].upper() == a:
                xs = 1.0 - xs
            # ESPEI's ravel_conditions: values (P, T, X) -> flat, T repeated over X
            tt, xx = np.meshgrid(temps, xs, indexing="ij")
            rkeys = [k for k in ref["conditions"] if k.startswith("X_")]
            x_ref = float(ref["conditions"][rkeys[0]]) if rkeys else 1.0
            if rkeys and rkeys[0][2:].upper() == a:
                x_ref = 1.0 - x_ref
            ref_phases = [p.upper() for p in ref["phases"]]
            for p in ref_phases:
                if p not in m.phases:
                    raise InputError(f"{ds.get('_file', '?')}: reference phase {p!r} is not "
                                     "in the model")
            data_phases = [p for p in m.phases]
            self.activities.append({
                "species": species, "temps": tt.ravel(), "x": xx.ravel(),
                "values": vals.ravel()[: tt.size], "ref_t": float(ref["conditions"]["T"]),
                "ref_x": x_ref, "ref_phases": [m.phases.index(p) for p in ref_phases],
                "phases": [m.phases.index(p) for p in data_phases],
                "scale": 500.0 / self.weights["ACR"] / float(ds.get("weight", 1.0)),
                "reference": str(ds.get("reference", ""))})

    def _setup_thermochemical(self, datasets) -> None:
        """ESPEI's own selection of fixed-configuration data; its Model expressions compiled."""
        import symengine as se
        from espei.error_functions.non_equilibrium_thermochemical_error import (
            get_thermochemical_data,
        )
        from pycalphad import variables as v
        from pycalphad.core.utils import filter_phases, unpack_species

        dbf = self.database
        comps = sorted([*self.model.components, "VA"])
        phases = sorted(filter_phases(dbf, unpack_species(dbf, comps), dbf.phases.keys()))
        weights = {k: self.weights[k] for k in ("HM", "SM", "CPM") if k in self.weights}
        data = get_thermochemical_data(dbf, comps, phases, datasets, {}, weights,
                                       symbols_to_fit=sorted(self.parameters))
        psyms = [se.Symbol(p) for p in self.parameters]
        self.thermo: list[dict[str, Any]] = []
        for d in data:
            cd = d["calculate_dict"]
            if len(cd["values"]) == 0:
                continue
            mod = d["model"][d["phase_name"]]
            expr = getattr(mod, d["output"])
            args = [v.P, v.T, *mod.site_fractions, *psyms]
            func = se.Lambdify(args, [expr], backend="llvm")
            pts = np.asarray(cd["points"], dtype=float)
            if pts.shape[1] != len(mod.site_fractions):
                raise RuntimeError(f"{d['phase_name']} {d['prop']}: {pts.shape[1]} site "
                                   f"fractions in the data, {len(mod.site_fractions)} in the model")
            base = np.column_stack([np.asarray(cd["P"], float), np.asarray(cd["T"], float), pts])
            self.thermo.append({"phase": d["phase_name"], "prop": d["prop"], "func": func,
                                "base": base, "values": np.asarray(cd["values"], float),
                                "scale": np.asarray(d["weights"], float),
                                "references": list(cd["references"])})

    # ------------------------------------------------------------------ energies
    def _linear(self, key, func, rows: Any, p: np.ndarray) -> np.ndarray:
        """``func`` at fixed (T, site-fraction) ``rows`` (an array, or a callable giving it)
        and parameters ``p``.

        ESPEI's parameters enter the Gibbs energy linearly (``VV0001 + VV0002*T``):
        the first call of a ``key`` splits the energy into ``E0 + F @ p`` (n_params + 1
        compiled calls), checked against a direct call (1e-4 J/mol); later calls are
        one matrix-vector product. A nonlinear parameter keeps the direct call.
        """
        ent = self._lin.get(key)
        if ent is not None and ent[0] == "linear":
            return ent[1] + ent[2] @ p
        if ent is not None:
            rows = ent[1]
        else:
            rows = rows() if callable(rows) else rows
        n = len(rows)

        def direct(q):
            return np.asarray(func(np.column_stack([rows, np.tile(q, (n, 1))]))).reshape(n)

        if ent is not None:
            return direct(p)
        npar = len(p)
        e0 = direct(np.zeros(npar))
        lin = np.empty((n, npar))
        for i in range(npar):
            lin[:, i] = (direct(1000.0 * np.eye(npar)[i]) - e0) / 1000.0
        ref = direct(p)
        if np.allclose(e0 + lin @ p, ref, rtol=0.0, atol=1e-4):
            self._lin[key] = ("linear", e0, lin)
        else:
            self._lin[key] = ("direct", rows)
        return ref

    def _energies(self, p: np.ndarray) -> np.ndarray:
        """Molar G of every grid point at every data temperature, (n_T, n_points)."""
        m = self.model
        t = self.temperatures
        out = np.empty((len(t), m.n_points))
        col = 0
        for k, (f, y) in enumerate(zip(m._funcs, m._points, strict=True)):
            n = len(y)
            def rows(y=y, n=n):
                return np.column_stack([np.repeat(t, n), np.tile(y, (len(t), 1))])

            out[:, col:col + n] = self._linear(("E", k), f, rows, p).reshape(len(t), n)
            col += n
        if not np.all(np.isfinite(out)):
            from matterflow.core.errors import ComputeError
            raise ComputeError("Gibbs energy is not finite at some grid points "
                               f"(parameters {p.tolist()})")
        return out

    # ------------------------------------------------------------------ pieces
    def _hull(self, g_row):
        m = self.model
        idx = lower_hull_sorted(m.x_all, g_row, m.x_order)
        return m.x_all[idx], g_row[idx], m.phase_all[idx]

    def _mu(self, hull, x: float) -> tuple[np.ndarray, bool]:
        """Equilibrium (mu_A, mu_B) at x from the hull; flag: single stoichiometric phase."""
        hx, hg, ph = hull
        gap = self.model._max_gap
        k = int(np.clip(np.searchsorted(hx, x), 1, len(hx) - 1))
        for j in (k - 1, k):
            if abs(hx[j] - x) < 1e-9 and self._stoich[ph[j]]:
                return np.array([np.nan, np.nan]), True
        slope = (hg[k] - hg[k - 1]) / (hx[k] - hx[k - 1])
        g = hg[k - 1] + slope * (x - hx[k - 1])

        def same(i, j):
            return 0 <= i < len(hx) and 0 <= j < len(hx) and ph[i] == ph[j] and \
                abs(hx[j] - hx[i]) <= gap[ph[i]]

        if same(k - 1, k):  # single-phase region: local quadratic derivative
            third = k + 1 if same(k, k + 1) else (k - 2 if same(k - 2, k - 1) else None)
            if third is not None:
                idx = sorted([k - 1, k, third])
                c = np.polyfit(hx[idx] - x, hg[idx], 2)
                g, slope = c[2], c[1]
        return np.array([g - x * slope, g + (1 - x) * slope]), False

    def _constrained_energy(self, phase: int, temps: np.ndarray, xs: np.ndarray,
                            p: np.ndarray) -> np.ndarray:
        """Minimum molar G of ``phase`` at fixed composition x (per (T, x) pair)."""
        m = self.model
        mod, mixing = self._line[phase]
        func = m._funcs[phase]
        a, b = m.components
        # columns of the site fractions: (sublattice, species) sorted, as the Model's
        cols = [(sf.sublattice_index, str(sf.species.name)) for sf in mod.site_fractions]
        ratios = [float(r) for r in mod.site_ratios]
        n = len(temps)
        if not mixing:
            y = m._points[phase][0]
            rows = np.column_stack([temps, np.tile(y, (n, 1))])
            return self._linear(("C", phase, rows.tobytes()), func, rows, p)

        def y_for(s_fracs):  # s_fracs: dict sublattice -> fraction of B on it, arrays (n, L)
            shape = next(iter(s_fracs.values())).shape
            out = np.zeros((*shape, len(cols)))
            for c, (s, sp) in enumerate(cols):
                species = [q for (ss, q) in cols if ss == s]
                if len(species) == 1:
                    out[..., c] = 1.0
                elif sp == b:
                    out[..., c] = s_fracs[s]
                else:
                    out[..., c] = 1.0 - s_fracs[s]
            return out

        # atoms per formula unit of the fixed (non-mixing) sublattices
        fixed_b = sum(ratios[s] for s in range(len(ratios)) if s not in mixing
                      and any(q == b for (ss, q) in cols if ss == s))
        fixed_n = sum(ratios[s] for s in range(len(ratios)) if s not in mixing
                      and any(q in (a, b) for (ss, q) in cols if ss == s))
        if any(q not in (a, b) for (s, q) in cols if s in mixing):
            raise InputError(f"phase {m.phases[phase]}: vacancies on a mixing sublattice are "
                             "not supported by the fast likelihood")
        mix_n = sum(ratios[s] for s in mixing)
        total = fixed_n + mix_n
        if len(mixing) == 1:
            s0 = mixing[0]
            yb = np.clip((xs * total - fixed_b) / ratios[s0], 0.0, 1.0)
            y = y_for({s0: yb[:, None]})[:, 0, :]
            rows = np.column_stack([temps, y])
            return self._linear(("C", phase, rows.tobytes()), func, rows, p)
        if len(mixing) != 2:
            raise InputError(f"phase {m.phases[phase]}: more than two mixing sublattices")
        s1, s2 = mixing
        r1, r2 = ratios[s1], ratios[s2]
        need = xs * total - fixed_b  # moles of B on the two mixing sublattices
        lo = np.clip((need - r2) / r1, 0.0, 1.0)
        hi = np.clip(need / r1, 0.0, 1.0)
        best = np.full(n, np.inf)
        t_line = np.linspace(0.0, 1.0, self.n_line)
        for _ in range(3):  # scan the feasible segment, then zoom in twice around the minimum
            y1 = lo[:, None] + (hi - lo)[:, None] * t_line[None, :]
            y2 = np.clip((need[:, None] - r1 * y1) / r2, 0.0, 1.0)
            y = y_for({s1: y1, s2: y2})
            L = self.n_line
            args = np.concatenate([np.repeat(temps, L)[:, None], y.reshape(n * L, -1),
                                   np.tile(p, (n * L, 1))], axis=1)
            g = np.asarray(func(args)).reshape(n, L)
            j = np.argmin(g, axis=1)
            best = np.minimum(best, g[np.arange(n), j])
            width = (hi - lo) / (L - 1)
            centre = lo + width * j
            lo, hi = np.maximum(lo, centre - 2 * width), np.minimum(hi, centre + 2 * width)
            lo = np.clip(lo, 0.0, 1.0)
            hi = np.clip(hi, 0.0, 1.0)
        return best

    # ------------------------------------------------------------------ evaluation
    def parts(self, params: ArrayLike) -> dict[str, float]:
        """Log-likelihood of each data type (ESPEI's residual functions), constants included."""
        p = self.model.params_array(params)
        self._sample_cache = {}
        out = {"ZPF": 0.0, "ACR": 0.0, "THERMO": 0.0}
        if len(self.temperatures):
            g = self._energies(p)
            hulls: dict[int, Any] = {}

            def hull(ti):
                if ti not in hulls:
                    hulls[ti] = self._hull(g[ti])
                return hulls[ti]

            out["ZPF"] = self._zpf(p, g, hull)
            out["ACR"] = self._activity(p, g, hull)
        out["THERMO"] = self._thermo(p)
        return out

    def zpf_driving_forces(self, params: ArrayLike) -> np.ndarray:
        """Driving forces (J/mol) of every ZPF vertex, in ESPEI's order."""
        p = self.model.params_array(params)
        self._sample_cache = {}
        g = self._energies(p)
        return self._zpf_forces(p, g, lambda ti: self._hull(g[ti]))[0]

    def _zpf_forces(self, p, g, hull):
        m = self.model
        # 1. equilibrium chemical potentials at every known vertex composition: the hull
        #    tangent in a two-phase region; the phase's own exact derivative where one
        #    phase is stable (also where the coarse grid of a phase with two mixing
        #    sublattices put x in a two-phase region, but the phase's exact energy lies
        #    below the hull and its tangent supports all other phases)
        regions: dict[tuple[int, int], Any] = {}
        requests: dict[int, dict[tuple[float, float], None]] = {}
        for r, (t, _w, verts, _ref) in enumerate(self.zpf):
            h = hull(self._t_index[t])
            for j, vx in enumerate(verts):
                if not vx.known:
                    continue
                region = self._region(h, vx.x)
                regions[(r, j)] = region
                if not vx.stoich:
                    requests.setdefault(vx.phase, {})[(t, vx.x)] = None
                if isinstance(region, int):
                    requests.setdefault(region, {})[(t, vx.x)] = None
        exact = {k: self._exact_mu(k, list(rows), p) for k, rows in requests.items()}
        mus: dict[tuple[int, int], np.ndarray] = {}
        for (r, j), region in regions.items():
            t = self.zpf[r][0]
            vx = self.zpf[r][2][j]
            if region is None:
                mus[(r, j)] = np.array([np.nan, np.nan])
            elif isinstance(region, int):
                mus[(r, j)] = exact[region][(t, vx.x)][0]
            else:
                mu, line_g = region
                own = exact.get(vx.phase, {}).get((t, vx.x))
                if own is not None and own[1] < line_g - 1e-6:
                    ti = self._t_index[t]
                    plane = own[0][0] * (1 - m.x_all) + own[0][1] * m.x_all
                    if np.max(plane - g[ti]) <= 1e-6:
                        mu = own[0]
                mus[(r, j)] = mu
        # 2. target hyperplanes, driving forces
        forces, weights = [], []
        pending: dict[int, list[tuple[int, float, float, np.ndarray]]] = {}
        for r, (t, weight, verts, _ref) in enumerate(self.zpf):
            ti = self._t_index[t]
            planes = [mus[(r, j)] for j, vx in enumerate(verts) if vx.known]
            good = [q for q in planes if not np.isnan(q[0])]  # ESPEI's nanmean
            plane = sum(good) / len(good) if good else np.array([np.nan, np.nan])
            if np.any(np.isnan(plane)):  # as ESPEI: no hyperplane, driving forces 0
                forces.extend([0.0] * len(verts))
                weights.extend([weight] * len(verts))
                continue
            for vx in verts:
                if not vx.known:  # ESPEI: largest driving force over pycalphad's sample points
                    xs, gs = self._sampled(vx.phase, ti, t, g, p)
                    forces.append(float(np.max(plane[0] * (1 - xs) + plane[1] * xs - gs)))
                else:
                    pending.setdefault(vx.phase, []).append((len(forces), t, vx.x, plane))
                    forces.append(np.nan)
                weights.append(weight)
        forces_arr = np.asarray(forces, dtype=float)
        for k, rows in pending.items():
            temps = np.array([q[1] for q in rows])
            xs = np.array([q[2] for q in rows])
            gk = self._constrained_energy(k, temps, xs, p)
            for (slot, _t, x, plane), gi in zip(rows, gk, strict=True):
                forces_arr[slot] = plane[0] * (1 - x) + plane[1] * x - gi
        return forces_arr, np.asarray(weights, dtype=float)

    def _region(self, hull, x: float):
        """Where x lies on the hull: None (a single stoichiometric phase: ESPEI's NaN),
        the phase index of a single-phase region, or ((mu_A, mu_B), G on the tie-line)
        of a two-phase one."""
        hx, hg, ph = hull
        gap = self.model._max_gap
        k = int(np.clip(np.searchsorted(hx, x), 1, len(hx) - 1))
        for j in (k - 1, k):
            if abs(hx[j] - x) < 1e-9 and self._stoich[ph[j]]:
                return None
        if ph[k - 1] == ph[k] and abs(hx[k] - hx[k - 1]) <= gap[ph[k]] \
                and not self._stoich[ph[k]]:
            return int(ph[k])
        slope = (hg[k] - hg[k - 1]) / (hx[k] - hx[k - 1])
        g = hg[k - 1] + slope * (x - hx[k - 1])
        return np.array([g - x * slope, g + (1 - x) * slope]), float(g)

    def _exact_mu(self, k, rows, p):
        """Chemical potentials from the phase's energy at fixed x and its derivative."""
        temps = np.array([q[0] for q in rows])
        xs = np.array([q[1] for q in rows])
        h = np.minimum(1e-5, 0.5 * np.minimum(xs, 1 - xs))
        g = self._constrained_energy(k, np.concatenate([temps] * 3),
                                     np.concatenate([xs - h, xs, xs + h]), p).reshape(3, -1)
        slope = (g[2] - g[0]) / (2 * h)
        mu_a = g[1] - xs * slope
        mu_b = g[1] + (1 - xs) * slope
        return {q: (np.array([a, b]), float(gx))
                for q, a, b, gx in zip(rows, mu_a, mu_b, g[1], strict=True)}

    def _sampled(self, k, ti, t, g, p):
        """(x, G) of phase k at pycalphad's sample points (``calculate``, pdens=50)."""
        key = (k, ti)
        cache = self._sample_cache
        if key not in cache:
            y, xs = self._samples[k]

            def rows():
                return np.column_stack([np.full(len(y), t), y])

            cache[key] = (xs, self._linear(("S", k, ti), self.model._funcs[k], rows, p))
        return cache[key]

    def _zpf(self, p, g, hull) -> float:
        if not self.zpf:
            return 0.0
        df, w = self._zpf_forces(p, g, hull)
        if not np.all(np.isfinite(df)):
            return -np.inf
        return float(np.sum(_norm_logpdf(df, 1000.0 / self.weights["ZPF"] / w)))

    def activity_residuals(self, params: ArrayLike) -> np.ndarray:
        """Computed minus target chemical potentials (J/mol) of every activity point."""
        p = self.model.params_array(params)
        g = self._energies(p)
        return self._activity_residuals(g, lambda ti: self._hull(g[ti]))[0]

    def _activity_residuals(self, g, hull):
        m = self.model
        res, scales = [], []
        for a in self.activities:
            comp = 1 if a["species"] == m.components[1] else 0
            ti_ref = self._t_index[a["ref_t"]]
            keep = np.isin(m.phase_all, a["ref_phases"])
            idx = np.where(keep)[0]
            sub = idx[np.argsort(m.x_all[idx], kind="stable")]
            hidx = sub[_hull_of(m.x_all[sub], g[ti_ref, sub])]
            ref_hull = (m.x_all[hidx], g[ti_ref, hidx], m.phase_all[hidx])
            mu_ref = self._mu(ref_hull, a["ref_x"])[0][comp]
            for t, x, val in zip(a["temps"], a["x"], a["values"], strict=True):
                mu = self._mu(hull(self._t_index[float(t)]), float(x))[0][comp]
                with np.errstate(divide="ignore"):
                    target = PYCALPHAD_R * t * np.log(val) + mu_ref
                res.append(mu - target)
                scales.append(a["scale"])
        return np.asarray(res, dtype=float), np.asarray(scales, dtype=float)

    def _activity(self, p, g, hull) -> float:
        if not self.activities:
            return 0.0
        r, s = self._activity_residuals(g, hull)
        ll = float(np.sum(_norm_logpdf(r, s)))
        return -np.inf if np.isnan(ll) else ll

    def thermochemical_differences(self, params: ArrayLike) -> list[np.ndarray]:
        """Computed minus measured values of each thermochemical data group (ESPEI's order)."""
        p = self.model.params_array(params)
        return [self._thermo_diff(d, p) for d in self.thermo]

    def _thermo_diff(self, d, p):
        n = len(d["values"])
        args = np.concatenate([d["base"], np.tile(p, (n, 1))], axis=1)
        return np.asarray(d["func"](args)).reshape(n) - d["values"]

    def _thermo(self, p) -> float:
        total = 0.0
        for d in self.thermo:
            total += float(np.sum(_norm_logpdf(self._thermo_diff(d, p), d["scale"])))
        return total

    def __call__(self, params: ArrayLike) -> float:
        """ESPEI's log-likelihood (sum of all data types), J/mol-scaled Normal densities."""
        self.n_evaluations += 1
        parts = self.parts(params)
        total = float(sum(parts.values()))
        return total if np.isfinite(total) else -np.inf

    def n_residuals(self) -> int:
        """Data points in the likelihood (ZPF vertices, activities, thermochemical values)."""
        return int(sum(len(v) for _t, _w, v, _r in self.zpf)
                   + sum(len(a["values"]) for a in self.activities)
                   + sum(len(d["values"]) for d in self.thermo))

    def __getstate__(self) -> dict[str, Any]:  # compiled functions do not pickle: rebuild
        return {"init": self._init}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["init"])


def _hull_of(x_sorted: np.ndarray, g: np.ndarray) -> np.ndarray:
    return lower_hull_sorted(x_sorted, g, np.arange(len(x_sorted)))
