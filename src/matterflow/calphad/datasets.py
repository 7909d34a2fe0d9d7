"""ESPEI datasets: load and validate (ESPEI's schema), and pick out phase-equilibrium data.

The Cu-Mg system of the ESPEI-datasets collection ships with matterflow
(``matterflow/calphad/data/Cu-Mg``, CC-BY-4.0; see ``data/LICENSE`` and
``data/CONTRIBUTORS``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from tinydb import TinyDB

__all__ = ["bundled_system", "load_datasets", "ZPFPoint", "ActivityPoint", "zpf_points",
           "activity_points", "cumg_truth_tdb"]


def bundled_system(name: str = "Cu-Mg") -> Path:
    """Folder of a system's datasets shipped with matterflow."""
    path = Path(str(files("matterflow.calphad") / "data" / name))
    if not path.is_dir():
        raise InputError(f"no bundled datasets for {name!r}; shipped: Cu-Mg")
    return path


def cumg_truth_tdb() -> Path:
    """The published Cu-Mg assessment shipped with pycalphad (``cumg.tdb``).

    Coughanowr et al., Z. Metallkde. 82 (1991) 574 (set 3), as adjusted by Liang
    et al., CALPHAD 22 (1998) 527; TDB by Palumbo, Abe, Hashimoto (NIMS 2008).
    """
    return Path(str(files("pycalphad.tests.databases") / "cumg.tdb"))


def load_datasets(path: str | Path, include_disabled: bool = False) -> TinyDB:
    """All ESPEI JSON datasets under ``path``, validated against ESPEI's schema.

    Returns ESPEI's ``PickleableTinyDB``. A file that is not JSON or breaks the
    schema raises :class:`InputError` naming the file and ESPEI's complaint.
    """
    from espei.datasets import DatasetError, check_dataset, clean_dataset
    from espei.utils import PickleableTinyDB
    from tinydb.storages import MemoryStorage

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: datasets folder not found")
    fnames = [path] if path.is_file() else sorted(path.rglob("*.json"))
    if include_disabled and path.is_dir():
        fnames += sorted(path.rglob("*.json.disabled"))
    if not fnames:
        raise InputError(f"{path}: no *.json datasets found")
    db = PickleableTinyDB(storage=MemoryStorage)
    for fname in fnames:
        try:
            data = json.loads(fname.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{fname}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        try:
            check_dataset(data)
            data = clean_dataset(data)
        except DatasetError as exc:
            raise InputError(f"{fname}: breaks ESPEI's dataset schema: {exc}") from None
        except Exception as exc:  # malformed content ESPEI's checker trips over
            raise InputError(f"{fname}: breaks ESPEI's dataset schema "
                             f"({type(exc).__name__}: {exc})") from None
        data["_file"] = str(fname)
        db.insert(data)
    return db


def check_consistency(datasets, components, phases) -> None:
    """Every dataset's components and phases must belong to the model.

    Raises :class:`InputError` naming the file, field and value.
    """
    comps = {c.upper() for c in components} | {"VA"}
    phases = {p.upper() for p in phases}
    for ds in datasets.all():
        f = ds.get("_file", "?")
        bad = [c for c in ds["components"] if c.upper() not in comps]
        if bad:
            raise InputError(f"{f}: components: {bad} not in the model's {sorted(comps)}")
        badp = [p for p in ds["phases"] if p.upper() not in phases]
        if badp and ds["output"] == "ZPF":
            raise InputError(f"{f}: phases: {badp} not in the model's phases {sorted(phases)}")


@dataclass(frozen=True)
class ZPFPoint:
    """One measured phase equilibrium: at T, these phases coexist (x_B or NaN if unknown)."""

    temperature_k: float
    phases: tuple[str, ...]
    x: tuple[float, ...]
    source: str = ""


@dataclass(frozen=True)
class ActivityPoint:
    """A measured activity of component ``species`` at (T, x_B), relative to ``ref_phase``."""

    temperature_k: float
    x: float
    activity: float
    species: str
    ref_phase: str
    ref_temperature_k: float
    source: str = ""


def zpf_points(datasets: TinyDB, components: Sequence[str], phases: Iterable[str] | None = None
               ) -> list[ZPFPoint]:
    """Phase-equilibrium (ZPF) tie-lines of a binary, x as the fraction of ``components[1]``.

    Tie-lines naming a phase outside ``phases`` are dropped.
    """
    a, b = (c.upper() for c in components)
    keep = None if phases is None else {p.upper() for p in phases}
    out = []
    for ds in datasets.all():
        if ds["output"] != "ZPF":
            continue
        temps = np.atleast_1d(np.asarray(ds["conditions"]["T"], dtype=float))
        if len(temps) == 1:
            temps = np.repeat(temps, len(ds["values"]))
        for t, tie in zip(temps, ds["values"], strict=False):
            names, xs = [], []
            for phase, comps, vals in tie:
                if phase.startswith("__"):
                    continue
                names.append(phase.upper())
                val = vals[0] if vals else None
                if val is None:
                    xs.append(np.nan)
                elif comps[0].upper() == b:
                    xs.append(float(val))
                elif comps[0].upper() == a:
                    xs.append(1.0 - float(val))
                else:
                    raise InputError(f"{ds.get('_file', '?')}: values: component {comps[0]!r} "
                                     f"is not {a} or {b}")
            if keep is not None and not set(names) <= keep:
                continue
            if len(names) >= 2:
                out.append(ZPFPoint(float(t), tuple(names), tuple(xs), ds.get("_file", "")))
    return out


def activity_points(datasets: TinyDB, components: Sequence[str]) -> list[ActivityPoint]:
    """Activity (``ACR_X``) measurements of a binary."""
    a, b = (c.upper() for c in components)
    out = []
    for ds in datasets.all():
        if not ds["output"].startswith("ACR_"):
            continue
        species = ds["output"][4:].upper()
        cond = ds["conditions"]
        temps = np.atleast_1d(np.asarray(cond["T"], dtype=float))
        key = [k for k in cond if k.startswith("X_")][0]
        xs = np.atleast_1d(np.asarray(cond[key], dtype=float))
        if key[2:].upper() == a:
            xs = 1 - xs
        vals = np.asarray(ds["values"], dtype=float).reshape(len(temps), len(xs))
        ref = ds["reference_state"]
        for i, t in enumerate(temps):
            for j, x in enumerate(xs):
                out.append(ActivityPoint(float(t), float(x), float(vals[i, j]), species,
                                         ref["phases"][0].upper(),
                                         float(ref["conditions"]["T"]), ds.get("_file", "")))
    return out
