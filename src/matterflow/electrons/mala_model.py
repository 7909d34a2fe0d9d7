"""MALA model archives (``Be_model.zip``): network, data scalers, descriptor settings.

A MALA 1.x model archive holds ``NAME.params.json`` (MALA's parameters: network layer
sizes and activations, scaler types, descriptor and LDOS grid settings),
``NAME.network.pth`` (the ``torch`` state dict of the feed-forward network),
``NAME.iscaler.pkl`` / ``NAME.oscaler.pkl`` (the input / output ``DataScaler`` objects,
pickled; MALA ≥ 1.4 may write ``.json`` instead) and ``NAME.info.json``.

Nothing in the archive is executed:

- the state dict is read with ``torch.load(..., weights_only=True)`` (:mod:`matterflow.core.safeload`);
- the scaler pickles are read by :class:`ScalerUnpickler`, an :class:`pickle.Unpickler`
  whose ``find_class`` admits only MALA's ``DataScaler`` (replaced by a plain record of its
  fields), torch's tensor reconstruction (replaced by a NumPy array built here from the raw
  bytes of the storage, never by torch's own unpickling) and ``collections.OrderedDict``;
  any other global is an :class:`InputError` naming the file and the global;
- every scaler field is checked to be a bool, number, string or array.

:class:`MalaLdosModel` is a :class:`~matterflow.electrons.model.LdosModel` (architecture
``"mala-feedforward"``): it predicts as MALA's ``Predictor`` does (float32: input scaler,
``Linear``/activation layers, output scaler, negative LDOS set to zero when MALA's
``restrict_targets`` is ``"zero_out_negative"``) and saves as a matterflow model file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError, NotFittedError
from matterflow.electrons.model import LdosModel, LdosSetup, register_architecture

__all__ = ["ScalerUnpickler", "MalaScaler", "MalaLdosModel", "load_mala_model", "is_mala_archive",
           "read_mala_scaler", "predict_from_descriptors"]

_SCALER_FIELDS = {"use_ddp", "typestring", "scale_standard", "scale_normal", "scale_minmax",
                  "feature_wise", "cantransform", "means", "stds", "maxs", "mins", "total_mean",
                  "total_std", "total_max", "total_min", "total_data_count"}
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32}


class _ScalerRecord:
    """What a pickled MALA ``DataScaler`` becomes: its fields, nothing callable."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"DataScaler state is a {type(state).__name__}, not a dict")
        self.fields = state


class _StoragePlaceholder:
    def __init__(self, dtype: Any, numel: int, key: str):
        self.dtype, self.numel, self.key = dtype, numel, key
        self.array: np.ndarray | None = None


class _StorageUnpickler(pickle.Unpickler):
    """The small pickles of torch's legacy storage format: storage type names only."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"global {module}.{name} is not admitted in a tensor storage")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        return _StoragePlaceholder(pid[1], int(pid[4]), str(pid[2]))


def _storage_from_bytes(data: bytes) -> np.ndarray:
    """A flat array from torch's legacy ``_save`` bytes of one storage (parsed, not run)."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("storage bytes expected")
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info: plain values
        _StorageUnpickler(f).load()
    up = _StorageUnpickler(f)
    storage = up.load()
    keys = _StorageUnpickler(f).load()
    if not isinstance(storage, _StoragePlaceholder) or not isinstance(keys, list) or len(keys) != 1:
        raise pickle.UnpicklingError("not a single tensor storage")
    (n,) = struct.unpack("<q", f.read(8))
    dtype = np.dtype(storage.dtype).newbyteorder("<")
    raw = f.read(n * dtype.itemsize)
    if n != storage.numel or len(raw) != n * dtype.itemsize:
        raise pickle.UnpicklingError("storage size does not match its data")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *args: Any) -> np.ndarray:
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("tensor without an array storage")
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride)).copy()


def _numpy_reconstruct(*args: Any) -> Any:
    return np.ndarray.__new__(np.ndarray, *args[1:]) if args and args[0] is np.ndarray else \
        np.ndarray.__new__(np.ndarray, (0,), np.float64)


class ScalerUnpickler(pickle.Unpickler):
    """Unpickle a MALA ``DataScaler`` pickle admitting only its plain fields and arrays.

    Globals admitted: ``mala...DataScaler`` (-> a plain record), ``torch._utils._rebuild_tensor_v2``
    and ``torch.storage._load_from_bytes`` (-> NumPy arrays built here), NumPy's array
    reconstruction (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``)
    and ``collections.OrderedDict``. Anything else raises :class:`pickle.UnpicklingError`.
    """

    def find_class(self, module: str, name: str) -> Any:
        if name == "DataScaler" and module.startswith("mala.") and module.endswith("data_scaler"):
            return _ScalerRecord
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return {"ndarray": np.ndarray, "dtype": np.dtype}[name]
        raise pickle.UnpicklingError(f"global {module}.{name} is not admitted (only a MALA "
                                     "DataScaler with array fields is read)")


class MalaScaler:
    """MALA's ``DataScaler`` (fields as MALA names them), applied in float32 as MALA does."""

    def __init__(self, fields: dict[str, Any]):
        self.fields = fields
        f = fields
        self.standard = bool(f.get("scale_standard", False))
        self.minmax = bool(f.get("scale_minmax", f.get("scale_normal", False)))
        self.feature_wise = bool(f.get("feature_wise", False))

        def arr(name: str) -> np.ndarray:
            return np.asarray(f.get(name, []), dtype=np.float32).reshape(1, -1) if np.size(
                f.get(name, [])) else np.zeros((1, 0), np.float32)

        if self.feature_wise:
            self.shift = arr("means") if self.standard else arr("mins")
            self.scale = arr("stds") if self.standard else arr("maxs") - arr("mins")
        else:
            if self.standard:
                self.shift = np.float32(float(f.get("total_mean", 0.0)))
                self.scale = np.float32(float(f.get("total_std", 1.0)))
            else:
                lo, hi = float(f.get("total_min", 0.0)), float(f.get("total_max", 1.0))
                # MALA multiplies a float32 tensor by the (float64) difference: one rounding
                self.shift, self.scale = np.float32(lo), np.float32(hi - lo)
        if self.standard and self.minmax:
            raise InputError("scaler: both standard and min-max scaling set; MALA allows one")

    @property
    def n_features(self) -> int | None:
        return int(np.size(self.shift)) if self.feature_wise else None

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not (self.standard or self.minmax):
            return x
        return (x - self.shift) / self.scale

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        if not (self.standard or self.minmax):
            return y
        return y * self.scale + self.shift

    def to_dict(self) -> dict[str, Any]:
        return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.fields.items()}


def _check_fields(fields: dict[str, Any], source: str) -> dict[str, Any]:
    out = {}
    for k, v in fields.items():
        if k not in _SCALER_FIELDS:
            raise InputError(f"{source}: scaler field {k!r} unknown; a MALA DataScaler has "
                             f"{sorted(_SCALER_FIELDS)}")
        if isinstance(v, list):  # MALA's JSON scalers: (nested) lists of numbers
            try:
                v = np.asarray(v, dtype=float) if v else np.zeros(0)
            except (TypeError, ValueError):
                raise InputError(f"{source}: scaler field {k!r} is a list that is not numbers") \
                    from None
        if not isinstance(v, (bool, int, float, str, np.ndarray, np.generic)):
            raise InputError(f"{source}: scaler field {k!r} is a {type(v).__name__}; expected a "
                             "number, string or array")
        out[k] = v
    return out


def read_mala_scaler(data: bytes, source: str) -> MalaScaler:
    """A MALA scaler from its ``.pkl`` (restricted unpickling) or ``.json`` bytes."""
    if data[:1] in (b"{", b" ", b"\n"):
        try:
            fields = json.loads(data)
        except ValueError as exc:
            raise InputError(f"{source}: scaler JSON does not parse ({exc})") from None
    else:
        try:
            rec = ScalerUnpickler(io.BytesIO(data)).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as exc:
            raise InputError(f"{source}: not read as a MALA DataScaler ({exc})") from None
        if not isinstance(rec, _ScalerRecord):
            raise InputError(f"{source}: holds a {type(rec).__name__}, not a MALA DataScaler")
        fields = rec.fields
    if not isinstance(fields, dict):
        raise InputError(f"{source}: scaler is not a record of fields")
    return MalaScaler(_check_fields(fields, source))


@register_architecture("mala-feedforward")
class MalaLdosModel(LdosModel):
    """A MALA feed-forward LDOS network with its scalers (inference only)."""

    def __init__(self, layer_sizes: tuple[int, ...] = (), activations: tuple[str, ...] = (),
                 state: dict[str, np.ndarray] | None = None, input_scaler: dict | None = None,
                 output_scaler: dict | None = None, restrict_targets: str | None = "zero_out_negative",
                 setup: LdosSetup | None = None, mala_params: dict | None = None):
        self.layer_sizes = tuple(int(s) for s in layer_sizes)
        self.activations = tuple(activations)
        self.state = state
        self.input_scaler = MalaScaler(input_scaler) if input_scaler is not None else None
        self.output_scaler = MalaScaler(output_scaler) if output_scaler is not None else None
        self.restrict_targets = restrict_targets
        self.setup = setup
        self.mala_params = mala_params or {}

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, **kwargs: Any) -> MalaLdosModel:
        raise InputError("a MALA model is imported for prediction; train matterflow's own model "
                         "(`electrons train`) or retrain it with MALA")

    def _layers(self) -> list[tuple[np.ndarray, np.ndarray, str | None]]:
        import torch

        if self.state is None:
            raise NotFittedError("MalaLdosModel has no network weights")
        keys = sorted({k.rsplit(".", 1)[0] for k in self.state}, key=lambda k: int(k.split(".")[1]))
        n = len(self.layer_sizes) - 1
        if len(keys) != n:
            raise InputError(f"model: the network has {len(keys)} Linear layers; layer_sizes "
                             f"{self.layer_sizes} needs {n}")
        acts: list[str | None] = []
        single = self.mala_params.get("activation_is_list") is False and len(self.activations) == 1
        for i in range(n):
            a: str | None = None
            if i < n - 1 or self.mala_params.get("layer_activations_include_output_layer", True):
                # MALA: one name (a string) serves every layer; a list gives layer i its i-th
                # entry and none where the list has ended (so ["ReLU"] leaves the output linear)
                if single:
                    a = self.activations[0]
                elif i < len(self.activations):
                    a = self.activations[i]
            if a is not None and not hasattr(torch.nn, a):
                raise InputError(f"model: activation {a!r} is not a torch.nn activation")
            acts.append(a)
        return [(self.state[k + ".weight"], self.state[k + ".bias"], a)
                for k, a in zip(keys, acts, strict=True)]

    def predict(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """LDOS (n, n_energies) of MALA descriptors (n, n_features), float32 arithmetic as MALA."""
        import torch

        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(f"descriptors: {x.shape[-1] if x.ndim else 0} features per point "
                             f"(shape {x.shape}); this MALA model takes {self.n_features} "
                             f"(layer_sizes {list(self.layer_sizes)})")
        layers = [(torch.from_numpy(np.asarray(w, np.float32)), torch.from_numpy(
            np.asarray(b, np.float32)), getattr(torch.nn, a)() if a else None)
            for w, b, a in self._layers()]
        out = np.empty((len(x), self.layer_sizes[-1]))
        with torch.no_grad():
            for i0 in range(0, len(x), batch_size):
                xb = np.asarray(x[i0:i0 + batch_size], np.float32)
                if self.input_scaler is not None:
                    xb = self.input_scaler.transform(xb).astype(np.float32)
                h = torch.from_numpy(np.ascontiguousarray(xb))
                for w, b, act in layers:
                    h = torch.nn.functional.linear(h, w, b)
                    if act is not None:
                        h = act(h)
                y = h.numpy()
                if self.output_scaler is not None:
                    y = self.output_scaler.inverse_transform(y).astype(np.float32)
                out[i0:i0 + batch_size] = y
        if self.restrict_targets == "zero_out_negative":
            out[out < 0] = 0.0
        elif self.restrict_targets == "absolute_values":
            out = np.abs(out)
        return out

    def to_dict(self) -> dict[str, Any]:
        import torch

        if self.state is None:
            raise NotFittedError("MalaLdosModel has no network weights")
        return {"layer_sizes": list(self.layer_sizes), "activations": list(self.activations),
                "state": {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()},
                "input_scaler": self.input_scaler.to_dict() if self.input_scaler else None,
                "output_scaler": self.output_scaler.to_dict() if self.output_scaler else None,
                "restrict_targets": self.restrict_targets, "mala_params": self.mala_params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MalaLdosModel:
        state = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                 for k, v in data["state"].items()}
        return cls(layer_sizes=tuple(data["layer_sizes"]), activations=tuple(data["activations"]),
                   state=state, input_scaler=data.get("input_scaler"),
                   output_scaler=data.get("output_scaler"),
                   restrict_targets=data.get("restrict_targets"),
                   mala_params=data.get("mala_params"))


def is_mala_archive(path: str | os.PathLike) -> bool:
    """True for a zip archive holding MALA's ``*.params.json`` and ``*.network.pth``."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith(".params.json") for n in names) and any(
        n.endswith(".network.pth") for n in names)


def _member(z: zipfile.ZipFile, suffix: str, source: str, required: bool = True) -> bytes | None:
    names = [n for n in z.namelist() if n.endswith(suffix)]
    if not names:
        if required:
            raise InputError(f"{source}: no *{suffix} in the archive (has {z.namelist()}); is it "
                             "a MALA model archive?")
        return None
    return z.read(names[0])


def load_mala_model(path: str | os.PathLike, *, ldos_smearing_ev: float | None = None,
                    temperature_k: float | None = None) -> MalaLdosModel:
    """Import a MALA model archive (``NAME.zip``); see the module docstring.

    ``temperature_k`` defaults to the archive's ``info.json`` temperature. The LDOS width is
    not in a MALA archive; ``ldos_smearing_ev`` (e.g. from the pp.x input) is stored if given,
    else 0: MALA integrates its LDOS with no broadening correction, and σ = 0 does the same.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: MALA model archive not found")
    try:
        z = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        raise InputError(f"{p}: not a zip archive; a MALA model is NAME.zip") from None
    with z:
        try:
            params = json.loads(_member(z, ".params.json", str(p)) or b"")
        except ValueError as exc:
            raise InputError(f"{p}: params.json does not parse ({exc})") from None
        info_b = _member(z, ".info.json", str(p), required=False)
        info = json.loads(info_b) if info_b else {}
        net_b = _member(z, ".network.pth", str(p))
        isc = _member(z, ".iscaler.json", str(p), required=False) or _member(
            z, ".iscaler.pkl", str(p))
        osc = _member(z, ".oscaler.json", str(p), required=False) or _member(
            z, ".oscaler.pkl", str(p))
    assert net_b is not None and isc is not None and osc is not None
    # MALA writes the state dict in torch's legacy (non-zip) format; torch's weights-only
    # unpickler reads both formats and admits tensors and plain containers only.
    import torch

    try:
        state = torch.load(io.BytesIO(net_b), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... on bad files
        raise InputError(f"{p}: network.pth is not read as a torch state dict of tensors "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(state, dict):
        raise InputError(f"{p}: network.pth is not a state dict")
    state = {k: np.asarray(v.detach().cpu().numpy()) for k, v in state.items()}
    try:
        net = params["network"]
        targets = params["targets"]
        desc = params["descriptors"]
    except KeyError as exc:
        raise InputError(f"{p}: params.json has no {exc.args[0]!r} section") from None
    if net.get("nn_type", "feed-forward") != "feed-forward":
        raise InputError(f"{p}: network nn_type {net.get('nn_type')!r}; only MALA's "
                         "'feed-forward' networks are imported")
    if targets.get("target_type", "LDOS") != "LDOS":
        raise InputError(f"{p}: target_type {targets.get('target_type')!r}; only LDOS models")
    sizes = tuple(int(s) for s in net["layer_sizes"])
    acts_raw = net.get("layer_activations", ["ReLU"])
    acts = tuple([acts_raw] if isinstance(acts_raw, str) else acts_raw)
    iscaler = read_mala_scaler(isc, f"{p}:iscaler")
    oscaler = read_mala_scaler(osc, f"{p}:oscaler")
    if iscaler.n_features not in (None, sizes[0]):
        raise InputError(f"{p}: the input scaler has {iscaler.n_features} features; the network "
                         f"takes {sizes[0]}")
    ne = int(targets["ldos_gridsize"])
    if ne != sizes[-1]:
        raise InputError(f"{p}: ldos_gridsize {ne} differs from the network output {sizes[-1]}")
    energies = float(targets["ldos_gridoffset_ev"]) + float(targets["ldos_gridspacing_ev"]) * np.arange(ne)
    elements = sorted({s for s in info.get("atoms", {}).get("numbers", [])})
    from ase.data import chemical_symbols

    syms = [chemical_symbols[int(n)] for n in elements]
    dparams = {"twojmax": int(desc.get("bispectrum_twojmax", 10)),
               "rcutfac": float(desc.get("bispectrum_cutoff", 4.67637)), "rfac0": 0.99363,
               "rmin0": 0.0, "radius": {s: 0.5 for s in syms}, "weight": {s: 1.0 for s in syms},
               "switchflag": bool(desc.get("bispectrum_switchflag", 1)), "bzeroflag": False}
    grid = info.get("grid_dimensions")
    cell = np.asarray(info.get("atoms", {}).get("cell", np.zeros((3, 3))), float)
    spacing = tuple(float(v) for v in np.linalg.norm(cell, axis=1) / np.asarray(grid)) if grid \
        else (0.0, 0.0, 0.0)
    per_atom = info.get("electrons_per_atom")
    setup = LdosSetup(energy_grid_ev=tuple(float(e) for e in energies),
                      descriptor_kind=str(desc.get("descriptor_type", "Bispectrum")).lower(),
                      descriptor_params=dparams, grid_spacing_ang=spacing,
                      temperature_k=float(temperature_k if temperature_k is not None
                                          else info.get("temperature", np.nan)),
                      ldos_smearing_ev=float(ldos_smearing_ev if ldos_smearing_ev is not None
                                             else 0.0),
                      valence_electrons={s: float(per_atom) for s in syms} if per_atom else {},
                      meta={"source": str(p), "code": "MALA model archive",
                            "descriptors_contain_xyz": bool(desc.get("descriptors_contain_xyz"))})
    return MalaLdosModel(layer_sizes=sizes, activations=acts, state=state,
                         input_scaler=iscaler.fields, output_scaler=oscaler.fields,
                         restrict_targets=targets.get("restrict_targets"), setup=setup,
                         mala_params={"layer_activations_include_output_layer": net.get(
                             "layer_activations_include_output_layer", True),
                             "activation_is_list": not isinstance(acts_raw, str)})


def predict_from_descriptors(model: LdosModel, descriptors: np.ndarray | str | os.PathLike, *,
                             contains_xyz: bool | None = None) -> np.ndarray:
    """LDOS (nx, ny, nz, ne) or (n, ne) of given descriptors (array or MALA ``.in.npy``).

    ``contains_xyz`` drops the 3 leading coordinate columns (default: when there are 3 more
    columns than the model takes, as in MALA's files). A descriptor length that is not the
    model's is an :class:`InputError`.
    """
    where = "descriptors"
    if not isinstance(descriptors, np.ndarray):
        where = str(descriptors)
        p = Path(descriptors)
        if not p.exists():
            raise InputError(f"{p}: descriptor file not found")
        try:
            descriptors = np.load(p, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise InputError(f"{p}: not a NumPy .npy array ({exc})") from None
    x = np.asarray(descriptors)
    n_model = getattr(model, "n_features", None)
    if contains_xyz is None:  # MALA's files carry x, y, z first; arrays of features do not
        contains_xyz = n_model is not None and x.shape[-1] == n_model + 3
    if contains_xyz:
        x = x[..., 3:]
    if n_model is not None and x.shape[-1] != n_model:
        raise InputError(f"{where}: {x.shape[-1]} features per point"
                         f"{' after dropping 3 xyz columns' if contains_xyz else ''}; the model "
                         f"takes {n_model}")
    flat = x.reshape(-1, x.shape[-1])
    if not np.all(np.isfinite(flat)):
        raise InputError(f"{where}: descriptors contain NaN or inf")
    y = model.predict(flat)
    return y.reshape(*x.shape[:-1], y.shape[-1])
