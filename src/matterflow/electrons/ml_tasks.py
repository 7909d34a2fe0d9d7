"""Tasks of the LDOS model: ``electrons.train``, ``electrons.predict``, ``electrons.evaluate``.

In a workflow the DFT step gives stacked snapshot arrays and the descriptor
step the descriptors of each snapshot; ``electrons.train`` holds out some
snapshots (``test_snapshots``) and returns the saved model as bytes (a
``uint8`` array, so it is stored in the results file like any output);
``electrons.predict`` applies it to one structure (chunked inference);
``electrons.evaluate`` compares a prediction with the DFT reference (DOS,
density slice, error table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from matterflow.core import Params, quantity, task
from matterflow.core.blob import bytes_field, from_bytes_array, to_bytes_array
from matterflow.core.errors import InputError
from matterflow.electrons.descriptor_tasks import DescriptorTaskParams
from matterflow.electrons.training import TrainParams

__all__ = ["TrainTaskParams", "train", "predict", "evaluate", "TASKS", "setup_for",
           "training_arrays", "atoms_from_arrays", "snapshot_dataset", "SnapshotData",
           "prediction_errors", "floor_errors"]


# --------------------------------------------------------------------------- helpers

def atoms_from_arrays(positions_a: np.ndarray, cell_a: np.ndarray, numbers: np.ndarray) -> Any:
    """``ase.Atoms`` (periodic) from positions (n, 3) Å, cell (3, 3) Å, atomic numbers (n,)."""
    from ase import Atoms

    positions_a, cell_a = np.asarray(positions_a, float), np.asarray(cell_a, float)
    numbers = np.asarray(numbers).astype(int)
    if positions_a.ndim != 2 or positions_a.shape[1] != 3 or cell_a.shape != (3, 3) \
            or numbers.shape != (positions_a.shape[0],):
        raise InputError(f"structure: positions (n, 3), cell (3, 3) and numbers (n,) are needed; got "
                         f"{positions_a.shape}, {cell_a.shape}, {numbers.shape}")
    return Atoms(numbers=numbers, positions=positions_a, cell=cell_a, pbc=True)


def _pick(a: Any, index: int, ndim_one: int, name: str) -> np.ndarray:
    """Item ``index`` of a stacked array, or the array itself when it is a single item."""
    a = np.asarray(a)
    if a.ndim == ndim_one:
        return a
    if a.ndim != ndim_one + 1:
        raise InputError(f"{name}: {ndim_one} dimensions (one structure) or {ndim_one + 1} (stacked) "
                         f"are needed; got shape {a.shape}")
    if not -a.shape[0] <= index < a.shape[0]:
        raise InputError(f"snapshot: index {index} out of range for {a.shape[0]} snapshots ({name})")
    return a[index]


def setup_for(descriptor_kind: str, descriptor_params: Any, energy_grid_ev: np.ndarray, cell_a: np.ndarray,
              grid_shape: tuple[int, int, int], *, temperature_k: float, ldos_smearing_ev: float,
              valence_electrons: dict[str, float], meta: dict | None = None) -> Any:
    """:class:`~matterflow.electrons.model.LdosSetup` of training data on a grid of a cell."""
    from matterflow.electrons.model import LdosSetup

    lengths = np.linalg.norm(np.asarray(cell_a, float), axis=1)
    spacing = tuple(float(length / n) for length, n in zip(lengths, grid_shape, strict=True))
    dp = descriptor_params.model_dump() if hasattr(descriptor_params, "model_dump") else dict(descriptor_params)
    return LdosSetup(energy_grid_ev=tuple(float(e) for e in np.asarray(energy_grid_ev).ravel()),
                     descriptor_kind=descriptor_kind, descriptor_params=dp, grid_spacing_ang=spacing,
                     temperature_k=float(temperature_k), ldos_smearing_ev=float(ldos_smearing_ev),
                     valence_electrons=dict(valence_electrons), meta=dict(meta or {}))


def training_arrays(descriptors: np.ndarray, ldos: np.ndarray, indices: list[int], *,
                    where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Flattened (n_points, n_features) and (n_points, n_energies) of the snapshots ``indices``.

    ``descriptors`` (n_snap, nx, ny, nz, n_features) and ``ldos``
    (n_snap, nx, ny, nz, n_energies) must share the grid.
    """
    d, y = np.asarray(descriptors), np.asarray(ldos)
    if d.ndim != 5 or y.ndim != 5:
        raise InputError(f"{where}descriptors and ldos: stacked grids (n_snapshots, nx, ny, nz, n) are "
                         f"needed; got shapes {d.shape} and {y.shape}")
    if d.shape[:4] != y.shape[:4]:
        raise InputError(f"{where}ldos: its grid {y.shape[1:4]} (and snapshot count {y.shape[0]}) does not "
                         f"match the descriptors' {d.shape[1:4]} ({d.shape[0]} snapshots)")
    x = np.concatenate([d[i].reshape(-1, d.shape[-1]) for i in indices])
    t = np.concatenate([y[i].reshape(-1, y.shape[-1]) for i in indices])
    return x, t


@dataclass
class SnapshotData:
    """Descriptors and LDOS of DFT snapshot files, ready for training."""

    x: list  # per snapshot (n_points, n_features)
    y: list  # per snapshot (n_points, n_energies)
    snapshots: list  # Snapshot objects (with their LDOS)
    paths: list
    setup: Any


def snapshot_dataset(paths: list, descriptor_kind: str, descriptor_params: Any, *,
                     descriptor_files: list | None = None, progress: Any = None) -> SnapshotData:
    """Load snapshot HDF5 files and compute (or read) their descriptors.

    All snapshots must share the energy grid (an ``InputError`` names the first
    file that does not); their real-space grids may differ. ``descriptor_files``
    (``.npy`` of shape (nx, ny, nz, n_features), one per snapshot) skip the
    descriptor computation.
    """
    from matterflow.electrons.descriptors import compute_descriptors
    from matterflow.electrons.observables import GTH_VALENCE
    from matterflow.electrons.snapshot import load_snapshot

    if not paths:
        raise InputError("snapshots: at least one snapshot file is needed")
    if descriptor_files is not None and len(descriptor_files) != len(paths):
        raise InputError(f"descriptor files: one per snapshot is needed; got {len(descriptor_files)} for "
                         f"{len(paths)} snapshots")
    xs, ys, snaps = [], [], []
    task_id = progress.add_task("descriptors", total=len(paths)) if progress is not None else None
    first = None
    for i, path in enumerate(paths):
        snap = load_snapshot(path)
        if snap.ldos is None:
            raise InputError(f"{path}: ldos: the snapshot holds no LDOS (needed to train)")
        if first is None:
            first = snap
        else:
            # real-space grids may differ (cells of other densities); the energy grid may not
            if snap.ldos.shape[-1] != first.ldos.shape[-1] or not np.allclose(snap.energy_grid_ev,
                                                                               first.energy_grid_ev):
                raise InputError(f"{path}: ldos/energy_grid_ev: grid {snap.ldos.shape} with energies "
                                 f"[{snap.energy_grid_ev[0]:.3f}, {snap.energy_grid_ev[-1]:.3f}] eV does not match "
                                 f"{paths[0]} ({first.ldos.shape}, [{first.energy_grid_ev[0]:.3f}, "
                                 f"{first.energy_grid_ev[-1]:.3f}] eV); make the snapshots with one energy grid")
        if descriptor_files is not None:
            d = np.load(descriptor_files[i])
            if d.shape[:3] != tuple(snap.grid_shape):
                raise InputError(f"{descriptor_files[i]}: grid {d.shape[:3]} does not match the snapshot "
                                 f"{path} grid {tuple(snap.grid_shape)}")
        else:
            d = compute_descriptors(snap.atoms, tuple(snap.grid_shape), descriptor_params)
        xs.append(d.reshape(-1, d.shape[-1]))
        ys.append(np.asarray(snap.ldos).reshape(-1, snap.ldos.shape[-1]))
        snaps.append(snap)
        if progress is not None:
            progress.advance(task_id)
    symbols = sorted({s for sn in snaps for s in sn.atoms.get_chemical_symbols()})
    valence = {s: float(GTH_VALENCE[s]) for s in symbols if s in GTH_VALENCE}
    setup = setup_for(descriptor_kind, descriptor_params, first.energy_grid_ev, first.atoms.get_cell()[:],
                      tuple(first.grid_shape), temperature_k=first.electronic_temperature_k,
                      ldos_smearing_ev=first.ldos_smearing_ev, valence_electrons=valence,
                      meta={"xc": first.meta.get("functional", "lda,pz"),
                            "trained_on": [str(p) for p in paths]})
    return SnapshotData(x=xs, y=ys, snapshots=snaps, paths=list(paths), setup=setup)


def prediction_errors(pred: Any, snap: Any) -> dict[str, float]:
    """Errors of a :class:`~matterflow.electrons.predict.Prediction` against a DFT snapshot.

    Energies in meV/atom (predicted − DFT), Fermi level in meV, density MRAE
    in % over grid points where the DFT density exceeds 1e-6 of its maximum.
    """
    n = len(snap.atoms)
    rho, rho_ref = np.asarray(pred.density), np.asarray(snap.density)
    if rho.shape != rho_ref.shape:
        raise InputError(f"density: predicted grid {rho.shape} does not match the snapshot's {rho_ref.shape}")
    mask = rho_ref > 1e-6 * rho_ref.max()
    return {"band_energy_mev_per_atom": (pred.band_energy_ev - snap.band_energy_ev) / n * 1000,
            "total_energy_mev_per_atom": (pred.total_energy_ev - snap.total_energy_ev) / n * 1000,
            "fermi_mev": (pred.fermi_ev - snap.fermi_ev) * 1000,
            "density_mrae_percent": float(np.mean(np.abs(rho[mask] - rho_ref[mask]) / rho_ref[mask]) * 100)}


def floor_errors(snap: Any) -> dict[str, float]:
    """The error floor of a snapshot: observables of its *own* LDOS against its DFT values.

    What a perfect LDOS model would reach on this snapshot (LDOS width, energy
    grid and double-counting terms); same keys and units as
    :func:`prediction_errors`. Raises ``InputError`` if the snapshot holds no LDOS.
    """
    from matterflow.electrons.observables import observables_from_ldos

    if snap.ldos is None:
        raise InputError("ldos: the snapshot holds no LDOS, so its error floor cannot be computed")
    obs = observables_from_ldos(snap.ldos, snap.energy_grid_ev, snap.atoms,
                                temperature_k=snap.electronic_temperature_k,
                                ldos_smearing_ev=snap.ldos_smearing_ev, n_electrons=snap.n_electrons,
                                xc=snap.meta.get("functional", "lda,pz"))
    return prediction_errors(obs, snap)


# --------------------------------------------------------------------------- train

class Se3Settings(Params):
    """Size of the equivariant network (``architecture: se3``; see
    :class:`~matterflow.electrons.equivariant.Se3LdosModel`)."""

    n_scalars: int = Field(16, ge=1, le=256, description="width of the scalar channels")
    hidden_irreps: str = Field("16x0e+8x1o+4x2e", description="irreps of the atom features (e3nn notation)")
    lmax: int = Field(2, ge=0, le=4, description="highest degree of the spherical harmonics")
    points_per_epoch: int | None = Field(None, ge=1, description="grid points drawn per epoch; "
                                         "default: all training points")


class TrainTaskParams(Params):
    """Model, optimisation, descriptors and data split of ``electrons.train``."""

    architecture: Literal["feedforward", "se3"] = Field(
        "feedforward", description="feedforward (descriptor MLP) or se3 (e3nn network on the "
        "neighbour lists; needs descriptors.kind: neighbours)")
    se3: Se3Settings = Field(default_factory=Se3Settings, description="network size when "
                             "architecture is se3")
    hidden_layers: tuple[int, ...] = Field((64, 64), description="widths of the hidden layers")
    activation: Literal["relu", "leaky_relu", "tanh", "sigmoid", "silu", "gelu"] = Field(
        "leaky_relu", description="activation after each hidden layer")
    input_scaling: Literal["standard", "feature-minmax", "max", "none"] = Field(
        "standard", description="scaling of the descriptors")
    output_scaling: Literal["standard", "feature-minmax", "max", "none"] = Field(
        "max", description="scaling of the LDOS")
    train: TrainParams = Field(default_factory=TrainParams, description="optimisation settings")
    refit_output: bool = Field(True, description="after training, solve the output layer by least "
                               "squares on the training points (removes Adam's random LDOS offset)")
    descriptors: DescriptorTaskParams = Field(
        default_factory=DescriptorTaskParams,
        description="descriptor kind and parameters (computed here unless given as input)")
    test_snapshots: tuple[int, ...] = Field((-1,), description="snapshots held out of training (indices)")
    validation_snapshots: tuple[int, ...] = Field(
        (), description="snapshots for early stopping; empty: a random 10 % of the training points")
    temperature_k: float = Field(298.0, gt=0, description="electronic temperature of the data "
                                 "(the input electronic_temperature_k wins)", json_schema_extra={"units": "K"})
    ldos_smearing_ev: float = Field(0.05, ge=0, description="Gaussian width of the LDOS (the input "
                                    "ldos_smearing_ev wins)", json_schema_extra={"units": "eV"})
    xc: Literal["lda,pz", "lda,vwn"] = Field("lda,pz", description="LDA of the DFT data")
    energy_correction: bool = Field(
        False, description="after training, fit the energy correction (a local ridge model of the band and "
        "total energy residual, see matterflow.electrons.energy_correction) on the training snapshots; "
        "needs the inputs band_energy_ev and total_energy_ev")

    @model_validator(mode="after")
    def _se3_reads_neighbours(self) -> TrainTaskParams:
        if (self.architecture == "se3") != (self.descriptors.kind == "neighbours"):
            raise ValueError(f"architecture {self.architecture!r} with descriptors.kind "
                             f"{self.descriptors.kind!r}: the se3 network reads (only) the "
                             "'neighbours' descriptors")
        return self


@dataclass(frozen=True)
class TrainedModel:
    model: np.ndarray = bytes_field("the saved model file")
    train_loss: np.ndarray = quantity("dimensionless", "(epochs,) MSE of scaled LDOS")
    val_loss: np.ndarray = quantity("dimensionless", "(epochs,) MSE of scaled LDOS")
    learning_rate: np.ndarray = quantity("dimensionless", "(epochs,) learning rate of each epoch")
    best_epoch: int = quantity("dimensionless", "epoch of the saved weights")
    n_parameters: int = quantity("dimensionless", "weights and biases of the network")
    n_train_points: int = quantity("dimensionless", "grid points trained on")
    train_seconds: float = quantity("s", "wall time of training")
    descriptor_seconds: float = quantity("s", "wall time of the descriptors")
    test_ldos_mae: float = quantity("1/(eV*Å^3)", "mean absolute LDOS error on the test snapshots")


def _train_figures(outputs: dict, params: TrainTaskParams) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ep = np.arange(1, len(outputs["train_loss"]) + 1)
    ax.semilogy(ep, outputs["train_loss"], label="training")
    ax.semilogy(ep, outputs["val_loss"], label="validation")
    ax.axvline(int(outputs["best_epoch"]) + 1, color="k", ls=":", lw=1, label="saved weights")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled LDOS)")
    ax.legend()
    fig.tight_layout()
    return {"Learning curves": fig}


def _stacked_atoms(positions: Any, cell: Any, numbers: Any, n_snap: int) -> list:
    pos = np.asarray(positions, float)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.shape[0] != n_snap:
        raise InputError(f"positions: {pos.shape[0]} structures for {n_snap} LDOS snapshots")
    cells = np.asarray(cell, float)
    nums = np.asarray(numbers)
    return [atoms_from_arrays(pos[i], cells if cells.ndim == 2 else cells[i], nums if nums.ndim == 1 else nums[i])
            for i in range(n_snap)]


def _attach_correction(model: Any, atoms: list, grid: tuple[int, int, int], fit_idx: list[int],
                       band_energy_ev: Any, total_energy_ev: Any) -> None:
    """Fit the energy correction of ``model`` on the snapshots ``fit_idx`` and store it in the model."""
    from matterflow.electrons.correct import EnergyReference, attach_energy_correction

    energies = {}
    for name, value in (("band_energy_ev", band_energy_ev), ("total_energy_ev", total_energy_ev)):
        if value is None:
            raise InputError(f"{name}: params.energy_correction needs the DFT {name} of every snapshot "
                             f"as an input (e.g. dft.{name})")
        v = np.atleast_1d(np.asarray(value, dtype=float))
        if v.shape != (len(atoms),):
            raise InputError(f"{name}: one value per snapshot ({len(atoms)}) needed; got shape {v.shape}")
        energies[name] = v
    refs = [EnergyReference(atoms[i], grid, float(energies["band_energy_ev"][i]),
                            float(energies["total_energy_ev"][i])) for i in fit_idx]
    attach_energy_correction(model, refs)


@task("electrons.train", params=TrainTaskParams, figures=_train_figures, version="1")
def train(ldos: np.ndarray, energy_grid_ev: np.ndarray, positions: np.ndarray, cell: np.ndarray,
          numbers: np.ndarray, descriptors: np.ndarray | None = None,
          electronic_temperature_k: Any = None, ldos_smearing_ev: Any = None,
          band_energy_ev: np.ndarray | None = None, total_energy_ev: np.ndarray | None = None, *,
          params: TrainTaskParams) -> TrainedModel:
    """Train the descriptors → LDOS network (feed-forward, or se3 on neighbour lists) on DFT
    snapshots (some held out).

    ``band_energy_ev`` and ``total_energy_ev`` (n_snapshots,), eV per cell, are the DFT
    energies the energy correction is fitted to (``params.energy_correction``).
    """
    import time

    from matterflow.electrons.descriptors import compute_descriptors
    from matterflow.electrons.model import FeedForwardLdosModel
    from matterflow.electrons.observables import GTH_VALENCE

    y_all = np.asarray(ldos)
    if y_all.ndim != 5 or y_all.shape[0] < 2:
        raise InputError(f"ldos: at least two stacked snapshots (n, nx, ny, nz, ne) are needed (one to "
                         f"train, one to test); got shape {y_all.shape}")
    n_snap, grid = y_all.shape[0], tuple(int(g) for g in y_all.shape[1:4])
    atoms = _stacked_atoms(positions, cell, numbers, n_snap)
    dparams = params.descriptors.descriptor_params
    t0 = time.perf_counter()
    if descriptors is None:
        d = np.stack([compute_descriptors(a, grid, dparams) for a in atoms])
    else:
        d = np.asarray(descriptors)
        from matterflow.electrons.descriptors import n_features

        if d.ndim == 5 and d.shape[-1] != n_features(dparams):
            raise InputError(f"descriptors: {d.shape[-1]} features, but params.descriptors gives "
                             f"{n_features(dparams)}; use the same descriptor parameters in both steps")
    t_desc = time.perf_counter() - t0

    def resolve(idx: tuple[int, ...], name: str) -> list[int]:
        for i in idx:
            if not -n_snap <= i < n_snap:
                raise InputError(f"params.{name}: index {i} out of range for {n_snap} snapshots")
        return sorted({i % n_snap for i in idx})

    test = resolve(params.test_snapshots, "test_snapshots")
    val = resolve(params.validation_snapshots, "validation_snapshots")
    fit_idx = [i for i in range(n_snap) if i not in test and i not in val]
    if not fit_idx:
        raise InputError("params.test_snapshots/validation_snapshots: no snapshot is left to train on")
    energies = _pick(energy_grid_ev, 0, 1, "energy_grid_ev")
    x, y = training_arrays(d, y_all, fit_idx)
    if y.shape[1] != energies.shape[0]:
        raise InputError(f"energy_grid_ev: {energies.shape[0]} energies, but the LDOS has {y.shape[1]}")
    xv, yv = training_arrays(d, y_all, val) if val else (None, None)
    first = lambda v, default: default if v is None else float(np.asarray(v).ravel()[0])  # noqa: E731
    symbols = sorted({s for a in atoms for s in a.get_chemical_symbols()})
    setup = setup_for(params.descriptors.kind, dparams, energies, atoms[0].get_cell()[:], grid,
                      temperature_k=first(electronic_temperature_k, params.temperature_k),
                      ldos_smearing_ev=first(ldos_smearing_ev, params.ldos_smearing_ev),
                      valence_electrons={s: float(GTH_VALENCE[s]) for s in symbols if s in GTH_VALENCE},
                      meta={"xc": params.xc})
    if params.architecture == "se3":
        from matterflow.electrons.equivariant import Se3LdosModel

        tp, s3 = params.train, params.se3
        model = Se3LdosModel(n_scalars=s3.n_scalars, hidden_irreps=s3.hidden_irreps, lmax=s3.lmax,
                             epochs=tp.max_epochs, batch_size=tp.batch_size,
                             learning_rate=tp.learning_rate, seed=tp.seed, setup=setup,
                             refit_output=params.refit_output, points_per_epoch=s3.points_per_epoch)
    else:
        model = FeedForwardLdosModel(params.hidden_layers, params.activation, params.input_scaling,
                                     params.output_scaling, params.train, setup,
                                     refit_output=params.refit_output)
    t0 = time.perf_counter()
    model.fit(x, y, xv, yv)
    seconds = time.perf_counter() - t0
    if params.energy_correction:
        _attach_correction(model, atoms, grid, fit_idx, band_energy_ev, total_energy_ev)
    xt, yt = training_arrays(d, y_all, test) if test else (x[:1], y[:1])
    mae = float(np.mean(np.abs(model.predict(xt) - yt)))
    h = model.history_
    n_par = sum(int(p.numel()) for p in model.network_.parameters())
    return TrainedModel(model=to_bytes_array(model.to_bytes()),
                        train_loss=np.array(h.train_loss), val_loss=np.array(h.val_loss),
                        learning_rate=np.array(h.learning_rate), best_epoch=int(h.best_epoch),
                        n_parameters=n_par, n_train_points=int(x.shape[0]), train_seconds=seconds,
                        descriptor_seconds=t_desc, test_ldos_mae=mae)


# --------------------------------------------------------------------------- predict

class PredictTaskParams(Params):
    """Which structure, on which grid, how finely chunked."""

    snapshot: int = Field(-1, description="index of the structure when the inputs are stacked")
    chunk_points: int = Field(16384, ge=1, le=10_000_000, description="grid points per chunk (memory bound)")
    repeat: tuple[int, int, int] = Field((1, 1, 1), description="supercell of the structure to predict")
    grid: tuple[int, int, int] | None = Field(None, description="grid (nx, ny, nz) of the predicted "
                                              "cell; default: grid_shape x repeat, else the training "
                                              "spacing")
    return_ldos: bool = Field(False, description="also return the whole LDOS (memory: n_points x "
                              "n_energies float32)")
    spool_ldos: bool = Field(False, description="pass 1 writes each chunk's LDOS (float32) to a "
                             "temporary folder on this machine's disk (n_points x n_energies x 4 "
                             "bytes) and pass 2 reads it back instead of recomputing descriptors and "
                             "network; workers must share that disk")


@dataclass(frozen=True)
class PredictedObservables:
    dos: np.ndarray = quantity("1/eV", "(n_energies,) density of states of the cell, both spins")
    energy_grid_ev: np.ndarray = quantity("eV", "(n_energies,)")
    density: np.ndarray = quantity("1/Å^3", "(nx, ny, nz) electron density")
    fermi_ev: float = quantity("eV", "Fermi level at the electronic temperature")
    band_energy_ev: float = quantity("eV", "band energy of the cell")
    total_energy_ev: float = quantity("eV", "total (free) energy of the cell")
    n_atoms: int = quantity("dimensionless", "atoms in the predicted cell")
    points_per_s: float = quantity("1/s", "grid points per second (descriptors + LDOS + density)")
    ldos: np.ndarray | None = quantity("1/(eV*Å^3)", "(nx, ny, nz, n_energies) with return_ldos",
                                       default=None)


def _model_from_input(model: Any) -> Any:
    from pathlib import Path

    from matterflow.electrons.model import LdosModel, load_model, model_from_bytes

    if isinstance(model, LdosModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    return model_from_bytes(from_bytes_array(model, field="model",
                                             accepted="an LdosModel (electrons.train's model)"))


@task("electrons.predict", params=PredictTaskParams, version="1")
def predict(model: Any, positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray,
            grid_shape: np.ndarray | None = None, *, params: PredictTaskParams) -> PredictedObservables:
    """DOS, density, Fermi level, band and total energy of a structure from a trained LDOS model."""
    from matterflow.electrons.predict import predict_observables

    m = _model_from_input(model)
    i = params.snapshot
    atoms = atoms_from_arrays(_pick(positions, i, 2, "positions"), _pick(cell, i, 2, "cell"),
                              _pick(numbers, i, 1, "numbers"))
    grid = params.grid
    if grid is None and grid_shape is not None:
        grid = tuple(int(g) * r for g, r in zip(_pick(grid_shape, i, 1, "grid_shape"), params.repeat,
                                                 strict=True))
    if params.repeat != (1, 1, 1):
        atoms = atoms.repeat(params.repeat)
    # scheduler None: the chunks go to the executor's workers when this runs on its cluster
    import tempfile

    with tempfile.TemporaryDirectory(prefix="matterflow-ldos-") as tmp:
        p = predict_observables(m, atoms, grid_shape=grid, chunk_points=params.chunk_points,
                                scheduler=None, return_ldos=params.return_ldos,
                                spool_dir=tmp if params.spool_ldos else None)
    return PredictedObservables(dos=p.dos, energy_grid_ev=p.energy_grid_ev, density=p.density,
                                fermi_ev=p.fermi_ev, band_energy_ev=p.band_energy_ev,
                                total_energy_ev=p.total_energy_ev, n_atoms=p.n_atoms,
                                points_per_s=p.timings["points_per_s"], ldos=p.ldos)


# --------------------------------------------------------------------------- evaluate

class EvaluateParams(Params):
    snapshot: int = Field(-1, description="index of the reference snapshot when inputs are stacked")


@dataclass(frozen=True)
class Evaluation:
    band_energy_error_mev_per_atom: float = quantity("meV", "predicted - DFT, per atom")
    total_energy_error_mev_per_atom: float = quantity("meV", "predicted - DFT, per atom")
    fermi_error_mev: float = quantity("meV", "predicted - DFT Fermi level")
    density_mrae_percent: float = quantity("%", "mean |Δn| / n over grid points with n > 1e-6 of max")
    dos_mae: float = quantity("1/eV", "mean absolute DOS error")
    dos_predicted: np.ndarray = quantity("1/eV", "(n_energies,)")
    dos_reference: np.ndarray = quantity("1/eV", "(n_energies,)")
    energy_grid_ev: np.ndarray = quantity("eV", "(n_energies,)")
    fermi_predicted_ev: float = quantity("eV", "")
    fermi_reference_ev: float = quantity("eV", "")
    density_predicted_slice: np.ndarray = quantity("1/Å^3", "(nx, ny) at z = 0")
    density_reference_slice: np.ndarray = quantity("1/Å^3", "(nx, ny) at z = 0")
    table: list = quantity("", "rows 'quantity | ML | DFT | error'")


def _evaluate_figures(outputs: dict, params: EvaluateParams) -> dict:
    import matplotlib.pyplot as plt

    e = outputs["energy_grid_ev"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(e, outputs["dos_reference"], "k", lw=1.5, label="DFT")
    ax.plot(e, outputs["dos_predicted"], "C1--", lw=1.5, label="ML (LDOS model)")
    ax.axvline(float(outputs["fermi_reference_ev"]), color="k", ls=":", lw=1)
    ax.axvline(float(outputs["fermi_predicted_ev"]), color="C1", ls=":", lw=1)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("DOS (states/eV/cell)")
    ax.set_title("held-out snapshot (dotted: Fermi levels)")
    ax.legend()
    fig.tight_layout()
    ref, pred = outputs["density_reference_slice"], outputs["density_predicted_slice"]
    fig2, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    for ax2, data, title in ((axes[0], ref, "DFT"), (axes[1], pred, "ML")):
        im = ax2.imshow(data.T, origin="lower", vmin=lo, vmax=hi, cmap="viridis")
        ax2.set_title(f"density, k = 0 ({title})")
        fig2.colorbar(im, ax=ax2, shrink=0.8, label="e/Å³")
    im = axes[2].imshow((pred - ref).T, origin="lower", cmap="RdBu_r")
    axes[2].set_title("ML − DFT")
    fig2.colorbar(im, ax=axes[2], shrink=0.8, label="e/Å³")
    fig2.tight_layout()
    rows = [str(r).split(" | ") for r in outputs["table"]]
    fig3, ax3 = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 0.6))
    ax3.axis("off")
    tab = ax3.table(cellText=rows[1:], colLabels=rows[0], loc="center")
    tab.scale(1, 1.3)
    fig3.tight_layout()
    return {"DOS: ML vs DFT": fig, "Density slice": fig2, "Errors": fig3}


@task("electrons.evaluate", params=EvaluateParams, figures=_evaluate_figures, version="1")
def evaluate(dos: np.ndarray, density: np.ndarray, fermi_ev: Any, band_energy_ev: Any,
             total_energy_ev: Any, energy_grid_ev: np.ndarray, reference_dos: np.ndarray,
             reference_density: np.ndarray, reference_fermi_ev: Any, reference_band_energy_ev: Any,
             reference_total_energy_ev: Any, reference_positions: np.ndarray, *,
             params: EvaluateParams) -> Evaluation:
    """Errors of a prediction against the DFT snapshot: energies per atom, density MRAE, DOS."""
    i = params.snapshot
    rho_ref = _pick(reference_density, i, 3, "reference_density")
    rho = np.asarray(density)
    if rho.shape != rho_ref.shape:
        raise InputError(f"density: predicted grid {rho.shape} does not match the reference {rho_ref.shape}")
    dos, dos_ref = np.asarray(dos), _pick(reference_dos, i, 1, "reference_dos")
    if dos.shape != dos_ref.shape:
        raise InputError(f"dos: {dos.shape} energies predicted, reference has {dos_ref.shape}")
    n = _pick(reference_positions, i, 2, "reference_positions").shape[0]

    def value(v: Any, stacked: bool) -> float:
        a = np.asarray(v, dtype=float).ravel()
        return float(a[i] if stacked and a.size > 1 else a[0])

    eb, eb_ref = value(band_energy_ev, False), value(reference_band_energy_ev, True)
    et, et_ref = value(total_energy_ev, False), value(reference_total_energy_ev, True)
    ef, ef_ref = value(fermi_ev, False), value(reference_fermi_ev, True)
    mask = rho_ref > 1e-6 * rho_ref.max()
    mrae = float(np.mean(np.abs(rho[mask] - rho_ref[mask]) / rho_ref[mask]) * 100)
    band_err, tot_err = (eb - eb_ref) / n * 1000, (et - et_ref) / n * 1000
    table = ["quantity | ML | DFT | error",
             f"band energy (eV/cell) | {eb:.4f} | {eb_ref:.4f} | {band_err:+.2f} meV/atom",
             f"total energy (eV/cell) | {et:.4f} | {et_ref:.4f} | {tot_err:+.2f} meV/atom",
             f"Fermi level (eV) | {ef:.4f} | {ef_ref:.4f} | {(ef - ef_ref) * 1000:+.1f} meV",
             f"density (e/Å³, mean) | {rho.mean():.5f} | {rho_ref.mean():.5f} | MRAE {mrae:.2f} %"]
    return Evaluation(band_energy_error_mev_per_atom=band_err, total_energy_error_mev_per_atom=tot_err,
                      fermi_error_mev=(ef - ef_ref) * 1000, density_mrae_percent=mrae,
                      dos_mae=float(np.mean(np.abs(dos - dos_ref))), dos_predicted=dos, dos_reference=dos_ref,
                      energy_grid_ev=np.asarray(energy_grid_ev, float).reshape(-1)[-dos.shape[0]:],
                      fermi_predicted_ev=ef, fermi_reference_ev=ef_ref,
                      density_predicted_slice=rho[:, :, 0], density_reference_slice=rho_ref[:, :, 0],
                      table=table)


TASKS: list = [train, predict, evaluate]
