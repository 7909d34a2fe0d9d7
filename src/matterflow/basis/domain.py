"""Declaration of the basis domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="basis",
    summary="Basis-set (precision) error of DFT total energies: QRF, SISSO, calibrated intervals.",
    tasks="matterflow.basis.tasks:TASKS",
    cli="matterflow.basis.cli:app",
    demos=("basis.yaml",),
    libraries=("pandas", "scikit-learn", "quantile-forest"),
    file_suffixes=(".csv", ".pkl", ".model"),
    docs="basis.md",
    headline="basis.evaluate:smape_by_level_pct[1], basis.evaluate:smape_pct[1]",
)
