"""Declaration of the dft1d domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="dft1d",
    summary="Exact 1D electrons, density-to-potential inversion, FNO and PINN.",
    tasks="matterflow.dft1d.tasks:TASKS",
    cli="matterflow.dft1d.cli:app",
    demos=("dft1d.yaml",),
    libraries=("torch", "neuraloperator", "deepxde"),
    file_suffixes=(".pt", ".pth"),
    docs="dft1d.md",
    headline="dft1d.train_fno:val_history, dft1d.train_fno:test_rel_l2_mean",
)
