"""Declaration of the electrons domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="electrons",
    summary="ML surrogate for DFT: DFT data, descriptors, LDOS model, observables.",
    tasks="matterflow.electrons.tasks:TASKS",
    cli="matterflow.electrons.cli:app",
    demos=("electrons.yaml", "electrons_se3.yaml"),
    libraries=("torch", "pyscf", "ase", "numba", "optuna"),
    file_suffixes=(".cube", ".xyz", ".cif", ".traj", ".vasp", ".pt", ".pth", ".db", ".npy"),
    docs="electrons.md",
    headline="electrons.evaluate:dos_predicted, electrons.evaluate:total_energy_error_mev_per_atom",
)
