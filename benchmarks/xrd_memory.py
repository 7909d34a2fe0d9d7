"""Peak memory of processing a 10^4-frame scan: flat as the number of frames grows.

The scan is an Eiger-like master file whose external links point, again and
again, at one small bitshuffle/LZ4 data file (so 10^4 frames need little disk).
Each size runs in a fresh process, the same loop each Dask worker runs: the
lazy frame source and one prepared pipeline (mask, 1D integration, peak fit),
frame by frame; per-frame results are written to an HDF5 file as they come
(as the executor does per batch), not kept in memory. Peak RSS (ru_maxrss)
is compared between 500 and 10^4 frames.

Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = 256


def prepare(folder: Path, n_max: int) -> tuple[Path, Path, list]:
    import h5py

    from matterflow.diffraction.xrd._geometry import poni_text
    from matterflow.diffraction.xrd.sample_data import write_frames_h5
    from matterflow.diffraction.xrd.synthetic import heating_series, make_geometry

    ai = make_geometry(distance_mm=60.0, centre_px=(131.2, 123.9), pixel_size_um=150.0,
                       shape=(SIZE, SIZE), energy_kev=25.0)
    run = heating_series(ai, 10, seed=2)
    data = write_frames_h5(folder / "scan_data_000001.h5", run.frames, compression="bitshuffle")
    with h5py.File(folder / "scan_master.h5", "w") as m:
        d = m.create_group("entry/data")
        for k in range(n_max // 10):
            d[f"data_{k + 1:06d}"] = h5py.ExternalLink(data.name, "/entry/data/data")
    (folder / "geometry.poni").write_text(poni_text(ai))
    return folder / "scan_master.h5", folder / "geometry.poni", [round(float(run.tth_a_deg[0][0]), 2)]


def child(master: str, poni: str, n: int, center: float, out: str) -> None:
    import h5py

    from matterflow.diffraction.xrd.pipeline import Pipeline

    chain = [{"plugin": "mask", "high": 1e7},
             {"plugin": "integrate1d", "npt": 500, "unit": "2th_deg", "error_model": None},
             {"plugin": "fit_peaks", "centers": [center], "window": 0.4}]
    pipe = Pipeline(poni, chain, source=master, source_options={"last": n})
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        ds = f.create_dataset("intensity", shape=(n, 500), dtype="f8", chunks=(64, 500))
        for i in range(n):
            res = pipe.run(index=i)
            ds[i] = res.intensity
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "peak_rss_mb": round(rss_mb, 1),
                      "seconds": round(time.perf_counter() - t0, 2)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
        return
    sizes = [500, 2000, 10000]
    folder = Path(tempfile.mkdtemp(prefix="xrd-mem-"))
    try:
        master, poni, centers = prepare(folder, max(sizes))
        rows = []
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "child", str(master), str(poni), str(n),
                                  str(centers[0]), str(folder / f"out{n}.h5")],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        print(json.dumps({"benchmark": "xrd_memory", "frame_shape": [SIZE, SIZE],
                          "runs": rows, "rss_ratio_10000_vs_500_frames": round(growth, 3),
                          "frames_ratio": sizes[-1] / sizes[0]}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
