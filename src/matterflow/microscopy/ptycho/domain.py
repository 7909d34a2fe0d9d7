"""Declaration of the ptycho domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="ptycho",
    summary="Multislice electron ptychography and joint ptychographic tomography (torch).",
    tasks="matterflow.microscopy.ptycho.tasks:TASKS",
    cli="matterflow.microscopy.ptycho.cli:app",
    demos=("ptycho.yaml",),
    libraries=("torch", "h5py"),
    file_suffixes=(".npy", ".h5", ".hdf5", ".emd"),
    docs="ptycho.md",
    headline="ptycho.tomo:volume, ptycho.tomo:ncc",
)
