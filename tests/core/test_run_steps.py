"""Workflows built in code (`Workflow.from_steps`, `run_steps`) and maps inside tasks
(`map_calls`, `WorkerPool`): the one execution path of the commands."""

from pathlib import Path

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.core.execute import (
    WorkerPool,
    dask_client,
    in_worker,
    map_calls,
    run_steps,
    run_workflow,
)
from matterflow.core.quickstart import MSDParams
from matterflow.core.store import Results
from matterflow.core.workflow import Workflow, load_workflow

STEPS = [
    {"id": "walks", "task": "core.random_walks",
     "params": {"n_walkers": 30, "n_steps": 40, "dimensions": 1, "seed": 2}},
    {"id": "msd", "task": "core.mean_squared_displacement", "inputs": {"walk": "walks.positions_nm"},
     "params": MSDParams(max_lag=4), "batch_size": 7},
]


def test_recorded_yaml_reruns_with_matterflow_run(tmp_path):
    first = run_steps(STEPS, tmp_path / "o", name="built", workers=1, processes=False)
    assert first.computed == ["walks", "msd"]
    res = Results(first.results)
    text = res.provenance["workflow_text"]
    assert "core.mean_squared_displacement" in text and "max_lag: 4" in text
    flow = tmp_path / "flow.yaml"
    flow.write_text(text)
    again = run_workflow(load_workflow(flow), tmp_path / "o", workers=1, processes=False)
    assert again.reused == ["walks", "msd"] and not again.computed  # same keys: same workflow
    assert res["msd"]["msd_nm2"].shape == (30, 4)  # 30 walkers in batches of 7, stacked


def test_file_inputs_are_made_absolute_and_checked(tmp_path):
    with pytest.raises(InputError, match=r"<x>:\d+: steps\[0\] \(id 'w'\)\.inputs\.walk: input "
                                         r"file .*missing\.npy' not found"):
        Workflow.from_steps([{"id": "w", "task": "core.mean_squared_displacement",
                              "inputs": {"walk": Path("missing.npy")}}], name="x",
                            base_dir=tmp_path)


def test_bad_parameter_names_step_and_field():
    with pytest.raises(InputError, match=r"steps\[0\] \(id 'walks'\)\.params\.n_walkers"):
        Workflow.from_steps([{"id": "walks", "task": "core.random_walks",
                              "params": {"n_walkers": 0}}])
    with pytest.raises(InputError, match=r"steps\[0\] \(id 'walks'\)\.params: .*plain data"):
        Workflow.from_steps([{"id": "walks", "task": "core.random_walks",
                              "params": {"n_walkers": object()}}])


def _square_plus(x, y):
    return x * x + y


def _inside(n):
    assert in_worker()
    return map_calls(_square_plus, [(i, 1) for i in range(n)])


def _pooled(n):
    return WorkerPool().map(abs, range(-n, 0))


@pytest.mark.parametrize("scheduler", [None, "synchronous", "threads"])
def test_map_calls_keeps_the_order(scheduler):
    assert map_calls(_square_plus, [(i, 1) for i in range(20)], scheduler=scheduler) == \
        [i * i + 1 for i in range(20)]


def test_map_calls_and_pool_inside_a_task_use_the_cluster():
    assert not in_worker()
    with dask_client(workers=2, processes=False) as client:
        assert client.submit(_inside, 12).result() == [i * i + 1 for i in range(12)]
        assert client.submit(_pooled, 5).result() == [5, 4, 3, 2, 1]
        assert map_calls(_square_plus, [(2, 3)], scheduler=client) == [7]


def test_pool_outside_a_run_is_a_plain_map():
    assert WorkerPool().map(np.negative, [1, 2]) == [-1, -2]


def test_a_long_task_reports_progress_on_its_bar(tmp_path):
    import dataclasses
    import time

    from rich.progress import Progress

    from matterflow.core.execute import report_progress
    from matterflow.core.registry import _discover, quantity, register, task

    @dataclasses.dataclass(frozen=True)
    class Done:
        n: int = quantity("dimensionless", "steps done")

    @task("core.test_long_call")
    def long_call() -> Done:
        """Five slow steps, each reported."""
        for i in range(5):
            time.sleep(0.2)
            report_progress(i + 1, 5)
        return Done(n=5)

    class Recording(Progress):
        seen: list = []

        def update(self, task_id, **kw):
            self.seen.append((kw.get("total"), kw.get("completed")))
            super().update(task_id, **kw)

    register([long_call])
    try:
        with Recording(disable=True) as bars:
            run_steps([{"id": "long", "task": "core.test_long_call"}], tmp_path, workers=1,
                      processes=False, progress=bars)
    finally:
        _discover()[0].pop("core.test_long_call", None)
    report_progress(1, 2)  # outside a run: nothing happens
    reported = [c for t, c in Recording.seen if t == 5 and c is not None and c < 5]
    assert reported, Recording.seen  # the bar moved while the task ran
    assert Recording.seen[-1] == (5, 5)  # and is full at the end


def test_warnings_of_a_worker_process_are_shown_by_the_driver(tmp_path):
    import dataclasses
    import warnings

    from matterflow.core.registry import _discover, quantity, register, task

    @dataclasses.dataclass(frozen=True)
    class Out:
        x: float = quantity("dimensionless", "one")

    @task("core.test_warns")
    def warns() -> Out:
        """Warns twice with the same message, once with another."""
        for msg in ("chain too short", "chain too short", "few samples"):
            warnings.warn(msg, UserWarning, stacklevel=1)
        return Out(x=1.0)

    register([warns])
    try:
        with pytest.warns(UserWarning) as record:
            run_steps([{"id": "w", "task": "core.test_warns"}], tmp_path, workers=1)
    finally:
        _discover()[0].pop("core.test_warns", None)
    ours = sorted(str(r.message) for r in record if str(r.message).startswith("step "))
    assert ours == ["step 'w': chain too short", "step 'w': few samples"]  # once each
