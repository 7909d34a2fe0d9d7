"""Posterior draws -> phase diagrams, invariant points, properties; proposal of experiments.

Per draw (:func:`diagram_of_draw`): the invariant points matched to a fixed
list of labels (``"eutectic:FCC_A1+LIQUID+CU2MG"``), the two-phase boundaries
on a temperature grid for every ordered phase pair, the stable phase set on a
(T, x) grid, and properties at query points. Across draws (:func:`summarize`):
mean and central 95 % credible interval. :func:`propose` ranks (T, x) by the
Shannon entropy of the predicted phase set across draws, divided by a cost.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from matterflow.calphad.engine import R_GAS, BinaryModel, load_database
from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["model_from_text", "phase_set_labels", "diagram_of_draw", "summarize",
           "entropy_map", "phase_probabilities", "entropy_of", "propose", "pair_keys", "topology_table",
           "MAX_INVARIANTS"]

#: invariants per draw kept in ``invariant_all_temperature_k`` (padded with NaN)
MAX_INVARIANTS = 24


@functools.lru_cache(maxsize=4)
def model_from_text(tdb_text: str, parameters: tuple[str, ...], n_grid: int,
                    phases: tuple[str, ...] | None = None) -> BinaryModel:
    """A compiled :class:`BinaryModel` from TDB text (cached per process / Dask worker)."""
    from pycalphad import Database

    try:
        dbf = Database(tdb_text)
    except Exception as exc:
        raise InputError(f"model TDB does not parse: {exc}") from None
    return BinaryModel(load_database(dbf), parameters=list(parameters), n_grid=n_grid,
                       phases=list(phases) if phases else None)


def phase_set_labels(phases: Iterable[str]) -> list[str]:
    """All single phases and phase pairs, ``"A"`` and ``"A+B"`` (names sorted)."""
    phases = sorted(phases)
    return phases + ["+".join(p) for p in itertools.combinations(phases, 2)]


def pair_keys(phases: Iterable[str]) -> list[str]:
    """Ordered pairs ``"A|B"`` (A left of B in x) of phases, ``"A|A"`` included.

    ``"A|A"`` is a miscibility gap of phase A (two compositions of one phase),
    which :meth:`BinaryModel.boundaries` reports as such; a posterior draw can
    have one where the posterior mean has none.
    """
    return [f"{a}|{b}" for a, b in itertools.product(sorted(phases), repeat=2)]


def diagram_of_draw(model: BinaryModel, params: ArrayLike | None, labels: Sequence[str],
                    temperatures: ArrayLike, x_grid: np.ndarray,
                    query_points: ArrayLike = (), t_scan: tuple[float, float] = (500.0, 1400.0),
                    dt: float = 10.0, tol: float = 0.05) -> dict[str, np.ndarray]:
    """Everything one posterior draw predicts (fixed shapes for stacking).

    Returns
    -------
    dict with
      invariant_temperature_k (n_labels,), invariant_x (n_labels, 3),
      boundary_x (n_pairs, n_T, 2), phase_set_code (n_T, n_x) into
      :func:`phase_set_labels`, query_fractions (n_q, n_phases),
      query_gibbs_j_mol (n_q,), query_activity (n_q,) of the second component
      (reference: its stable state at the same T),
      invariant_signature (str): the labels of *all* this draw's invariants by
      temperature, ``";"``-joined (its topology; a draw whose invariants differ from
      ``labels`` is counted under its own signature by :func:`topology_table`),
      invariant_all_temperature_k (MAX_INVARIANTS,): their temperatures, NaN-padded.
    """
    inv_t = np.full(len(labels), np.nan)
    inv_x = np.full((len(labels), 3), np.nan)
    invs = model.invariants(params, t_min=t_scan[0], t_max=t_scan[1], dt=dt, tol=tol)
    all_t = np.full(MAX_INVARIANTS, np.nan)
    all_t[:min(len(invs), MAX_INVARIANTS)] = [i.temperature_k for i in invs][:MAX_INVARIANTS]
    signature = ";".join(i.label for i in invs[:MAX_INVARIANTS])
    for inv in invs:
        if inv.label in labels:
            k = labels.index(inv.label)
            if np.isnan(inv_t[k]):
                inv_t[k] = inv.temperature_k
                inv_x[k, :len(inv.compositions)] = inv.compositions
    temps = np.asarray(temperatures, dtype=float)
    pairs = pair_keys(model.phases)
    bnd = np.full((len(pairs), len(temps), 2), np.nan)
    for key, arr in model.boundaries(temps, params).items():
        bnd[pairs.index(key)] = arr
    set_labels = phase_set_labels(model.phases)
    codes = np.zeros((len(temps), len(x_grid)), dtype=np.int16)
    g = model.energies(temps, params)
    for i, t in enumerate(temps):
        lab, _ = model.phase_set(t, x_grid, params, g_row=g[i])
        codes[i] = [set_labels.index(s) for s in lab]
    q = np.asarray(query_points, dtype=float).reshape(-1, 2)
    fr = np.zeros((len(q), len(model.phases)))
    gq = np.zeros(len(q))
    act = np.zeros(len(q))
    for j, (t, x) in enumerate(q):
        _, f = model.phase_set(t, [x], params)
        fr[j] = f[0]
        mu_a, mu_b = model.chemical_potentials(t, x, params)
        gq[j] = mu_a * (1 - x) + mu_b * x
        _, mu_ref = model.chemical_potentials(t, 1.0 - 1e-12, params)
        act[j] = np.exp((mu_b - mu_ref) / (R_GAS * t))
    return {"invariant_temperature_k": inv_t, "invariant_x": inv_x, "boundary_x": bnd,
            "phase_set_code": codes, "query_fractions": fr, "query_gibbs_j_mol": gq,
            "query_activity": act, "invariant_signature": signature,
            "invariant_all_temperature_k": all_t}


def interval(values: np.ndarray, axis=0, level=0.95):
    """Mean and central credible interval over ``axis`` ignoring NaN (draws lacking a point)."""
    lo_q, hi_q = 50 * (1 - level), 100 - 50 * (1 - level)
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        return (np.nanmean(values, axis=axis), np.nanpercentile(values, lo_q, axis=axis),
                np.nanpercentile(values, hi_q, axis=axis))


def summarize(inv_t: np.ndarray, inv_x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, 2.5 % and 97.5 % of invariant temperatures (n_draws, n_inv) and compositions
    (n_draws, n_inv, 3), and the fraction of draws that have each invariant."""
    t_mean, t_lo, t_hi = interval(inv_t)
    x_mean, x_lo, x_hi = interval(inv_x)
    found = np.mean(np.isfinite(inv_t), axis=0)
    return t_mean, t_lo, t_hi, x_mean, x_lo, x_hi, found


def topology_table(signatures: Sequence[str], all_temperatures: ArrayLike,
                   level: float = 0.95) -> list[dict[str, Any]]:
    """Draws grouped by the topology of their diagram (the sequence of invariant labels).

    Parameters
    ----------
    signatures : sequence of str, length n_draws
        ``invariant_signature`` of each draw (labels ``";"``-joined, by temperature).
    all_temperatures : array, shape (n_draws, MAX_INVARIANTS)
        ``invariant_all_temperature_k`` of each draw.

    Returns
    -------
    list of dict, most frequent topology first: ``signature``, ``count``,
    ``fraction`` and ``invariants`` (label, mean, low, high temperature in K over
    the draws of that topology; a label that occurs twice gets ``#2``).
    """
    temps = np.asarray(all_temperatures, dtype=float).reshape(len(signatures), -1)
    groups: dict[str, list[int]] = {}
    for d, sig in enumerate(signatures):
        groups.setdefault(str(sig), []).append(d)
    out = []
    for sig, idx in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        labs = [lab for lab in sig.split(";") if lab]
        seen: dict[str, int] = {}
        rows = []
        for k, lab in enumerate(labs):
            seen[lab] = seen.get(lab, 0) + 1
            name = lab if seen[lab] == 1 else f"{lab}#{seen[lab]}"
            m, lo, hi = interval(temps[idx, k], level=level)
            rows.append({"label": name, "temperature_mean_k": float(m),
                         "temperature_low_k": float(lo), "temperature_high_k": float(hi)})
        out.append({"signature": sig, "count": len(idx), "fraction": len(idx) / len(signatures),
                    "invariants": rows})
    return out


def entropy_map(codes: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shannon entropy (nats) of the phase set across draws, and the modal set.

    Parameters
    ----------
    codes : ndarray, shape (n_draws, n_T, n_x), int
    Returns
    -------
    entropy, mode_code, mode_probability : ndarray, shape (n_T, n_x)
    """
    return entropy_of(phase_probabilities(codes, n_labels))


def phase_probabilities(codes: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_labels, ...) fraction of the draws (first axis of ``codes``) giving each label."""
    codes = np.asarray(codes, dtype=int)
    return np.stack([(codes == k).sum(axis=0) for k in range(n_labels)], axis=0) / codes.shape[0]


def entropy_of(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shannon entropy (nats), modal label and its probability of label probabilities ``p``
    (n_labels, ...), each of shape ``p.shape[1:]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=0)
    return h, p.argmax(axis=0), p.max(axis=0)


def propose(codes: np.ndarray, temperatures: ArrayLike, x_grid: ArrayLike, n_labels: int, top_k: int = 5,
            cost_per_100k: float = 0.0, min_separation: tuple[float, float] = (20.0, 0.02),
            exclude: Iterable[tuple[float, float]] = ()) -> list[dict[str, Any]]:
    """Top-k candidate experiments (T, x) by entropy / cost.

    Cost = 1 + ``cost_per_100k`` x (T - min T)/100 K (hotter experiments cost more).
    Picks are at least ``min_separation`` (K, x) apart from each other and from
    ``exclude`` (already measured (T, x)).

    Returns
    -------
    list of dict (temperature_k, x, entropy, cost, score, mode_code, mode_probability)
    """
    t = np.asarray(temperatures, dtype=float)
    x = np.asarray(x_grid, dtype=float)
    h, mode, pmax = entropy_map(codes, n_labels)
    cost = 1.0 + cost_per_100k * (t[:, None] - t.min()) / 100.0 + 0 * x[None, :]
    score = h / cost
    order = np.argsort(-score, axis=None, kind="stable")
    picks, taken = [], [tuple(e) for e in exclude]
    dt_min, dx_min = min_separation
    for flat in order:
        i, j = np.unravel_index(flat, score.shape)
        if score[i, j] <= 0:
            break
        if any(abs(t[i] - a) < dt_min and abs(x[j] - b) < dx_min for a, b in taken):
            continue
        picks.append({"temperature_k": float(t[i]), "x": float(x[j]), "entropy": float(h[i, j]),
                      "cost": float(cost[i, j]), "score": float(score[i, j]),
                      "mode_code": int(mode[i, j]), "mode_probability": float(pmax[i, j])})
        taken.append((t[i], x[j]))
        if len(picks) == top_k:
            break
    return picks


def run_diagrams(draws, model_tdb: str, parameter_names, labels, params=None, *, client=None,
                 progress=None, batch_size=None) -> dict:
    """``calphad.diagram`` for every draw, on a ``distributed.Client`` if given, stacked.

    The commands run draws as a mapped workflow step (``calphad propagate``);
    this is the library route for notebooks and benchmarks.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, n_params)
    params : DiagramParams or dict, optional
    progress : callable, optional
        ``progress(done, total)``.
    batch_size : int, optional
        Draws per Dask task (default: about 4 tasks per worker).

    The task is looked up by name in the registry, as a workflow does, so this
    module does not import :mod:`matterflow.calphad.tasks` (which imports it).
    """
    from matterflow.core.registry import get_task, stack_results

    diagram = get_task("calphad.diagram")
    p = diagram.make_params(params)
    draws = np.asarray(draws, dtype=float)
    args = (model_tdb, list(parameter_names), list(labels))
    results = []
    if client is None:
        for k, d in enumerate(draws):
            results.append(diagram(d, *args, params=p))
            if progress:
                progress(k + 1, len(draws))
    else:
        from matterflow.core.execute import map_calls

        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = batch_size or max(1, int(np.ceil(len(draws) / (4 * n_workers))))
        batches = [draws[i:i + size] for i in range(0, len(draws), size)]
        parts = map_calls(_diagram_batch, [(b, args, p) for b in batches], scheduler=client)
        results = [r for part in parts for r in part]
        if progress:
            progress(len(draws), len(draws))
    return stack_results(results)[0]


def _diagram_batch(draws, shared, p):
    from matterflow.core.registry import get_task

    diagram = get_task("calphad.diagram")
    return [diagram(d, *shared, params=p) for d in draws]
