"""Peak memory of a whole `xrd process` run with 2D cakes: flat as the number of frames grows.

Where ``xrd_memory.py`` measures the loop a worker runs, this runs the whole
command (:func:`matterflow.diffraction.xrd.processing.run_process`: validation,
Dask LocalCluster with 2 workers, the executor gathering batches, results.h5)
on a chain whose per-frame results are big: a 1D pattern and a 2D cake of
360 × 500 bins (1.4 MB per frame in float64). Each size runs in a fresh
process; the figure is the main process's peak RSS (ru_maxrss), compared
between 200 and 2000 frames. Frames are 256² (the same Eiger-like master file
as ``xrd_memory.py``, linking one small bitshuffle/LZ4 file again and again).

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xrd_memory import prepare  # noqa: E402


def child(master: str, poni: str, n: int, folder: str) -> None:
    import yaml

    from matterflow.diffraction.xrd.processing import run_process

    spec = {"name": "cakes", "input": {"path": master, "last": n}, "geometry": poni,
            "plugins": [{"plugin": "integrate1d", "npt": 500, "unit": "2th_deg"},
                        {"plugin": "integrate2d", "npt": 500, "npt_azim": 360, "unit": "2th_deg"}],
            "export": {"nexus": False, "csv": False, "xy": False}}
    wf = Path(folder) / f"cakes{n}.yaml"
    wf.write_text(yaml.safe_dump(spec))
    t0 = time.perf_counter()
    res = run_process(wf, Path(folder) / f"out{n}", workers=2, report=False)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "frames_processed": res.n_frames - res.n_failed,
                      "main_peak_rss_mb": round(rss_mb, 1),
                      "seconds": round(time.perf_counter() - t0, 2)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    sizes = [200, 2000]
    folder = Path(tempfile.mkdtemp(prefix="xrd-memrun-"))
    try:
        master, poni, _ = prepare(folder, max(sizes))
        rows = []
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "child", str(master), str(poni), str(n),
                                  str(folder)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        growth = rows[-1]["main_peak_rss_mb"] / rows[0]["main_peak_rss_mb"]
        cake_mb = 8 * 360 * 500 / 2**20
        print(json.dumps({"benchmark": "xrd_memory_run", "frame_shape": [256, 256],
                          "cake_bins": [360, 500], "runs": rows,
                          "rss_ratio_2000_vs_200_frames": round(growth, 3),
                          "frames_ratio": sizes[-1] / sizes[0],
                          "cakes_total_mb_2000_frames": round(cake_mb * sizes[-1], 1)}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
