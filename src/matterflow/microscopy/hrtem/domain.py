"""Declaration of the hrtem domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="hrtem",
    summary="HRTEM image matching: multislice forward model + Bayesian optimisation (BoTorch).",
    tasks="matterflow.microscopy.hrtem.tasks:TASKS",
    cli="matterflow.microscopy.hrtem.cli:app",
    demos=("hrtem.yaml",),
    libraries=("torch", "botorch"),
    file_suffixes=(".tif", ".tiff", ".dm3", ".dm4", ".emd", ".ser", ".mrc", ".mrcs", ".png", ".jpg",
                   ".jpeg", ".npy"),
    docs="hrtem.md",
    headline="hrtem.match:best_image, hrtem.match:best_loss",
)
