"""Basis-set (precision) error of DFT total energies: quantile forests, SISSO, calibrated intervals.

Modules: :mod:`~matterflow.basis.data` (load, validate, grouped folds),
:mod:`~matterflow.basis.baseline` (additive elemental-error model, shared interface),
:mod:`~matterflow.basis.qrf` (quantile random forest, conformalised intervals),
:mod:`~matterflow.basis.sisso` (SISSO), :mod:`~matterflow.basis.evaluate` (grouped CV),
:mod:`~matterflow.basis.model` (fitted predictor, files), :mod:`~matterflow.basis.tasks`,
:mod:`~matterflow.basis.cli`. See ``docs/basis.md``.
"""
