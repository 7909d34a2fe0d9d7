"""Fit the energy correction of a trained LDOS model on DFT snapshots (``electrons correct``).

The correction itself (features, ridge fit, domain of applicability) is
:mod:`matterflow.electrons.energy_correction`; the model's own uncorrected
predictions come from :func:`~matterflow.electrons.predict.predict_observables`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, NamedTuple

import numpy as np

from matterflow.core.errors import InputError, MatterflowWarning
from matterflow.electrons.energy_correction import EnergyCorrection, feature_domain, fit_ridge_loo
from matterflow.electrons.predict import predict_observables

__all__ = ["EnergyReference", "attach_energy_correction", "fit_energy_correction"]


def fit_energy_correction(model: Any, snapshots: list[Any], progress: Any = None) -> EnergyCorrection:
    """Fit the correction of ``model`` on DFT ``snapshots`` (their atoms, grid, band and total energy).

    The model's own (uncorrected) predictions and descriptor integrals come from
    :func:`~matterflow.electrons.predict.predict_observables`; use the training
    snapshots (the residual is systematic, not noise: it is there on training cells too).
    Returns the fitted :class:`EnergyCorrection` (``model`` is not changed; see
    :func:`~matterflow.electrons.model.LdosSetup` ``meta["energy_correction"]``).
    """
    feats, vols, rb, rt, natoms = [], [], [], [], []    # residuals rb, rt: eV per cell
    for snap in snapshots:
        for name in ("band_energy_ev", "total_energy_ev"):
            if not np.isfinite(getattr(snap, name, np.nan)):
                raise InputError(f"snapshot.{name}: a finite DFT value is needed to fit the energy correction")
        pred = predict_observables(model, snap.atoms, grid_shape=tuple(snap.grid_shape), scheduler="synchronous",
                                   energy_correction=False, progress=progress)
        feats.append(pred.cell_features)
        vols.append(float(snap.atoms.get_volume()))
        rb.append(snap.band_energy_ev - pred.band_energy_ev)
        rt.append(snap.total_energy_ev - pred.total_energy_ev)
        natoms.append(len(snap.atoms))
    p, v = np.array(feats), np.array(vols)
    per_atom = 1000.0 / float(np.mean(natoms))
    rb, rt = np.array(rb), np.array(rt)
    cb, kb, lb, eb = fit_ridge_loo(p, v, rb)
    ct, kt, lt, et = fit_ridge_loo(p, v, rt)
    return EnergyCorrection(band_coef=tuple(cb), total_coef=tuple(ct), band_per_volume_ev=kb,
                            total_per_volume_ev=kt, band_lambda=lb, total_lambda=lt,
                            band_loo_mev_per_atom=eb * per_atom, total_loo_mev_per_atom=et * per_atom,
                            n_snapshots=len(snapshots), domain=feature_domain(p, v, min(lb, lt)),
                            band_uncorrected_rms_mev_per_atom=float(np.sqrt(np.mean(rb ** 2))) * per_atom,
                            total_uncorrected_rms_mev_per_atom=float(np.sqrt(np.mean(rt ** 2))) * per_atom)


class EnergyReference(NamedTuple):
    """What the fit needs of a DFT snapshot: its ``atoms`` (ASE), ``grid_shape`` and DFT energies (eV per cell).

    A :class:`~matterflow.electrons.snapshot.Snapshot` has these attributes too.
    """

    atoms: Any
    grid_shape: tuple[int, int, int]
    band_energy_ev: float
    total_energy_ev: float


def attach_energy_correction(model: Any, snapshots: list[Any], progress: Any = None) -> EnergyCorrection:
    """Fit the correction of ``model`` on ``snapshots`` and store it in the model (``setup.meta``).

    A correction already in the model is ignored by the fit (it is refitted on the
    uncorrected model) and replaced; ensemble members share the new setup.
    Returns the fitted :class:`EnergyCorrection`.
    """
    meta = {k: v for k, v in model.setup.meta.items() if k != "energy_correction"}
    model.setup = dataclasses.replace(model.setup, meta=meta)      # fit on the uncorrected model
    corr = fit_energy_correction(model, snapshots, progress=progress)
    model.setup = dataclasses.replace(model.setup, meta={**meta, "energy_correction": corr.to_dict()})
    for member in getattr(model, "members_", ()):
        member.setup = model.setup
    for text in corr.caveats():
        warnings.warn(f"energy correction: {text}", MatterflowWarning, stacklevel=2)
    return corr
