"""The thin shared layer of matterflow: no domain knowledge lives here.

- :mod:`~matterflow.core.errors`   -- error classes with helpful messages
- :mod:`~matterflow.core.registry` -- tasks: plain functions + pydantic params
- :mod:`~matterflow.core.store`    -- HDF5 result files with units and provenance
- :mod:`~matterflow.core.workflow` -- YAML workflow files, validated with line numbers
- :mod:`~matterflow.core.execute`  -- runs a workflow on Dask, resumable
- :mod:`~matterflow.core.report`   -- self-contained HTML report of a results file
"""

from matterflow.core.errors import ComputeError, InputError, MatterflowError, NotFittedError
from matterflow.core.registry import Params, Task, get_task, list_tasks, quantity, task

__all__ = [
    "ComputeError",
    "InputError",
    "MatterflowError",
    "NotFittedError",
    "Params",
    "Task",
    "get_task",
    "list_tasks",
    "quantity",
    "task",
]
