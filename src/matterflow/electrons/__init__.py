"""ML surrogate for DFT (MALA-like): grid descriptors -> neural network -> LDOS -> observables.

The ASE calculator is :class:`matterflow.electrons.Calculator` (imported on
first use); models are in :mod:`.model`, training in :mod:`.training`,
inference at scale in :mod:`.predict`; Quantum ESPRESSO-made MALA data in :mod:`.mala_qe`
(``load_mala_qe``, ``qe_observables``), MALA model archives in :mod:`.mala_model`
(``load_mala_model``).
"""

from typing import Any

__all__ = ["Calculator", "load_model", "load_mala_qe", "qe_observables", "load_mala_model"]

_LAZY = {"load_mala_qe": "matterflow.electrons.mala_qe", "qe_observables": "matterflow.electrons.mala_qe",
         "load_mala_model": "matterflow.electrons.mala_model"}


def __getattr__(name: str) -> Any:
    if name == "Calculator":
        from matterflow.electrons.calculator import Calculator

        return Calculator
    if name == "load_model":
        from matterflow.electrons.model import load_model

        return load_model
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'matterflow.electrons' has no attribute {name!r}")
