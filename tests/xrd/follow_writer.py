"""A writer process for the --follow tests: appends the frames of an HDF5 file, one every
INTERVAL seconds, to an SWMR HDF5 file (``h5``) or as TIFF files into a folder (``tiff``; each
file written in two halves with a pause, so a reader can see it incomplete).

    python follow_writer.py h5|tiff SOURCE.h5 DATASET DEST INTERVAL
"""

import sys
import time
from pathlib import Path

import h5py
import numpy as np


def main() -> None:
    kind, source, dataset, dest, interval = sys.argv[1:6]
    interval = float(interval)
    with h5py.File(source, "r") as f:
        frames = f[dataset][()]
    dest = Path(dest)
    if kind == "h5":
        with h5py.File(dest, "w", libver="latest") as f:
            ds = f.create_dataset("entry/data/data", shape=(0,) + frames.shape[1:],
                                  maxshape=(None,) + frames.shape[1:], dtype=frames.dtype,
                                  chunks=(1,) + frames.shape[1:])
            f.swmr_mode = True
            for k, fr in enumerate(frames):
                ds.resize(k + 1, axis=0)
                ds[k] = fr
                ds.flush()
                time.sleep(interval)
    else:
        import tifffile

        dest.mkdir(parents=True, exist_ok=True)
        for k, fr in enumerate(frames):
            tmp = dest / f"frame_{k:04d}.tmp"
            tifffile.imwrite(tmp, np.asarray(fr, np.float32))
            data = tmp.read_bytes()
            tmp.unlink()
            with open(dest / f"frame_{k:04d}.tif", "wb") as fh:  # written in two halves
                fh.write(data[:len(data) // 2])
                fh.flush()
                time.sleep(interval / 3)
                fh.write(data[len(data) // 2:])
            time.sleep(interval)


if __name__ == "__main__":
    main()
