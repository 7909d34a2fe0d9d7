"""Does a model's phase diagram show the data it was fitted to? Warnings that name the data set.

:func:`diagram_vs_data` compares a binary model (at given parameter values) with the
phase-equilibrium (ZPF) data of ESPEI datasets and reports

* a phase that the data say is stable (it is in a measured equilibrium) but that is
  never on the model's convex hull at the data's temperatures;
* measured equilibria near an invariant point the model reports (same phases,
  within ``window_k``) whose ZPF driving forces are large (above
  ``threshold`` x 1000 J/mol, ESPEI's ZPF standard deviation): the model puts the
  invariant where the data do not;
* measured compositions of a phase (at least ``min_points`` of a data set) where
  the model has no such phase, not even ``window_k`` higher or lower, attributed to the
  model's nearest invariant of that phase (e.g. a eutectic 60 K above the measured
  liquidus points);
* data sets whose driving forces are large over all their tie-lines (RMS above the
  threshold).

The driving forces are ESPEI's (:class:`~matterflow.calphad.espeilike.AllDataLikelihood`).
``calphad fit`` and ``calphad propagate`` print these as warnings; the function
also issues them as :class:`DataMismatchWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pycalphad import Database
    from tinydb import TinyDB

__all__ = ["DataMismatchWarning", "Mismatch", "diagram_vs_data", "warn_mismatches"]

SIGMA_ZPF = 1000.0  # J/mol, ESPEI's ZPF driving-force standard deviation


class DataMismatchWarning(UserWarning):
    """The model's phase diagram misses data it was fitted to."""


@dataclass(frozen=True)
class Mismatch:
    kind: str  # "phase-never-stable", "invariant-off-data", "phase-absent", "dataset-off"
    dataset: str  # file name (or reference) of the data set
    message: str
    value: float = float("nan")  # J/mol (driving force) where it applies


def _rename(datasets: TinyDB, aliases: dict[str, str], phases: Sequence[str]) -> TinyDB:
    """ZPF datasets only, dataset phase names mapped to the model's (``LAVES_C15 -> CU2MG``)."""
    import copy

    from espei.utils import PickleableTinyDB
    from tinydb.storages import MemoryStorage

    amap = {k.upper(): v.upper() for k, v in aliases.items() if k.upper() not in phases}
    out = PickleableTinyDB(storage=MemoryStorage)
    for ds in datasets.all():
        if ds["output"] != "ZPF":
            continue
        d = copy.deepcopy(dict(ds))
        d["phases"] = [amap.get(p.upper(), p.upper()) for p in d["phases"]]
        d["values"] = [[[amap.get(v[0].upper(), v[0].upper()), *v[1:]] for v in region]
                       for region in d["values"]]
        out.insert(d)
    return out


def diagram_vs_data(database: Database, datasets: TinyDB, parameters: Sequence[str] = (),
                    values: ArrayLike | None = None, aliases: dict[str, str] | None = None,
                    threshold: float = 3.0, window_k: float = 25.0,
                    t_scan: tuple[float, float] | None = None, n_grid: int = 120,
                    min_points: int = 3) -> list[Mismatch]:
    """Mismatches between a model's diagram and its ZPF data (see the module docstring).

    Parameters
    ----------
    database : pycalphad Database
    datasets : TinyDB
        ESPEI datasets; only the ZPF ones are used.
    parameters, values : symbols of the database and their values (default: the database's).
    aliases : dict, optional
        Dataset phase name -> model phase name, for names that are not model phases.
    threshold : float
        In units of ESPEI's ZPF standard deviation (1000 J/mol).
    window_k : float
        Measured equilibria within this distance of an invariant temperature are checked.
    t_scan : (float, float), optional
        Temperature range of the invariant scan (default: that of the data, +-50 K).
    min_points : int
        Measured compositions of a phase that the model lacks (even ``window_k`` higher
        or lower) needed before a data set is named for it.
    """
    from matterflow.calphad.espeilike import AllDataLikelihood

    if not any(ds["output"] == "ZPF" for ds in datasets.all()):
        return []
    zpf_db = _rename(datasets, aliases or {}, [str(p).upper() for p in database.phases])
    like = AllDataLikelihood(database, zpf_db, list(parameters), n_grid=n_grid)
    model = like.model
    p = model.params_array(values)
    out: list[Mismatch] = []
    # 1. phases the data say are stable, never on the hull at the data's temperatures
    g = like._energies(p)
    on_hull = np.zeros(len(model.phases), dtype=bool)
    for ti in range(len(like.temperatures)):
        on_hull[np.unique(like._hull(g[ti])[2])] = True
    by_phase: dict[str, set[str]] = {}
    for _t, _w, verts, _ref, src in _rows(like):
        for vx in verts:
            by_phase.setdefault(model.phases[vx.phase], set()).add(src)
    for phase, srcs in sorted(by_phase.items()):
        if not on_hull[model.phases.index(phase)]:
            names = ", ".join(sorted(srcs))
            out.append(Mismatch("phase-never-stable", names,
                                f"phase {phase} is in measured equilibria of {names} but is "
                                f"never stable in the model between "
                                f"{like.temperatures.min():.0f} and "
                                f"{like.temperatures.max():.0f} K"))
    # 2. driving forces per tie-line
    like._sample_cache = {}
    df = like._zpf_forces(p, g, lambda ti: like._hull(g[ti]))[0]
    per_row, k = [], 0
    for t, _w, verts, _ref, src in _rows(like):
        per_row.append((t, {model.phases[v.phase] for v in verts}, src,
                        float(np.max(np.abs(df[k:k + len(verts)])))))
        k += len(verts)
    limit = threshold * SIGMA_ZPF
    lo, hi = t_scan or (max(float(like.temperatures.min()) - 50.0, model.t_range[0]),
                        min(float(like.temperatures.max()) + 50.0, model.t_range[1]))
    for inv in model.invariants(p, t_min=lo, t_max=hi, dt=10.0, tol=0.05):
        near = [r for r in per_row if abs(r[0] - inv.temperature_k) <= window_k
                and r[1] <= set(inv.phases)]
        worst: dict[str, float] = {}
        for _t, _ph, src, f in near:
            worst[src] = max(worst.get(src, 0.0), f)
        for src, f in sorted(worst.items()):
            if f > limit:
                out.append(Mismatch("invariant-off-data", src,
                                    f"{inv.label} at {inv.temperature_k:.1f} K: measured "
                                    f"equilibria of {src} within {window_k:g} K have driving "
                                    f"forces up to {f:.0f} J/mol (> {threshold:g} x "
                                    f"{SIGMA_ZPF:.0f}): the model misses them", f))
    # 3. measured phases where the model has none, even within +-window_k: attributed to
    #    the model's invariant of that phase nearest in temperature
    invs = model.invariants(p, t_min=lo, t_max=hi, dt=10.0, tol=0.05)
    shifted = np.unique(np.clip(np.concatenate([like.temperatures - window_k,
                                                like.temperatures + window_k]),
                                *model.t_range))
    g_shift = model.energies(shifted, p)
    t_index = {float(t): i for i, t in enumerate(shifted)}

    def has_phase(t, x, name):
        if float(t) in like._t_index:
            labels, _ = model.phase_set(t, [x], g_row=g[like._t_index[float(t)]])
        else:
            labels, _ = model.phase_set(t, [x], g_row=g_shift[t_index[float(t)]])
        return name in labels[0].split("+")

    absent: dict[tuple[str, str], list[float]] = {}
    for t, _w, verts, _ref, src in _rows(like):
        for vx in verts:
            if not vx.known:
                continue
            name = model.phases[vx.phase]
            ts = [float(np.clip(t + d, *model.t_range)) for d in (-window_k, 0.0, window_k)]
            if not any(has_phase(tt, vx.x, name) for tt in ts):
                absent.setdefault((src, name), []).append(t)
    for (src, name), temps in sorted(absent.items()):
        if len(temps) < min_points:
            continue
        near = [i for i in invs if name in i.phases]
        where = ""
        if near:
            inv = min(near, key=lambda i: abs(i.temperature_k - float(np.median(temps))))
            where = f"{inv.label} at {inv.temperature_k:.1f} K: "
        out.append(Mismatch("phase-absent", src,
                            f"{where}{len(temps)} measured {name} compositions of {src} "
                            f"({min(temps):.0f}-{max(temps):.0f} K) lie where the model has no "
                            f"{name}, not even {window_k:g} K higher or lower", len(temps)))
    # 4. data sets off as a whole
    for src in sorted({r[2] for r in per_row}):
        f = np.array([r[3] for r in per_row if r[2] == src])
        rms = float(np.sqrt(np.mean(f * f)))
        if rms > limit:
            out.append(Mismatch("dataset-off", src,
                                f"{src}: RMS ZPF driving force {rms:.0f} J/mol over {len(f)} "
                                f"tie-lines (> {threshold:g} x {SIGMA_ZPF:.0f}); worst "
                                f"{f.max():.0f} J/mol", rms))
    return out


def _rows(like: Any) -> Any:
    for row, src in zip(like.zpf, like.zpf_sources, strict=True):
        yield (*row, src)


def warn_mismatches(mismatches: Sequence[Mismatch]) -> None:
    for m in mismatches:
        warnings.warn(m.message, DataMismatchWarning, stacklevel=2)


def check_files(tdb: str | Path | Database, datasets: str | Path | TinyDB,
                parameters: Sequence[str] = (), values: ArrayLike | None = None,
                aliases: dict[str, str] | None = None, **kw: Any) -> list[Mismatch]:
    """:func:`diagram_vs_data` from a TDB (path, text or Database) and a datasets folder."""
    from pycalphad import Database

    from matterflow.calphad.datasets import load_datasets
    from matterflow.calphad.engine import load_database

    if isinstance(tdb, str) and "\n" in tdb:
        try:
            dbf = Database(tdb)
        except Exception as exc:
            raise InputError(f"model TDB text does not parse: {exc}") from None
    else:
        dbf = load_database(tdb)
    ds = datasets if not isinstance(datasets, (str, Path)) else load_datasets(Path(datasets))
    return diagram_vs_data(dbf, ds, parameters, values, aliases, **kw)
