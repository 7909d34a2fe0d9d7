"""Datasets of (external potential, exact density, KS potential) made on the core executor.

:func:`generate_dataset` writes a two-step workflow (``dft1d.potentials`` ->
``dft1d.exact_invert`` mapped over the potentials in batches on Dask), runs
it with :func:`matterflow.core.execute.run_workflow` (a killed run resumes)
and copies the arrays into one flat HDF5 file::

    dataset.h5
      x (n_points,) bohr          v_ext, density, v_ks, v_hxc (n_samples, n_points)
      energy, max_density_error (n_samples,)        family, split (n_samples,) strings
      attrs: families, n_electrons, spin, stencil, seed, seconds

:func:`load_dataset` reads that file, or the ``results.h5`` of any run with
a ``dft1d.potentials`` and a ``dft1d.exact_invert`` step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from matterflow.core.errors import InputError
from matterflow.dft1d.potentials import DEFAULT_FAMILIES, check_families

__all__ = ["Dataset", "generate_dataset", "load_dataset", "write_dataset", "dataset_workflow"]

_ARRAYS = ("v_ext", "density", "v_ks", "v_hxc")


@dataclass
class Dataset:
    """Arrays of a dataset (units: bohr, Ha, electrons/bohr).

    ``x`` (n_points,); ``v_ext``, ``density``, ``v_ks``, ``v_hxc`` (n_samples, n_points);
    ``energy`` (n_samples,) Ha; ``family``, ``split`` lists of n_samples strings.
    """

    x: np.ndarray
    v_ext: np.ndarray
    density: np.ndarray
    v_ks: np.ndarray
    v_hxc: np.ndarray
    energy: np.ndarray
    family: list[str]
    split: list[str]
    max_density_error: np.ndarray
    seconds_inversion: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.family)

    def select(self, mask: np.ndarray) -> Dataset:
        """The samples where ``mask`` (bool, n_samples) is true."""
        idx = np.flatnonzero(mask)
        return Dataset(x=self.x, v_ext=self.v_ext[idx], density=self.density[idx],
                       v_ks=self.v_ks[idx], v_hxc=self.v_hxc[idx], energy=self.energy[idx],
                       family=[self.family[i] for i in idx], split=[self.split[i] for i in idx],
                       max_density_error=self.max_density_error[idx],
                       seconds_inversion=self.seconds_inversion[idx], attrs=dict(self.attrs))

    def where(self, *, split: str | Sequence[str] | None = None,
              family: str | Sequence[str] | None = None) -> Dataset:
        """Samples of the given split(s) and/or family(ies)."""
        mask = np.ones(len(self), bool)
        if split is not None:
            s = {split} if isinstance(split, str) else set(split)
            mask &= np.array([v in s for v in self.split])
        if family is not None:
            f = {family} if isinstance(family, str) else set(family)
            mask &= np.array([v in f for v in self.family])
        return self.select(mask)


def dataset_workflow(*, n_samples: int, families: Sequence[str] = DEFAULT_FAMILIES,
                     n_points: int = 64, length: float = 20.0, holdout_family: str | None = None,
                     spin: str = "singlet", seed: int = 0, batch_size: int | None = None) -> str:
    """YAML text of the dataset workflow (see the module docstring)."""
    families = check_families(families)
    pot = {"families": families, "n_samples": n_samples, "n_points": n_points, "length": length,
           "holdout_family": holdout_family, "seed": seed}
    bs = f"\n    batch_size: {batch_size}" if batch_size else ""
    return (
        "name: dft1d-dataset\n"
        "description: Exact two-electron densities and their Kohn-Sham potentials.\n"
        "steps:\n"
        f"  - id: potentials\n    task: dft1d.potentials\n    params: {json.dumps(pot)}\n"
        "  - id: exact\n    task: dft1d.exact_invert\n"
        "    inputs: {v_ext: potentials.v_ext, x: potentials.x}\n"
        f"    params: {json.dumps({'n_electrons': 2, 'spin': spin})}{bs}\n")


def generate_dataset(out_dir: str | Path, *, n_samples: int = 2000,
                     families: Sequence[str] = DEFAULT_FAMILIES, n_points: int = 64,
                     length: float = 20.0, holdout_family: str | None = None,
                     spin: str = "singlet", seed: int = 0, workers: int | None = None,
                     scheduler: str | None = None, force: bool = False,
                     batch_size: int | None = None, progress: Any = None) -> Path:
    """Run the dataset workflow into ``out_dir``; returns the path of ``out_dir/dataset.h5``."""
    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = dataset_workflow(n_samples=n_samples, families=families, n_points=n_points,
                            length=length, holdout_family=holdout_family, spin=spin, seed=seed,
                            batch_size=batch_size)
    (out / "workflow.yaml").write_text(text)
    wf = parse_workflow(text, source=str(out / "workflow.yaml"), base_dir=out)
    t0 = time.perf_counter()
    summary = run_workflow(wf, out, workers=workers, scheduler=scheduler, force=force,
                           progress=progress)
    seconds = time.perf_counter() - t0
    ds = load_dataset(summary.results)
    ds.attrs.update({"families": list(families), "spin": spin, "seed": seed,
                     "seconds": seconds, "workers": workers or 0})
    return write_dataset(ds, out / "dataset.h5")


def write_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write a :class:`Dataset` as the flat HDF5 layout of the module docstring."""
    from matterflow.core.store import atomic_h5

    path = Path(path)
    with atomic_h5(path) as f:
        f.create_dataset("x", data=ds.x).attrs["units"] = "bohr"
        for k, u in (("v_ext", "Ha"), ("density", "1/bohr"), ("v_ks", "Ha"), ("v_hxc", "Ha")):
            f.create_dataset(k, data=getattr(ds, k), compression="lzf").attrs["units"] = u
        f.create_dataset("energy", data=ds.energy).attrs["units"] = "Ha"
        f.create_dataset("max_density_error", data=ds.max_density_error).attrs["units"] = "1/bohr"
        f.create_dataset("seconds_inversion", data=ds.seconds_inversion).attrs["units"] = "s"
        str_t = h5py.string_dtype()
        f.create_dataset("family", data=np.array(ds.family, dtype=object), dtype=str_t)
        f.create_dataset("split", data=np.array(ds.split, dtype=object), dtype=str_t)
        for k, v in ds.attrs.items():
            f.attrs[k] = json.dumps(v)
    return path


def load_dataset(path: str | Path) -> Dataset:
    """Read ``dataset.h5`` (flat layout), a run's ``results.h5``, or the folder that holds them.

    A folder (the ``--out`` of ``matterflow dft1d generate``) is read through its
    ``dataset.h5``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such dataset file")
    if path.is_dir():
        if not (path / "dataset.h5").is_file():
            raise InputError(f"{path}: a folder without dataset.h5; pass the dataset file "
                             f"(dataset.h5 or results.h5 of 'matterflow dft1d generate')")
        path = path / "dataset.h5"
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        if "x" in f and "v_hxc" in f:
            d = {k: f[k][()] for k in ("x", *_ARRAYS, "energy", "max_density_error",
                                       "seconds_inversion")}
            fam = [str(s) for s in f["family"].asstr()[()]]
            split = [str(s) for s in f["split"].asstr()[()]]
            attrs = {k: json.loads(v) for k, v in f.attrs.items()}
            return Dataset(**d, family=fam, split=split, attrs=attrs)
    from matterflow.core.store import Results

    res = Results(path)
    pot = [s for s, m in res.steps.items() if m.get("task") == "dft1d.potentials"]
    ex = [s for s, m in res.steps.items() if m.get("task") == "dft1d.exact_invert"]
    if not pot or not ex:
        raise InputError(f"{path}: neither a dataset.h5 (x, v_hxc, ...) nor a results file with "
                         f"dft1d.potentials and dft1d.exact_invert steps; steps: "
                         f"{', '.join(res.steps) or '(none)'}")
    p, e = res[pot[0]], res[ex[0]]
    return Dataset(x=p["x"], v_ext=p["v_ext"], density=e["density"], v_ks=e["v_ks"],
                   v_hxc=e["v_hxc"], energy=e["energy"], family=list(p["family"]),
                   split=list(p["split"]), max_density_error=e["max_density_error"],
                   seconds_inversion=e["seconds_inversion"], attrs={})
