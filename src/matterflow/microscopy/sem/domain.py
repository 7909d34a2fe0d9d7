"""Declaration of the sem domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="sem",
    summary="Fast in-situ SEM: ×4 super-resolution of quick scans and planned full-resolution rescans.",
    tasks="matterflow.microscopy.sem.tasks:TASKS",
    cli="matterflow.microscopy.sem.cli:app",
    demos=("sem.yaml",),
    libraries=("torch", "tifffile", "scikit-image"),
    file_suffixes=(".tif", ".tiff", ".dm3", ".dm4", ".emd", ".ser", ".mrc", ".mrcs", ".png", ".jpg",
                   ".jpeg", ".npy", ".pt"),
    docs="sem.md",
    headline="sem.upscale:sr[0], sem.evaluate:gain_db",
)
