"""Write synthetic data sets to disk: NeXus frames, Eiger-like master files, a process file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["write_frames_h5", "write_eiger_master", "write_sample"]


def _compression(kind: str) -> dict[str, Any]:
    if kind == "none":
        return {}
    if kind == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if kind == "bitshuffle":
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    raise InputError(f"compression: {kind!r} not one of none, gzip, bitshuffle")


def write_frames_h5(path: str | Path, frames: np.ndarray, *, compression: str = "bitshuffle",
                    dtype: Any = np.uint32) -> Path:
    """Frames (n, rows, cols) to ``/entry/data/data`` (NXentry/NXdata), chunked per frame."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        d = e.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        d.attrs["signal"] = "data"
        d.create_dataset("data", data=np.asarray(frames).astype(dtype),
                         chunks=(1,) + tuple(frames.shape[1:]), **_compression(compression))
    return path


def write_eiger_master(folder: str | Path, frames: np.ndarray, *, per_file: int = 4,
                       stem: str = "scan", compression: str = "bitshuffle") -> Path:
    """Dectris-style ``STEM_master.h5`` with external links ``/entry/data/data_000001 ...``.

    The data files ``STEM_data_000001.h5`` hold ``/entry/data/data`` of up
    to ``per_file`` frames each (bitshuffle/LZ4 compressed, like an Eiger).
    """
    import h5py

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / f"{stem}_master.h5"
    with h5py.File(master, "w") as m:
        e = m.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        d = e.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        for k, i in enumerate(range(0, len(frames), per_file), start=1):
            name = f"{stem}_data_{k:06d}.h5"
            write_frames_h5(folder / name, frames[i:i + per_file], compression=compression)
            d[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    return master


def write_sample(out: str | Path, *, n_frames: int = 24, size: int = 512, seed: int = 0,
                 compression: str = "bitshuffle") -> list[Path]:
    """A heating run + calibrant image + true geometry + a ready process file in ``out``."""
    import yaml

    from matterflow.diffraction.xrd.tasks import simulate_heating

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_heating(params={"n_frames": n_frames, "rows": size, "cols": size,
                                   "centre_px": (size / 2 + 6.4, size / 2 - 8.2), "seed": seed})
    frames = write_frames_h5(out / "frames.h5", sim.frames, compression=compression)
    calib = write_frames_h5(out / "calibrant.h5", sim.calibrant_image[None], compression=compression)
    poni = out / "true.poni"
    poni.write_text(sim.true_poni)
    # A(111), A(311) (phase A, shifting) and B(111) (phase B, growing): no overlaps
    centers = [round(float(sim.tth_a_deg[0][0]), 2), round(float(sim.tth_a_deg[0][3]), 2),
               round(float(sim.tth_b_deg[0]), 2)]
    spec = {
        "name": "synthetic-heating-run",
        "input": {"path": "frames.h5"},
        "geometry": "geometry.poni",
        "plugins": [
            {"plugin": "mask", "high": 1.0e7},
            {"plugin": "integrate1d", "npt": 1000, "unit": "2th_deg", "error_model": "poisson"},
            {"plugin": "fit_peaks", "centers": centers, "window": 0.45},
        ],
        "reduce": {"operation": "mean", "centers": centers, "window": 0.45},
    }
    wf = out / "process.yaml"
    wf.write_text("# run `matterflow xrd calibrate calibrant.h5 --calibrant LaB6 --energy 25 "
                  "--pixel-size 150 --out geometry.poni` first\n" + yaml.safe_dump(spec, sort_keys=False))
    truth = out / "truth.npz"
    np.savez(truth, tth_a_deg=sim.tth_a_deg, tth_b_deg=sim.tth_b_deg,
             temperature_k=sim.temperature_k, a_angstrom=sim.a_angstrom)
    return [frames, calib, poni, wf, truth]
