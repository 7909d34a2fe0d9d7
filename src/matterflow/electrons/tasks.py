"""All tasks of the electrons domain (entry point ``matterflow.tasks: electrons``).

DFT data and observables live in :mod:`.dft_tasks`; grid descriptors in
:mod:`.descriptor_tasks`; models, training, search and prediction in :mod:`.ml_tasks`.
"""

from matterflow.electrons.descriptor_tasks import TASKS as _DESCRIPTOR_TASKS
from matterflow.electrons.dft_tasks import TASKS as _DFT_TASKS
from matterflow.electrons.ml_tasks import TASKS as _ML_TASKS

TASKS = [*_DFT_TASKS, *_DESCRIPTOR_TASKS, *_ML_TASKS]
