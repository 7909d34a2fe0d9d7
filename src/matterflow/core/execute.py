"""Run a workflow on Dask, writing one results file, resumable after a crash.

The executor is the only place that knows about Dask and the only writer of
HDF5 files during a run:

- By default it starts an embedded :class:`distributed.LocalCluster`
  (``workers`` processes, one thread each; or, with ``processes=False``,
  ``workers`` threads of this process, for tasks whose work releases the GIL);
  ``scheduler="tcp://host:8786"``
  uses an existing cluster instead (``dask scheduler`` / ``dask worker``,
  dask-jobqueue on SLURM/PBS).
- Steps whose inputs are ready run concurrently. A task with ``map_over`` is
  called once per item; items go to the workers in batches.
- Every step has a *key*: a hash of the task name and version, its
  parameters, and the keys or file checksums of its inputs. Finished steps
  (and finished batches of mapped steps) are written at once, atomically, to
  ``OUT/.matterflow-cache/``. A rerun skips everything already stored under
  the same key, so a run killed halfway resumes where it stopped.
- At the end (or on failure, with what was finished) the cache is assembled
  into ``OUT/results.h5`` with provenance, atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from matterflow.core.errors import ComputeError, InputError, MatterflowError
from matterflow.core.registry import Params, Task, result_to_dict, stack_results
from matterflow.core.store import (
    atomic_h5,
    atomic_write_bytes,
    base_provenance,
    now_iso,
    read_output,
    sha256_file,
    stack_groups,
    write_outputs,
    write_provenance,
)
from matterflow.core.workflow import Step, Workflow

__all__ = ["run_workflow", "run_steps", "RunSummary", "dask_client", "map_items", "map_calls",
           "WorkerPool", "in_worker", "report_progress", "step_keys", "executor_label",
           "wait_for_workers"]

RESULTS_NAME = "results.h5"
PROGRESS_TOPIC = "matterflow-progress"
CACHE_NAME = ".matterflow-cache"
log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did: where the results are, and which steps were computed or reused."""

    results: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- Dask

@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, *,
                processes: bool = True, cluster: Any = None) -> Iterator[Any]:
    """A ``distributed.Client``: on an existing scheduler, a job-queue cluster, or a new LocalCluster.

    The LocalCluster has ``workers`` processes of one thread each, or, with
    ``processes=False``, one in-process worker with ``workers`` threads.
    ``cluster`` (a cluster YAML file or a :class:`~matterflow.core.cluster.ClusterSpec`)
    submits dask-jobqueue jobs instead (SLURM, PBS, SGE, LSF) and stops them at the end.
    """
    from distributed import Client, LocalCluster

    if scheduler and cluster is not None:
        raise InputError("--scheduler and --cluster exclude each other: give an existing "
                         "scheduler's address or a cluster file, not both")
    if cluster is not None:
        from matterflow.core.cluster import ClusterSpec, load_cluster_spec, start_cluster

        spec = cluster if isinstance(cluster, ClusterSpec) else load_cluster_spec(cluster)
        with start_cluster(spec) as client:
            yield client
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ComputeError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); "
                               "start one with `dask scheduler` and `dask worker ADDRESS`, "
                               "or leave out --scheduler to use a local cluster") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or _default_workers()
    if n < 1:
        raise InputError(f"--workers must be >= 1; got {n}")
    # CRITICAL: a worker's heartbeat racing the scheduler's shutdown logs an ERROR with a
    # traceback at the end of good runs; task failures come back through their futures
    with LocalCluster(n_workers=n if processes else 1, threads_per_worker=1 if processes else n,
                      processes=processes,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster_, \
            Client(cluster_) as client:
        yield client


def executor_label(scheduler: str | None = None, workers: int | None = None, *,
                   processes: bool = True, cluster: Any = None) -> str:
    """How a run is executed, in words (the ``executor`` entry of provenance)."""
    if cluster is not None:
        from matterflow.core.cluster import ClusterSpec, load_cluster_spec

        spec = cluster if isinstance(cluster, ClusterSpec) else load_cluster_spec(cluster)
        where = "" if isinstance(cluster, ClusterSpec) else f" from {cluster}"
        return spec.describe() + where
    if scheduler:
        return f"scheduler {scheduler}"
    n = workers or _default_workers()
    if processes:
        return f"LocalCluster({n} {'process' if n == 1 else 'processes'})"
    return f"LocalCluster({n} {'thread' if n == 1 else 'threads'})"


# --------------------------------------------------------------------------- maps inside a task

def in_worker() -> bool:
    """True inside a task that the executor runs on a Dask worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def map_calls(func: Any, calls: Sequence[tuple], *, scheduler: Any = None, progress: Any = None,
              label: str = "", group: int = 8) -> list[Any]:
    """``[func(*args) for args in calls]``, run in parallel; results in the order of ``calls``.

    The way a task (or a library function) spreads its own inner loop without
    knowing Dask.

    Parameters
    ----------
    func : callable
        Picklable when the calls may go to other processes.
    calls : sequence of tuple
        The positional arguments of each call.
    scheduler : None, "threads", "processes", "synchronous" or a Client
        None: on the executor's cluster when called inside one of its tasks, else
        one after another in this thread; the names are Dask's local schedulers
        (worker count from ``dask.config`` ``num_workers``); a ``distributed.Client``
        runs them there.
    progress : rich Progress, optional
        Local schedulers only: one bar named ``label``, advanced every ``group`` calls.
    """
    calls = [tuple(c) for c in calls]
    if scheduler is None and in_worker():
        from distributed import worker_client

        with worker_client() as client:
            return list(client.gather(client.map(_star, [func] * len(calls), calls, pure=False)))
    if scheduler is not None and hasattr(scheduler, "submit"):  # a distributed.Client
        return list(scheduler.gather(scheduler.map(_star, [func] * len(calls), calls,
                                                   pure=False)))
    bar = progress.add_task(label, total=len(calls)) if progress is not None else None
    if scheduler is None or scheduler == "synchronous":
        out = []
        for args in calls:
            out.append(func(*args))
            if bar is not None:
                progress.advance(bar)
        return out
    import dask

    if bar is None:
        return list(dask.compute(*[dask.delayed(func)(*args) for args in calls],
                                 scheduler=scheduler))
    out = []
    for s in range(0, len(calls), group):
        part = calls[s:s + group]
        out.extend(dask.compute(*[dask.delayed(func)(*args) for args in part], scheduler=scheduler))
        progress.advance(bar, len(part))
    return out


def _star(func: Any, args: tuple) -> Any:
    return func(*args)


class WorkerPool:
    """A ``map(func, iterable)`` for samplers that take a pool (emcee's ``pool=``).

    Inside a task that the executor runs on a cluster of more than one worker
    thread, the calls go to the cluster (``func`` is sent once); anywhere else
    they run one after another here.
    """

    def __init__(self) -> None:
        self._func: Any = None
        self._remote: Any = None
        self._parallel: bool | None = None

    def map(self, func: Any, iterable: Any) -> list[Any]:
        items = list(iterable)
        if self._parallel is None:
            self._parallel = in_worker() and _cluster_threads() > 1
        if not self._parallel:
            return [func(x) for x in items]
        from distributed import worker_client

        with worker_client() as client:
            if self._func is not func:  # the (large) function crosses the network once
                self._remote = client.scatter(func, broadcast=True, hash=False)
                self._func = func
            futs = client.map(_apply, [self._remote] * len(items), items, pure=False)
            return list(client.gather(futs))


def _apply(func: Any, x: Any) -> Any:
    return func(x)


def report_progress(done: int, total: int) -> None:
    """From inside a task: how far it has come (``done`` of ``total``), shown on its step's bar.

    A task that runs long in one call (an MCMC chain) calls this now and then;
    outside a run, or on an executor without bars, it does nothing.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError):
        return
    if key is not None:
        worker.log_event(PROGRESS_TOPIC, {"key": str(key), "done": int(done), "total": int(total)})


def _cluster_threads() -> int:
    from distributed import get_client

    return _n_workers(get_client())


def _default_workers() -> int:
    import os

    return max(1, min(4, os.cpu_count() or 1))


def _n_workers(client: Any) -> int:
    """Threads of all workers: how many tasks run at once."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def _call_task(task: Task, params: Params, inputs: dict[str, Any],
               capture: bool = False) -> tuple[dict, dict, list]:
    """Run a one-call step; with ``capture`` (a worker in another process), its warnings are
    recorded and returned, so the driver shows them instead of the worker's stderr."""
    if not capture:
        return (*result_to_dict(task.run(params, inputs)), [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values, units = result_to_dict(task.run(params, inputs))
    seen: dict[tuple, Any] = {}
    for w in caught:
        seen.setdefault((w.category, str(w.message)), w)
    return values, units, [(w.category, str(w.message)) for w in seen.values()]


def _call_batch(task: Task, params: Params, map_over: str, items: Sequence[Any],
                inputs: dict[str, Any]) -> tuple[dict, dict]:
    return stack_results([task.run(params, {map_over: item, **inputs}) for item in items])


def default_batch_size(n_items: int, n_workers: int) -> int:
    """A few batches per worker (load balance, resume granularity), at most 256 items."""
    return max(1, min(256, math.ceil(n_items / (4 * n_workers))))


def map_items(client: Any, task: Task, items: Sequence[Any], *, params: Params,
              inputs: dict[str, Any] | None = None,
              batch_size: int | None = None) -> tuple[dict, dict]:
    """Call a mapped ``task`` on every item on the cluster, in batches; stacked ``(values, units)``.

    The building block of mapped steps, exposed for benchmarks and notebooks.
    """
    from distributed import wait

    n = len(items)
    bs = batch_size or default_batch_size(n, _n_workers(client))
    shared = client.scatter(inputs or {}, broadcast=False) if inputs else {}
    futures = [client.submit(_call_batch, task, params, task.map_over, items[i:i + bs], shared,
                             pure=False) for i in range(0, n, bs)]
    wait(futures)
    parts = client.gather(futures)
    return _concat([p[0] for p in parts]), parts[0][1] if parts else {}


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not parts:
        return {}
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        items = [p[key] for p in parts]
        if isinstance(first, dict):
            out[key] = _concat(items)
        elif isinstance(first, list):
            out[key] = [x for part in items for x in part]
        else:
            out[key] = np.concatenate([np.asarray(x) for x in items], axis=0)
    return out


# --------------------------------------------------------------------------- keys

def step_keys(workflow: Workflow) -> tuple[dict[str, str], dict[str, str]]:
    """``(keys, checksums)``: a content hash per step, and the sha256 of each input file."""
    keys: dict[str, str] = {}
    checksums: dict[str, str] = {}
    for step in workflow.steps:
        refs = {}
        for name, ref in sorted(step.inputs.items()):
            if ref.step:
                refs[name] = ["step", keys[ref.step], ref.output]
            else:
                p = str(ref.path)
                if p not in checksums:
                    checksums[p] = sha256_file(ref.path)
                refs[name] = ["file", checksums[p]]
        blob = json.dumps({"task": step.task.name, "version": step.task.version,
                           "params": step.params.model_dump(mode="json"), "inputs": refs},
                          sort_keys=True, default=str)
        keys[step.id] = hashlib.sha256(blob.encode()).hexdigest()[:32]
    return keys, checksums


# --------------------------------------------------------------------------- the run

class _Run:
    def __init__(self, workflow: Workflow, out: Path, force: bool, progress: Any):
        self.wf = workflow
        self.out = out
        self.results_path = out / RESULTS_NAME
        self.cache = out / CACHE_NAME
        self.progress = progress
        self.keys, self.checksums = step_keys(workflow)
        # step -> (file, group) holding its outputs; inputs are read from there when a step
        # needs them, so no step's outputs stay in memory for the whole run
        self.sources: dict[str, tuple[Path, str]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.summary = RunSummary(self.results_path)
        self.force = force
        self.bars: dict[str, Any] = {}

    # -- what is stored already
    def find_stored(self) -> None:
        if self.force:
            shutil.rmtree(self.cache, ignore_errors=True)
            return
        old: dict[str, str] = {}
        if self.results_path.exists():
            try:
                with h5py.File(self.results_path, "r") as f:
                    old = {name: str(g.attrs.get("key", "")) for name, g in f.items()
                           if isinstance(g, h5py.Group) and g.attrs.get("status") != "failed"}
            except OSError:
                old = {}
        for step in self.wf.steps:
            key = self.keys[step.id]
            cached = self.cache / f"{key}.h5"
            if cached.exists():
                self.sources[step.id] = (cached, "step")
            elif old.get(step.id) == key:
                self.sources[step.id] = (self.results_path, step.id)

    def load_stored(self, step: Step) -> None:
        path, group = self.sources[step.id]
        with h5py.File(path, "r") as f:
            self.meta[step.id] = dict(f[group].attrs)
        self.summary.reused.append(step.id)
        self._bar(step, total=1, done=1, note="reused")

    def inputs_of(self, step: Step) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, ref in step.inputs.items():
            if ref.path is not None:
                out[name] = ref.path
                continue
            path, group = self.sources[ref.step]
            with h5py.File(path, "r") as f:
                try:
                    out[name] = read_output(f[group], ref.output)
                except KeyError:
                    raise InputError(
                        f"step {step.id!r}: input {name!r} refers to {ref}, but step "
                        f"{ref.step!r} has no output {ref.output!r}; its outputs: "
                        f"{', '.join(f[group])}") from None
        return out

    # -- writing
    def write_manifest(self, start: str) -> None:
        """``CACHE/manifest.json``: the steps and their keys, for watchers (``matterflow view``)."""
        import os
        import socket

        steps = [{"id": s.id, "task": s.task.name, "key": self.keys[s.id],
                  "map_over": s.task.map_over, "stored": s.id in self.sources}
                 for s in self.wf.steps]
        blob = {"workflow_name": self.wf.name, "start_time": start, "pid": os.getpid(),
                "host": socket.gethostname(), "steps": steps}
        atomic_write_bytes(self.cache / "manifest.json", json.dumps(blob).encode())

    def write_step(self, step: Step, values: dict, units: dict, started: str, seconds: float,
                   n_items: int | None = None) -> None:
        meta = self._step_attrs(step, started, seconds, n_items)
        path = self.cache / f"{self.keys[step.id]}.h5"
        with atomic_h5(path) as f:
            g = f.create_group("step")
            write_outputs(g, values, units)
            g.attrs.update(meta)
        self._stored(step, path, meta)

    def write_mapped_step(self, step: Step, batches: list[Path], started: str, seconds: float,
                          n_items: int) -> None:
        """The step's outputs from its batch files, stacked one batch at a time."""
        meta = self._step_attrs(step, started, seconds, n_items)
        path = self.cache / f"{self.keys[step.id]}.h5"
        with atomic_h5(path) as f:
            g = f.create_group("step")
            stack_groups(g, batches, "batch")
            g.attrs.update(meta)
        self._stored(step, path, meta)

    def _stored(self, step: Step, path: Path, meta: dict) -> None:
        self.meta[step.id] = meta
        self.sources[step.id] = (path, "step")
        self.summary.computed.append(step.id)

    def _step_attrs(self, step: Step, started: str, seconds: float, n_items: int | None) -> dict:
        meta = {"NX_class": "NXentry", "task": step.task.name, "task_version": step.task.version,
                "key": self.keys[step.id],
                "params": json.dumps(step.params.model_dump(mode="json"), sort_keys=True),
                "inputs": json.dumps({k: str(v) for k, v in step.inputs.items()}, sort_keys=True),
                "started": started, "finished": now_iso(), "duration_s": round(seconds, 6),
                "status": "computed"}
        if n_items is not None:
            meta["n_items"] = n_items
            meta["batch_size"] = step.batch_size or 0
        return meta

    def assemble(self, start: str, executor: str, status: str) -> None:
        prov = base_provenance()
        prov.update({
            "workflow_name": self.wf.name,
            "workflow_file": str(self.wf.source or ""),
            "workflow_text": self.wf.text,
            "parameters": {s.id: s.params.model_dump(mode="json") for s in self.wf.steps},
            "input_checksums": self.checksums,
            "seeds": {s.id: s.params.seed for s in self.wf.steps
                      if "seed" in type(s.params).model_fields},
            "step_keys": self.keys,
            "start_time": start,
            "end_time": now_iso(),
            "executor": executor,
            "status": status,
        })
        with atomic_h5(self.results_path) as dst:
            for step in self.wf.steps:
                if step.id not in self.sources:
                    continue
                path, group = self.sources[step.id]
                with h5py.File(path, "r") as src:
                    src.copy(src[group], dst, name=step.id)
                if step.id in self.summary.reused:
                    dst[step.id].attrs["status"] = "reused"
            write_provenance(dst, prov)

    # -- progress
    def _bar(self, step: Step, total: int, done: int = 0, note: str = "") -> None:
        if self.progress is None:
            return
        label = f"{step.id} [dim]({step.task.name})[/dim]" + (f" [green]{note}[/green]" if note else "")
        if step.id not in self.bars:
            self.bars[step.id] = self.progress.add_task(label, total=total, completed=done)
        else:
            self.progress.update(self.bars[step.id], description=label, total=total, completed=done)

    def advance(self, step: Step, n: int = 1) -> None:
        if self.progress is not None and step.id in self.bars:
            self.progress.advance(self.bars[step.id], n)

    def finish_bar(self, step: Step) -> None:
        """A one-call step is done: its bar full, whatever the task reported on the way."""
        if self.progress is not None and step.id in self.bars:
            bar = self.bars[step.id]
            total = next((t.total for t in self.progress.tasks if t.id == bar), 1) or 1
            self.progress.update(bar, total=total, completed=total)


def run_workflow(workflow: Workflow, out_dir: str | Path, *, scheduler: str | None = None,
                 workers: int | None = None, force: bool = False,
                 progress: Any = None, processes: bool = True,
                 cluster: Any = None, wait: bool = False,
                 wait_workers: int | None = None, timeout_s: float = 120.0) -> RunSummary:
    """Run ``workflow``; results go to ``out_dir/results.h5``.

    Parameters
    ----------
    workflow : Workflow
        From :func:`matterflow.core.workflow.load_workflow`.
    out_dir : path
        Created if missing. Holds ``results.h5`` and the step cache.
    scheduler : str, optional
        Address of an existing Dask scheduler; default: a new LocalCluster.
    workers : int, optional
        Worker processes of the LocalCluster (default: cores, at most 4).
    force : bool
        Recompute every step even if stored results match.
    progress : rich.progress.Progress, optional
        Shows one bar per step.
    processes : bool
        Local cluster only: worker processes (True), or threads of this process
        (False: no worker start-up, and caches are shared; for tasks that are
        thread-safe and spend their time in code that releases the GIL).
    cluster : path or ClusterSpec, optional
        A job-queue cluster file (:mod:`matterflow.core.cluster`): the run
        submits its jobs, runs there, and stops them at the end.
    wait : bool
        If another run holds ``out_dir`` (:class:`~matterflow.core.outdir.RunLock`), wait
        for it instead of stopping at once.
    wait_workers, timeout_s : int, float
        With ``scheduler``: wait for this many workers (default 1), at most
        ``timeout_s`` seconds, then stop with a message.
    """
    from matterflow.core.outdir import RunLock, check_out_dir

    out = check_out_dir(out_dir)    # writable, with room: before anything is computed
    with RunLock(out, wait=wait):
        return _run_locked(workflow, out, scheduler=scheduler, workers=workers, force=force,
                           progress=progress, processes=processes, cluster=cluster,
                           wait_workers=wait_workers, timeout_s=timeout_s)


def _run_locked(workflow: Workflow, out: Path, *, scheduler: str | None, workers: int | None,
                force: bool, progress: Any, processes: bool, cluster: Any,
                wait_workers: int | None, timeout_s: float) -> RunSummary:
    t0 = time.perf_counter()
    start = now_iso()
    run = _Run(workflow, out, force, progress)
    run.find_stored()
    run.write_manifest(start)
    todo = [s for s in workflow.steps if s.id not in run.sources]
    if scheduler and cluster is not None:
        raise InputError("--scheduler and --cluster exclude each other: give an existing "
                         "scheduler's address or a cluster file, not both")
    if cluster is not None and not hasattr(cluster, "describe"):
        from matterflow.core.cluster import load_cluster_spec

        cluster_file, cluster = cluster, load_cluster_spec(cluster)  # checked before any work
        executor = f"{cluster.describe()} from {cluster_file}"
    else:
        executor = executor_label(scheduler, workers, processes=processes, cluster=cluster)
    status = "complete"
    try:
        for step in workflow.steps:
            if step.id in run.sources:
                run.load_stored(step)
        if todo:
            with dask_client(scheduler, workers, processes=processes, cluster=cluster) as client:
                if scheduler:
                    wait_for_workers(client, wait_workers or 1, timeout_s, progress, scheduler)
                # a job-queue cluster grows after the first worker: size batches for all of it
                _execute(run, client, todo,
                         getattr(cluster, "total_threads", None) if cluster is not None else None,
                         capture_warnings=processes or bool(scheduler) or cluster is not None)
    except BaseException as exc:
        status = f"failed: {exc}" if isinstance(exc, MatterflowError) else f"failed: {type(exc).__name__}: {exc}"
        if run.sources:
            with contextlib.suppress(Exception):
                run.assemble(start, executor, status)
        raise
    run.assemble(start, executor, status)
    shutil.rmtree(run.cache, ignore_errors=True)
    run.summary.seconds = time.perf_counter() - t0
    return run.summary


def run_steps(steps: Sequence[dict[str, Any]], out_dir: str | Path, *, name: str = "steps",
              description: str = "", base_dir: str | Path | None = None,
              **options: Any) -> RunSummary:
    """Build a workflow in code (:meth:`Workflow.from_steps`) and run it (:func:`run_workflow`).

    ``steps`` are mappings as in a workflow file (``id``, ``task``, ``params``,
    ``inputs``, ``batch_size``); ``options`` go to :func:`run_workflow`. The
    results file records the steps as YAML text, so ``matterflow run`` can rerun them.
    """
    wf = Workflow.from_steps(steps, name=name, description=description, base_dir=base_dir)
    return run_workflow(wf, out_dir, **options)


def _execute(run: _Run, client: Any, todo: list[Step], n_threads: int | None = None, *,
             capture_warnings: bool = False) -> None:
    from distributed import as_completed

    pending = {s.id: s for s in todo}
    done = set(run.sources)
    futures = as_completed()
    owner: dict[Any, tuple[Step, int | None]] = {}
    mapped: dict[str, dict[str, Any]] = {}
    n_workers = max(n_threads or 0, _n_workers(client))
    by_key: dict[str, Step] = {}  # one-call steps, for the progress their tasks report

    def on_progress(event: Any) -> None:  # runs in the client's thread
        msg = event[1] if isinstance(event, tuple) else event
        step = by_key.get(str(msg.get("key")))
        if step is not None and step.id not in done:
            run._bar(step, total=max(1, int(msg["total"])), done=int(msg["done"]))

    if run.progress is not None:
        client.subscribe_topic(PROGRESS_TOPIC, on_progress)

    def launch_ready() -> None:
        for sid, step in list(pending.items()):
            if not step.depends_on <= done:
                continue
            del pending[sid]
            inputs = run.inputs_of(step)
            started = now_iso()
            if step.task.map_over is None:
                run._bar(step, total=1)
                shared = client.scatter(inputs, broadcast=False) if inputs else {}
                fut = client.submit(_call_task, step.task, step.params, shared, capture_warnings,
                                    pure=False)
                owner[fut] = (step, None)
                by_key[str(fut.key)] = step
                mapped[sid] = {"started": started, "t0": time.perf_counter()}
                futures.add(fut)
                continue
            items = inputs.pop(step.task.map_over)
            if isinstance(items, (str, Path)) or not hasattr(items, "__len__"):
                raise InputError(f"step {sid!r}: input {step.task.map_over!r} must hold items "
                                 f"(an array along axis 0 or a list); got {type(items).__name__}")
            n = len(items)
            bs = step.batch_size or default_batch_size(n, n_workers)
            bdir = run.cache / run.keys[sid] / f"bs{bs}"
            state = {"started": started, "t0": time.perf_counter(), "n": n, "bs": bs,
                     "dir": bdir, "parts": {}, "remaining": 0}
            mapped[sid] = state
            run._bar(step, total=n)
            atomic_write_bytes(bdir / "plan.json", json.dumps(
                {"n_items": n, "batch_size": bs, "n_batches": math.ceil(n / bs)}).encode())
            shared = client.scatter(inputs, broadcast=False) if inputs else {}
            for b, i in enumerate(range(0, n, bs)):
                part = bdir / f"batch-{b:06d}.h5"
                if part.exists():  # stored by an earlier, interrupted run
                    state["parts"][b] = part
                    run.advance(step, min(bs, n - i))
                    continue
                fut = client.submit(_call_batch, step.task, step.params, step.task.map_over,
                                    items[i:i + bs], shared, pure=False)
                owner[fut] = (step, b)
                state["remaining"] += 1
                futures.add(fut)
            if state["remaining"] == 0:
                finish_mapped(step)

    def finish_mapped(step: Step) -> None:
        st = mapped[step.id]
        parts = [st["parts"][b] for b in sorted(st["parts"])]  # zero items: no outputs
        run.write_mapped_step(step, parts, st["started"], time.perf_counter() - st["t0"], st["n"])
        shutil.rmtree(run.cache / run.keys[step.id], ignore_errors=True)
        done.add(step.id)

    launch_ready()
    try:
        for fut in futures:
            step, batch = owner.pop(fut)
            try:
                values, units, *caught = fut.result()
            except MatterflowError:
                raise
            except Exception as exc:
                raise ComputeError(f"step {step.id!r} ({step.task.name}) failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            st = mapped[step.id]
            for category, message in caught[0] if caught else ():
                warnings.warn(f"step {step.id!r}: {message}", category, stacklevel=1)
            if batch is None:
                run.write_step(step, values, units, st["started"], time.perf_counter() - st["t0"])
                run.finish_bar(step)
                done.add(step.id)
            else:
                part = st["dir"] / f"batch-{batch:06d}.h5"
                with atomic_h5(part) as f:
                    write_outputs(f.create_group("batch"), values, units)
                st["parts"][batch] = part  # on disk only: memory stays at one batch
                st["remaining"] -= 1
                run.advance(step, len(next(iter(values.values()))) if values else 0)
                del values
                if st["remaining"] == 0:
                    finish_mapped(step)
            launch_ready()
    finally:
        for fut in list(owner):
            fut.cancel()
        if run.progress is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(PROGRESS_TOPIC)
    if pending:
        raise ComputeError(f"steps never became ready: {', '.join(pending)}")


def wait_for_workers(client: Any, n: int, timeout_s: float, progress: Any = None,
                     where: str = "the scheduler") -> int:
    """Wait until ``client``'s scheduler has ``n`` workers, at most ``timeout_s`` seconds;
    the number of workers. The progress shows the workers found so far; ComputeError on time-out."""
    deadline = time.monotonic() + timeout_s
    bar = progress.add_task(f"workers on {where}", total=n) if progress is not None else None
    have = 0
    while True:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        have = len(workers)
        if bar is not None:
            threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
            progress.update(bar, completed=min(have, n),
                            description=f"workers on {where}: {have} ({threads} threads)")
        if have >= n:
            return have
        if time.monotonic() >= deadline:
            raise ComputeError(
                f"{where}: {have} of the {n} worker(s) asked for joined within {timeout_s:g} s; "
                f"start workers with `dask worker {where}` (or your job scheduler), or pass "
                "--wait-workers/--timeout; nothing was computed")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
