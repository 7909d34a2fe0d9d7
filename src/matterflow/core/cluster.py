"""Job-queue clusters (SLURM, PBS, SGE, LSF) from a small YAML file, on dask-jobqueue.

``matterflow run FLOW.yaml --cluster cluster.yaml`` (and every command with the
run options) starts the cluster this file describes, runs the same workflow on
it, and stops it at the end::

    # cluster.yaml
    system: slurm          # slurm, pbs, sge, lsf (or local: jobs as local processes)
    queue: normal          # partition / queue
    account: mat123        # project to charge (optional)
    cores: 8               # cores per job
    processes: 2           # Dask worker processes per job (threads = cores / processes)
    memory: 16GB           # memory per job
    walltime: "01:00:00"
    jobs: 4                # jobs started at once ...
    adaptive: {minimum: 1, maximum: 10}   # ... or let the queue grow and shrink
    prologue: ["module load python"]      # lines run before the worker starts
    job_directives: ["--constraint=cpu"]  # extra #SBATCH (#PBS, ...) directives

The file is checked before anything is submitted; each problem is reported as
``FILE:LINE: field: what is accepted; got VALUE`` (an
:class:`~matterflow.core.errors.InputError`). ``system: local`` uses
dask-jobqueue's own ``LocalCluster``, which runs the real job machinery with
local processes instead of a batch system (how this module is tested).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from matterflow.core.errors import ComputeError, InputError

__all__ = ["ClusterSpec", "Adaptive", "load_cluster_spec", "parse_cluster_spec", "start_cluster",
           "job_script"]

_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
            "lsf": "LSFCluster", "local": "local.LocalCluster"}


class Adaptive(BaseModel):
    """Adaptive scaling: the number of jobs follows the work, between the two bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum: int = Field(0, ge=0, le=10_000, description="fewest jobs kept running")
    maximum: int = Field(ge=1, le=10_000, description="most jobs at once")

    @model_validator(mode="after")
    def _order(self) -> Adaptive:
        if self.maximum < self.minimum:
            raise ValueError(f"maximum ({self.maximum}) must be >= minimum ({self.minimum})")
        return self


class ClusterSpec(BaseModel):
    """A job-queue cluster: one batch job holds ``processes`` Dask workers on ``cores`` cores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Literal["slurm", "pbs", "sge", "lsf", "local"] = Field(
        description="batch system (local: dask-jobqueue's local job runner, for tests)")
    queue: str | None = Field(None, description="queue or partition")
    account: str | None = Field(None, description="account / project charged for the jobs")
    cores: int = Field(1, ge=1, le=4096, description="cores per job")
    processes: int = Field(1, ge=1, le=4096, description="Dask worker processes per job")
    memory: str = Field("4GB", pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B)$",
                        description="memory per job, e.g. 16GB or 64GiB")
    walltime: str = Field("01:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$",
                          description="wall-clock limit per job, [D-]HH:MM[:SS]")
    jobs: int = Field(1, ge=0, le=10_000, description="jobs submitted at start (without adaptive)")
    adaptive: Adaptive | None = Field(None, description="scale between minimum and maximum jobs")
    job_directives: list[str] = Field([], description="extra directives of the job script")
    prologue: list[str] = Field([], description="shell lines run before the worker starts")
    interface: str | None = Field(None, description="network interface of the workers (e.g. ib0)")
    local_directory: str | None = Field(None, description="worker scratch folder on the nodes")
    log_directory: str | None = Field(None, description="folder for the jobs' output files")
    python: str | None = Field(None, description="python executable on the nodes "
                               "(default: this one)")
    wait_s: float = Field(300.0, gt=0, le=86_400, description="how long to wait for the first "
                          "worker to start", json_schema_extra={"units": "s"})

    @model_validator(mode="after")
    def _fits(self) -> ClusterSpec:
        if self.processes > self.cores:
            raise ValueError(f"processes ({self.processes}) must be <= cores ({self.cores}); "
                             "each worker process needs at least one core")
        if self.adaptive is None and self.jobs == 0:
            raise ValueError("jobs is 0 and adaptive is not set: no worker would ever start")
        return self

    @property
    def total_threads(self) -> int:
        """Tasks that run at once when every job is up (batch sizes are chosen for it)."""
        return (self.adaptive.maximum if self.adaptive else self.jobs) * self.cores

    def describe(self) -> str:
        """``slurm cluster (queue normal, 4 jobs x 8 cores)``, for provenance."""
        size = (f"adaptive {self.adaptive.minimum}-{self.adaptive.maximum}" if self.adaptive
                else f"{self.jobs}") + f" jobs x {self.cores} cores, {self.processes} " \
            f"{'process' if self.processes == 1 else 'processes'} each"
        return f"{self.system} cluster (" + (f"queue {self.queue}, " if self.queue else "") + size + ")"

    def job_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class."""
        kw: dict[str, Any] = {"cores": self.cores, "processes": self.processes,
                              "memory": self.memory.replace(" ", ""), "walltime": self.walltime}
        optional = {"queue": self.queue, "interface": self.interface,
                    "local_directory": self.local_directory, "log_directory": self.log_directory,
                    "python": self.python}
        kw.update({k: v for k, v in optional.items() if v is not None})
        if self.account is not None:
            kw["account" if self.system == "slurm" else "project"] = self.account
        if self.job_directives:
            kw["job_extra_directives"] = list(self.job_directives)
        if self.prologue:
            kw["job_script_prologue"] = list(self.prologue)
        return kw


def parse_cluster_spec(text: str, *, source: str = "<cluster>") -> ClusterSpec:
    """Validate cluster YAML ``text``; errors name ``source:line: field``."""
    from matterflow.core.registry import validation_message
    from matterflow.core.workflow import _line_map, _Locator

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "1"
        raise InputError(f"{source}:{line}: not valid YAML: "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    if node is None or not isinstance(data, dict):
        raise InputError(f"{source}:1: a cluster file must be a mapping with at least 'system' "
                         f"(one of {', '.join(_CLASSES)}); got {type(data).__name__}")
    loc = _Locator(source, _line_map(node), data)
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(exc, prefix="", model=ClusterSpec,
                                            locate=lambda p: loc.where(tuple(p)).replace(
                                                ": workflow", ": cluster"))) from None


def load_cluster_spec(path: str | Path) -> ClusterSpec:
    """Read and validate a cluster file (see :func:`parse_cluster_spec`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: cluster file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read cluster file ({exc})") from None
    return parse_cluster_spec(text, source=str(path))


def _cluster_class(system: str) -> Any:
    try:
        import dask_jobqueue
        import dask_jobqueue.local
    except ImportError as exc:
        raise InputError(f"--cluster needs dask-jobqueue ({exc}); pip install dask-jobqueue") \
            from None
    if system == "local":
        return dask_jobqueue.local.LocalCluster
    return getattr(dask_jobqueue, _CLASSES[system])


def _make(spec: ClusterSpec) -> Any:
    cls = _cluster_class(spec.system)
    try:
        return cls(silence_logs=logging.ERROR, dashboard_address=None, **spec.job_kwargs())
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        raise InputError(f"cannot set up the {spec.system} cluster: {exc}") from None


def job_script(spec: ClusterSpec) -> str:
    """The batch script one job of ``spec`` would be submitted with (nothing is submitted)."""
    cluster = _make(spec)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


@contextlib.contextmanager
def start_cluster(spec: ClusterSpec) -> Iterator[Any]:
    """Submit the jobs of ``spec``; yields a ``distributed.Client`` once a worker is up."""
    from distributed import Client

    cluster = _make(spec)
    try:
        if spec.adaptive is not None:
            cluster.adapt(minimum_jobs=spec.adaptive.minimum, maximum_jobs=spec.adaptive.maximum)
            first = max(1, spec.adaptive.minimum)
            if spec.adaptive.minimum == 0:
                cluster.scale(jobs=1)  # something to start on; adapt takes over from there
        else:
            cluster.scale(jobs=spec.jobs)
            first = 1
        with Client(cluster) as client:
            try:
                client.wait_for_workers(first, timeout=spec.wait_s)
            except TimeoutError:
                raise ComputeError(
                    f"no worker of the {spec.system} cluster started within {spec.wait_s:g} s "
                    "(jobs still queued, or they failed: see the job output files, "
                    "log_directory); job script:\n" + str(cluster.job_script())) from None
            yield client
    finally:
        cluster.close()
