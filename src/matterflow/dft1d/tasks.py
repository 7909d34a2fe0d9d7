"""All tasks of the dft1d domain (entry point ``matterflow.tasks: dft1d``).

Exact solvers, inversion, datasets and the neural operator live in
:mod:`.inversion_tasks`; the time-dependent PINN in :mod:`.pinn_tasks`.
"""

from matterflow.dft1d.inversion_tasks import TASKS as _INVERSION_TASKS
from matterflow.dft1d.pinn_tasks import TASKS as _PINN_TASKS

TASKS = [*_INVERSION_TASKS, *_PINN_TASKS]
