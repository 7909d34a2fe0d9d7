"""Executor overhead per mapped item, against a plain Python loop of the same function.

Maps ``core.mean_squared_displacement`` over many tiny trajectories (so the
work per item is small and the overhead shows) three ways, in one run:

- a plain Python loop in this process (the baseline);
- ``map_items`` on a running 2-worker LocalCluster (batches on Dask);
- a whole workflow step through ``run_workflow`` (batches + per-batch cache
  files + the results file), cluster start-up included;
- the same two steps built in code with ``run_steps`` (``Workflow.from_steps``),
  the path every mapping command takes (``calphad propagate``, ``electrons dft``, ...).

Prints one JSON line. Goal: overhead < 2 ms per item with batching.
"""

import json
import time

import numpy as np

from matterflow.core.execute import dask_client, map_items, run_steps, run_workflow
from matterflow.core.quickstart import MSDParams, mean_squared_displacement
from matterflow.core.registry import stack_results
from matterflow.core.workflow import parse_workflow

N_ITEMS = 20_000


def main() -> None:
    walks = np.random.default_rng(0).normal(size=(N_ITEMS, 8, 3)).cumsum(axis=1)
    params = MSDParams(max_lag=2)

    t = time.perf_counter()
    loop = stack_results([mean_squared_displacement(w, params=params) for w in walks])[0]
    t_loop = time.perf_counter() - t

    with dask_client(workers=2) as client:
        map_items(client, mean_squared_displacement, walks[:100], params=params)  # warm up
        t = time.perf_counter()
        dask = map_items(client, mean_squared_displacement, walks, params=params)[0]
        t_dask = time.perf_counter() - t
    assert np.array_equal(loop["msd_nm2"], dask["msd_nm2"])

    import tempfile

    wf = parse_workflow("""
steps:
  - id: walks
    task: core.random_walks
    params: {n_walkers: N_ITEMS, n_steps: 7, seed: 0}
  - id: msd
    task: core.mean_squared_displacement
    inputs: {walk: walks.positions_nm}
    params: {max_lag: 2}
""".replace("N_ITEMS", str(N_ITEMS)))
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        run_workflow(wf, out, workers=2)
        t_flow = time.perf_counter() - t
    steps = [{"id": "walks", "task": "core.random_walks",
              "params": {"n_walkers": N_ITEMS, "n_steps": 7, "seed": 0}},
             {"id": "msd", "task": "core.mean_squared_displacement",
              "inputs": {"walk": "walks.positions_nm"}, "params": {"max_lag": 2}}]
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        run_steps(steps, out, name="overhead", workers=2)
        t_steps = time.perf_counter() - t

    per_item = lambda s: 1e3 * s / N_ITEMS  # noqa: E731
    print(json.dumps({
        "benchmark": "core_overhead",
        "n_items": N_ITEMS,
        "loop_ms_per_item": round(per_item(t_loop), 4),
        "dask_map_ms_per_item": round(per_item(t_dask), 4),
        "dask_overhead_ms_per_item": round(per_item(t_dask - t_loop), 4),
        "workflow_ms_per_item_incl_cluster_start": round(per_item(t_flow), 4),
        "run_steps_ms_per_item_incl_cluster_start": round(per_item(t_steps), 4),
        "ratio_dask_to_loop": round(t_dask / t_loop, 3),
        "goal_overhead_ms_per_item": 2.0,
        "workers": 2,
    }))


if __name__ == "__main__":
    main()
