"""LDOS models: the interface every architecture implements, and the feed-forward network.

A model maps the descriptors of one grid point (n_features,) to the LDOS at
that point over the energy grid (n_energies,) in states/(eV·Å³). What a
saved model holds is enough to predict on a new structure:

- the network weights and architecture,
- the input and output :class:`~matterflow.electrons.scaling.Scaler`,
- :class:`LdosSetup`: descriptor kind and parameters, the training grid
  spacing (Å), the energy grid (eV), electronic temperature (K), LDOS
  smearing (eV) and valence electrons per species.

Architectures register with :func:`register_architecture`; :func:`load_model`
reads any registered one. An SE(3)-equivariant network implements
:class:`LdosModel` (``fit``, ``predict``, ``to_dict``/``from_dict``) and
registers under its own name; prediction, the calculator and the CLI only
use the interface.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matterflow.core.errors import InputError, NotFittedError
from matterflow.electrons.scaling import Scaler, ScalingMode
from matterflow.electrons.training import TrainParams, TrainResult, build_feedforward, train_network

__all__ = ["LdosSetup", "LdosModel", "FeedForwardLdosModel", "EnsembleLdosModel", "load_model",
           "register_architecture",
           "model_from_bytes"]

FORMAT = "matterflow-ldos-model"
_ARCHITECTURES: dict[str, type[LdosModel]] = {}


@dataclass(frozen=True)
class LdosSetup:
    """What prediction needs besides the network (saved with the model).

    Attributes
    ----------
    energy_grid_ev : tuple of float
        Energies of the LDOS channels, eV (n_energies,).
    descriptor_kind : str
        ``"bispectrum"`` or ``"gaussian"`` (see :mod:`matterflow.electrons.descriptors`).
    descriptor_params : dict
        Parameters of the descriptor model (``BispectrumParams`` / ``GaussianDescriptorParams``).
    grid_spacing_ang : tuple of 3 float
        Spacing of the training grid along the three cell vectors, Å.
    temperature_k : float
        Electronic temperature of the training data, K.
    ldos_smearing_ev : float
        Gaussian broadening of the training LDOS, eV.
    valence_electrons : dict
        Valence electrons per chemical symbol (e.g. ``{"Al": 3}``).
    """

    energy_grid_ev: tuple[float, ...]
    descriptor_kind: str = "bispectrum"
    descriptor_params: dict[str, Any] = field(default_factory=dict)
    grid_spacing_ang: tuple[float, float, float] = (0.0, 0.0, 0.0)
    temperature_k: float = 298.0
    ldos_smearing_ev: float = 0.1
    valence_electrons: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def energies(self) -> np.ndarray:
        return np.asarray(self.energy_grid_ev, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["energy_grid_ev"] = [float(e) for e in self.energy_grid_ev]
        d["grid_spacing_ang"] = [float(e) for e in self.grid_spacing_ang]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LdosSetup:
        d = dict(d)
        d["energy_grid_ev"] = tuple(float(e) for e in d["energy_grid_ev"])
        d["grid_spacing_ang"] = tuple(float(e) for e in d["grid_spacing_ang"])
        return cls(**d)


# architectures in modules with heavy imports (e3nn), imported only when a file names them
_LAZY_ARCHITECTURES = {"se3": "matterflow.electrons.equivariant",
                       "mala-feedforward": "matterflow.electrons.mala_model"}


def register_architecture(name: str) -> Callable[[type[LdosModel]], type[LdosModel]]:
    """Class decorator: make an :class:`LdosModel` subclass loadable by :func:`load_model`."""

    def wrap(cls: type[LdosModel]) -> type[LdosModel]:
        cls.architecture = name
        _ARCHITECTURES[name] = cls
        return cls

    return wrap


class LdosModel(ABC):
    """Interface of a descriptors → LDOS model (scikit-learn style).

    ``fit(x, y)`` learns from descriptors ``x`` (n_points, n_features) and LDOS
    ``y`` (n_points, n_energies) and returns self; ``predict(x)`` gives the LDOS
    (n_points, n_energies) in the units of ``y``; ``save(path)`` /
    :func:`load_model` round-trip the model with its :class:`LdosSetup`.
    """

    architecture: ClassVar[str] = ""
    setup: LdosSetup | None

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, **kwargs: Any) -> LdosModel:
        """Learn from descriptors (n, n_features) and LDOS (n, n_energies); returns self."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """LDOS (n, n_energies) of descriptors (n, n_features)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model (tensors, lists, numbers)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> LdosModel:
        """Inverse of :meth:`to_dict`."""

    # shared persistence --------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The saved model as bytes (what :meth:`save` writes)."""
        import torch

        buf = io.BytesIO()
        torch.save({"format": FORMAT, "version": 1, "architecture": self.architecture,
                    "setup": self.setup.to_dict() if self.setup else None, "model": self.to_dict()}, buf)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (network, scalers, setup) to ``path`` atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LdosModel:
        """Read a model written by :meth:`save` (any registered architecture)."""
        return load_model(path)


def model_from_bytes(data: bytes, source: str = "model") -> LdosModel:
    """Rebuild a model from :meth:`LdosModel.to_bytes` output."""
    from matterflow.core.safeload import load_torch

    # the magic is checked first; weights_only=True: tensors and plain values, no code
    blob = load_torch(bytes(data), source=source, what="a matterflow LDOS model file")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{source}: not a matterflow LDOS model file (format field missing)")
    arch = blob.get("architecture")
    if arch in _LAZY_ARCHITECTURES and arch not in _ARCHITECTURES:
        import importlib

        importlib.import_module(_LAZY_ARCHITECTURES[arch])  # registers itself on import
    if arch not in _ARCHITECTURES:
        raise InputError(f"{source}: architecture {arch!r} unknown; known: {', '.join(_ARCHITECTURES)}")
    model = _ARCHITECTURES[arch].from_dict(blob["model"])
    model.setup = LdosSetup.from_dict(blob["setup"]) if blob.get("setup") else None
    return model


def load_model(path: str | os.PathLike) -> LdosModel:
    """Read a saved LDOS model (file written by :meth:`LdosModel.save`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if path.suffix.lower() == ".zip":  # a MALA model archive (imported, nothing unpickled)
        import importlib

        mala = importlib.import_module(_LAZY_ARCHITECTURES["mala-feedforward"])  # by name: no circle
        if mala.is_mala_archive(path):
            return mala.load_mala_model(path)
    return model_from_bytes(path.read_bytes(), source=str(path))


@register_architecture("feedforward")
class FeedForwardLdosModel(LdosModel):
    """Feed-forward network descriptors → LDOS with input/output scaling (MALA's model).

    Parameters
    ----------
    hidden_layers : tuple of int
        Widths of the hidden layers.
    activation : str
        ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``silu`` or ``gelu``.
    input_scaling, output_scaling : str
        Scaling modes of descriptors and LDOS (:mod:`~matterflow.electrons.scaling`).
    train : TrainParams or dict
        Optimisation settings (learning rate, batch, epochs, early stopping,
        LR schedule, ``nproc`` for DistributedDataParallel, seed).
    setup : LdosSetup, optional
        Descriptor/energy-grid information saved with the model.
    refit_output : bool
        After training, replace the output layer by the least-squares solution
        on the training points (:func:`refit_output_layer`). Mini-batch Adam
        stops with an output layer that is off by a random offset (the LDOS of
        the *training* snapshots, summed over the cell, is then biased by tens
        of meV/atom in band energy); the exact linear solve removes it.
    """

    def __init__(self, hidden_layers: tuple[int, ...] = (128, 128), activation: str = "leaky_relu",
                 input_scaling: ScalingMode = "standard", output_scaling: ScalingMode = "max",
                 train: TrainParams | dict | None = None, setup: LdosSetup | None = None,
                 refit_output: bool = False):
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.input_scaling = input_scaling
        self.output_scaling = output_scaling
        self.train = train
        self.setup = setup
        self.refit_output = refit_output

    def _train_params(self) -> TrainParams:
        if isinstance(self.train, TrainParams):
            return self.train
        return TrainParams(**(self.train or {}))

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
            on_epoch: Any = None, val_fraction: float = 0.1,
            trust_pickle: bool = False) -> FeedForwardLdosModel:
        """Train on descriptors ``x`` (n, n_features) and LDOS ``y`` (n, n_energies).

        Without ``x_val``/``y_val`` a random ``val_fraction`` of the points is
        held out for early stopping. ``checkpoint_dir`` makes the run resumable;
        ``trust_pickle`` also resumes from a checkpoint of an older matterflow
        (pickled objects, which can run code).
        """
        params = self._train_params()
        x = _as_2d(x, "x")
        y = _as_2d(y, "y")
        if x.shape[0] != y.shape[0]:
            raise InputError(f"x and y: the same number of grid points is needed; got {x.shape[0]} and {y.shape[0]}")
        if self.setup is not None and len(self.setup.energy_grid_ev) != y.shape[1]:
            raise InputError(f"y: {len(self.setup.energy_grid_ev)} energies expected (setup.energy_grid_ev); "
                             f"got {y.shape[1]}")
        if x_val is None or y_val is None:
            rng = np.random.default_rng(params.seed)
            perm = rng.permutation(x.shape[0])
            n_val = max(1, int(round(val_fraction * x.shape[0])))
            x_val, y_val = x[perm[:n_val]], y[perm[:n_val]]
            x, y = x[perm[n_val:]], y[perm[n_val:]]
        x_val, y_val = _as_2d(x_val, "x_val"), _as_2d(y_val, "y_val")
        self.x_scaler_ = Scaler(self.input_scaling).fit(x)
        self.y_scaler_ = Scaler(self.output_scaling).fit(y)
        self.n_features_in_, self.n_energies_ = x.shape[1], y.shape[1]
        res = train_network(build_feedforward, self._net_args(),
                            self.x_scaler_.transform(x), self.y_scaler_.transform(y),
                            self.x_scaler_.transform(x_val), self.y_scaler_.transform(y_val),
                            params, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch,
                            trust_pickle=trust_pickle)
        self.history_: TrainResult = res
        self._build(res.state_dict)
        if self.refit_output:
            refit_output_layer(self.network_, self.x_scaler_.transform(x), self.y_scaler_.transform(y))
        return self

    def _net_args(self) -> dict[str, Any]:
        return {"n_in": int(self.n_features_in_), "n_out": int(self.n_energies_),
                "hidden": [int(h) for h in self.hidden_layers], "activation": self.activation}

    def _build(self, state: dict[str, Any]) -> None:
        net = build_feedforward(**self._net_args())
        net.load_state_dict(state)
        net.eval()
        self.network_ = net

    def predict(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """LDOS (n, n_energies), states/(eV·Å³), of descriptors (n, n_features)."""
        import torch

        if not hasattr(self, "network_"):
            raise NotFittedError("FeedForwardLdosModel: call fit() (or load a saved model) before predict")
        x = _as_2d(x, "descriptors")
        if x.shape[1] != self.n_features_in_:
            raise InputError(f"descriptors: {self.n_features_in_} components per grid point expected "
                             f"(the model's descriptor parameters); got {x.shape[1]}")
        out = np.empty((x.shape[0], self.n_energies_), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                xb = torch.from_numpy(self.x_scaler_.transform(x[s:s + batch_size]))
                out[s:s + batch_size] = self.y_scaler_.inverse_transform(self.network_(xb).numpy())
        return out

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "network_"):
            raise NotFittedError("FeedForwardLdosModel: nothing to save before fit()")
        hist = getattr(self, "history_", None)
        return {"hidden_layers": [int(h) for h in self.hidden_layers], "activation": self.activation,
                "input_scaling": self.input_scaling, "output_scaling": self.output_scaling,
                "train": self._train_params().model_dump(), "refit_output": bool(self.refit_output),
                "n_features_in": int(self.n_features_in_), "n_energies": int(self.n_energies_),
                "x_scaler": self.x_scaler_.to_dict(), "y_scaler": self.y_scaler_.to_dict(),
                "state_dict": {k: v.clone() for k, v in self.network_.state_dict().items()},
                "history": {"train_loss": list(hist.train_loss), "val_loss": list(hist.val_loss),
                            "best_epoch": hist.best_epoch} if hist else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedForwardLdosModel:
        m = cls(tuple(data["hidden_layers"]), data["activation"], data["input_scaling"],
                data["output_scaling"], TrainParams(**data["train"]),
                refit_output=bool(data.get("refit_output", False)))
        m.n_features_in_, m.n_energies_ = data["n_features_in"], data["n_energies"]
        m.x_scaler_ = Scaler.from_dict(data["x_scaler"])
        m.y_scaler_ = Scaler.from_dict(data["y_scaler"])
        m._build(data["state_dict"])
        h = data.get("history")
        if h:
            m.history_ = TrainResult(state_dict={}, train_loss=h["train_loss"], val_loss=h["val_loss"],
                                     best_epoch=h["best_epoch"])
        return m


def refit_output_layer(network: Any, x_scaled: np.ndarray, y_scaled: np.ndarray, *,
                       ridge: float = 1e-8, chunk: int = 65536, last: Any = None,
                       body: Any = None) -> None:
    """Set the last ``Linear`` layer of ``network`` to the least-squares fit on the given points.

    With the hidden layers fixed the network is linear in the output layer's
    weights and bias, so the mean squared error over the points has one exact
    minimiser: solve ``[h, 1] W = y`` by the normal equations (accumulated in
    float64 chunk by chunk, a ridge of ``ridge`` times the mean diagonal for
    stability). At that minimum the residuals sum to zero for every energy,
    i.e. the training LDOS summed over all training points (their DOS) is
    reproduced exactly.

    Parameters
    ----------
    network : torch.nn.Sequential
        Network whose last module is a ``torch.nn.Linear``; changed in place.
    x_scaled, y_scaled : ndarray, shape (n, n_in), (n, n_out)
        Scaled inputs and targets (the training points).
    ridge : float
        Relative Tikhonov regularisation.
    last, body : torch.nn.Linear and callable, optional
        The output layer and the map from inputs to its input, for networks that are
        not a ``Sequential`` (default: ``network[-1]`` and ``network[:-1]``).
    """
    import torch

    last = network[-1] if last is None else last
    if not isinstance(last, torch.nn.Linear):
        raise InputError("refit_output: the network's last module must be a torch.nn.Linear")
    body = network[:-1] if body is None else body
    n_h = last.in_features
    gram = np.zeros((n_h + 1, n_h + 1))
    rhs = np.zeros((n_h + 1, last.out_features))
    with torch.no_grad():
        for s in range(0, x_scaled.shape[0], chunk):
            xb = torch.from_numpy(np.ascontiguousarray(x_scaled[s:s + chunk])).to(last.weight.dtype)
            h = body(xb).double().numpy()
            h = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
            gram += h.T @ h
            rhs += h.T @ np.asarray(y_scaled[s:s + chunk], dtype=np.float64)
    gram[np.diag_indices_from(gram)] += ridge * float(np.mean(np.diag(gram)))
    sol = np.linalg.solve(gram, rhs)                     # (n_h + 1, n_out)
    if not np.all(np.isfinite(sol)):
        from matterflow.core.errors import ComputeError

        raise ComputeError("refit_output: the least-squares output layer is not finite")
    with torch.no_grad():
        last.weight.copy_(torch.from_numpy(sol[:-1].T.copy()).to(last.weight.dtype))
        last.bias.copy_(torch.from_numpy(sol[-1].copy()).to(last.bias.dtype))


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise InputError(f"{name}: an array (..., n_columns) is needed; got shape {a.shape}")
    a = a.reshape(-1, a.shape[-1])
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return a


@register_architecture("ensemble")
class EnsembleLdosModel(LdosModel):
    """Mean LDOS of several models (e.g. the same network trained from different seeds).

    The errors of one network's LDOS, integrated over a cell, are systematic (one sign
    for all snapshots) and differ from seed to seed; averaging members cancels part of
    them. The spread of the members' LDOS (:meth:`predict_std`) is an uncertainty.

    Parameters
    ----------
    members : sequence of LdosModel
        Models to average (fitted, or fitted by :meth:`fit`).
    setup : LdosSetup, optional
    """

    def __init__(self, members: tuple[LdosModel, ...] | list[LdosModel] = (), setup: LdosSetup | None = None):
        self.members = members
        self.setup = setup

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
            on_epoch: Any = None, **kwargs: Any) -> EnsembleLdosModel:
        """Fit every member (checkpoints in ``checkpoint_dir/member-i``); returns self."""
        if not self.members:
            raise InputError("members: at least one model is needed")
        for i, m in enumerate(self.members):
            ck = Path(checkpoint_dir) / f"member-{i}" if checkpoint_dir is not None else None
            m.fit(x, y, x_val, y_val, checkpoint_dir=ck, on_epoch=on_epoch, **kwargs)
        self.members_ = list(self.members)
        return self

    def _fitted(self) -> list[LdosModel]:
        if not hasattr(self, "members_"):
            raise NotFittedError("EnsembleLdosModel: call fit() (or load a saved model) before predict")
        return self.members_

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Mean LDOS (n, n_energies) of the members."""
        members = self._fitted()
        out = members[0].predict(x)
        for m in members[1:]:
            out += m.predict(x)
        return out / len(members)

    def predict_std(self, x: np.ndarray) -> np.ndarray:
        """Standard deviation (n, n_energies) of the members' LDOS."""
        return np.std([m.predict(x) for m in self._fitted()], axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"members": [{"architecture": m.architecture, "model": m.to_dict()} for m in self._fitted()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleLdosModel:
        members = []
        for d in data["members"]:
            if d["architecture"] not in _ARCHITECTURES:
                raise InputError(f"ensemble member: architecture {d['architecture']!r} unknown")
            members.append(_ARCHITECTURES[d["architecture"]].from_dict(d["model"]))
        m = cls(members)
        m.members_ = members
        return m
