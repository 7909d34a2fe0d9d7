"""Parameters of the basis tasks, in a light module (no pandas or scikit-learn) so that
the command line builds its options from them (:func:`matterflow.clitools.param_option`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from matterflow.core.registry import Params

__all__ = ["MODEL_NAMES", "ModelName", "EvaluateParams", "FitParams", "PredictParams"]

MODEL_NAMES = ("baseline", "qrf", "qrf_conformal", "sisso")
ModelName = Literal["baseline", "qrf", "qrf_conformal", "sisso"]


class EvaluateParams(Params):
    models: list[ModelName] = Field(list(MODEL_NAMES), min_length=1,
                                    description="models to cross-validate")
    n_splits: int = Field(5, ge=2, le=20, description="grouped folds (by material)")
    coverage: float = Field(0.9, gt=0.5, lt=1.0, description="nominal interval coverage")
    n_estimators: int = Field(300, ge=10, le=5000, description="trees of the forests")
    sisso_dim: int = Field(3, ge=1, le=4, description="terms of the SISSO formula")
    sisso_sis: int = Field(20, ge=2, le=200, description="features per SIS step")
    sisso_rung: int = Field(1, ge=1, le=2, description="rungs of the SISSO feature space")
    column_map: list[str] = Field([], description="OLD=NEW renames of the CSV's columns")
    n_jobs: int = Field(1, ge=1, le=64, description="parallel jobs of the forests")
    seed: int = Field(0, ge=0, description="seed of the folds and forests")


class FitParams(Params):
    coverage: float = Field(0.9, gt=0.5, lt=1.0, description="nominal interval coverage")
    n_estimators: int = Field(300, ge=10, le=5000, description="trees of the forest")
    sisso_dim: int = Field(3, ge=1, le=4, description="terms of the SISSO formula")
    column_map: list[str] = Field([], description="OLD=NEW renames of the CSV's columns")
    n_jobs: int = Field(1, ge=1, le=64, description="parallel jobs of the forest")
    seed: int = Field(0, ge=0, description="seed of the forest and calibration folds")


class PredictParams(Params):
    tolerance_mev_per_atom: float = Field(1.0, gt=0, description="accepted |error| per atom",
                                          json_schema_extra={"units": "meV/atom"})
    column_map: list[str] = Field([], description="OLD=NEW renames of the CSV's columns")
