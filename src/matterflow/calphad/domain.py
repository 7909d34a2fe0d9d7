"""Declaration of the calphad domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="calphad",
    summary="Bayesian CALPHAD on pycalphad/ESPEI: fit, posterior sampling, phase-diagram "
            "ensembles, next experiment.",
    tasks="matterflow.calphad.tasks:TASKS",
    cli="matterflow.calphad.cli:app",
    demos=("calphad.yaml",),
    libraries=("pycalphad", "espei", "emcee", "arviz"),
    file_suffixes=(".tdb", ".ckpt"),
    docs="calphad.md",
    headline="calphad.propose:entropy_map, calphad.summarize:temperature_mean_k[0]",
)
