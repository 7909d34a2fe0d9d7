"""Errors of matterflow.

Every error a user can cause or meet derives from :class:`MatterflowError`.
Its message says *where* (file, line, field), *what* was wrong, and *what is
accepted*, e.g.::

    flow.yaml:12: steps[2] (id 'integrate').params.npt: must be >= 1; got -5

``InputError`` is raised before any work starts (bad file, bad parameter);
``ComputeError`` while working (no convergence, NaN, a worker died).
The CLI prints the message without a traceback and exits with
:attr:`MatterflowError.exit_code` (2 for bad input, 1 otherwise).
"""

from __future__ import annotations

__all__ = [
    "MatterflowError",
    "InputError",
    "ComputeError",
    "NotFittedError",
    "StorageError",
    "MatterflowWarning",
    "ConvergenceWarning",
]


class MatterflowError(Exception):
    """Base class of all matterflow errors."""

    exit_code = 1


class InputError(MatterflowError, ValueError):
    """Bad input detected before running: file, field or value not accepted."""

    exit_code = 2


class ComputeError(MatterflowError, RuntimeError):
    """A computation failed while running (no convergence, NaN, worker lost)."""

    exit_code = 1


class StorageError(ComputeError):
    """A file could not be written (full disk, read-only or forbidden folder)."""

    exit_code = 1


class NotFittedError(MatterflowError, AttributeError):
    """A model was used for prediction before ``fit`` was called."""

    exit_code = 1


class MatterflowWarning(UserWarning):
    """Non-fatal problem the user should know about."""


class ConvergenceWarning(MatterflowWarning):
    """An iterative method stopped without converging well enough to trust its result
    (e.g. an MCMC chain with R-hat above the threshold or few effective samples)."""
