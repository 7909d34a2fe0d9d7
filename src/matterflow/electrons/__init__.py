"""ML surrogate for DFT (MALA-like): grid descriptors -> neural network -> LDOS -> observables.

The ASE calculator is :class:`matterflow.electrons.Calculator` (imported on
first use); models are in :mod:`.model`, training in :mod:`.training`,
inference at scale in :mod:`.predict`.
"""

from typing import Any

__all__ = ["Calculator", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "Calculator":
        from matterflow.electrons.calculator import Calculator

        return Calculator
    if name == "load_model":
        from matterflow.electrons.model import load_model

        return load_model
    raise AttributeError(f"module 'matterflow.electrons' has no attribute {name!r}")
