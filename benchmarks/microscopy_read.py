"""Seconds to read one large micrograph: ``read_micrograph`` against ncempy (GPLv3, run only as a
reference from its own venv in a subprocess, timed inside it) on the same files — a DM4 and a
DM3 (with the thumbnail first, as DigitalMicrograph writes them), a SER and an MRC of N² float32
(one JSON line; best of 3 each, files in a temporary folder, page cache warm).

    python benchmarks/microscopy_read.py [--n 4096] [--ref /work/refvenvs/ncempy/bin/python]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from matterflow.microscopy.imageio import read_micrograph


def dm_file(arr: np.ndarray, version: int) -> bytes:
    """A minimal little-endian DM3/DM4 file (thumbnail + image, calibrated 0.05 nm)."""
    w = ">Q" if version == 4 else ">i"

    def entry(kind: int, label: bytes, body: bytes) -> bytes:
        return (bytes([kind]) + struct.pack(">H", len(label)) + label
                + (struct.pack(">Q", len(body)) if version == 4 else b"") + body)

    def data(label: bytes, info: list[int], payload: bytes) -> bytes:
        return entry(21, label, b"%%%%" + struct.pack(w, len(info))
                     + b"".join(struct.pack(w, i) for i in info) + payload)

    def group(label: bytes, items: list[bytes]) -> bytes:
        return entry(20, label, b"\0\0" + struct.pack(w, len(items)) + b"".join(items))

    def image(a: np.ndarray) -> bytes:
        dims = a.shape[::-1]
        cal = [group(b"", [data(b"Scale", [6], struct.pack("<f", 0.05)),
                           data(b"Units", [20, 4, 2], "nm".encode("utf-16-le"))]) for _ in dims]
        return group(b"", [group(b"ImageData", [
            group(b"Calibrations", [group(b"Dimension", cal)]),
            data(b"Data", [20, 6, a.size], a.astype("<f4").tobytes()),
            data(b"DataType", [3], struct.pack("<i", 2)),
            group(b"Dimensions", [data(b"", [5], struct.pack("<I", d)) for d in dims])])])

    root = b"\0\0" + struct.pack(w, 1) + group(b"ImageList", [image(arr[:8, :8]), image(arr)])
    return struct.pack(">i", version) + struct.pack(w, len(root)) + struct.pack(">i", 1) + root + b"\0" * 8


def ser_file(arr: np.ndarray) -> bytes:
    ny, nx = arr.shape
    head = struct.pack("<HHHiiiiii", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1, 0, 1)
    dim = struct.pack("<iddii", 1, 0.0, 1.0, 0, 0) + struct.pack("<i", 0)
    arrays = len(head) + len(dim)
    head = head[:22] + struct.pack("<i", arrays) + head[26:]
    first = arrays + 8
    elem = struct.pack("<ddiddihii", 0, 5e-11, 0, 0, 5e-11, 0, 7, nx, ny) + arr.astype("<f4").tobytes()
    return head + dim + struct.pack("<ii", first, first + len(elem)) + elem + struct.pack("<hi", 0x4152, 0)


def mrc_file(arr: np.ndarray) -> bytes:
    ny, nx = arr.shape
    h = np.zeros(256, "<i4")
    h[0:4] = nx, ny, 1, 2
    h[7:10] = nx, ny, 1
    h.view("<f4")[10:13] = nx * 0.5, ny * 0.5, 0.5
    h[16:19] = 1, 2, 3
    b = bytearray(h.tobytes())
    b[208:214] = b"MAP DD"
    return bytes(b) + arr.astype("<f4").tobytes()


REF = """
import sys, time, json, ncempy.io as nio
ts = []
for _ in range(3):
    t = time.perf_counter(); d = nio.read(sys.argv[1]); ts.append(time.perf_counter() - t)
print(json.dumps({"s": min(ts), "shape": list(d["data"].shape), "sum": float(d["data"].sum())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--ref", default="/work/refvenvs/ncempy/bin/python")
    a = ap.parse_args()
    arr = np.random.default_rng(0).random((a.n, a.n), dtype=np.float32)
    out: dict = {"figure": "micrograph read seconds (best of 3)", "shape": [a.n, a.n],
                 "dtype": "float32", "baseline": "ncempy 1.16 (GPLv3, own venv, timed in its process)"}
    with tempfile.TemporaryDirectory() as d:
        files = {"dm4": dm_file(arr, 4), "dm3": dm_file(arr, 3), "ser": ser_file(arr),
                 "mrc": mrc_file(arr)}
        for kind, raw in files.items():
            p = Path(d) / f"img.{kind}"
            p.write_bytes(raw)
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                m = read_micrograph(p)
                ts.append(time.perf_counter() - t)
            rec = {"ours_s": round(min(ts), 4), "pixel_size_A": m.pixel_size_A,
                   "equal_to_written": bool(np.array_equal(m.data[::-1] if kind == "ser" else m.data, arr))}
            if Path(a.ref).exists():
                r = subprocess.run([a.ref, "-c", REF, str(p)], capture_output=True, text=True, timeout=600)
                if r.returncode == 0:
                    ref = json.loads(r.stdout.strip().splitlines()[-1])
                    rec["ncempy_s"] = round(ref["s"], 4)
                    rec["speedup"] = round(ref["s"] / min(ts), 2)
                    rec["same_sum"] = bool(np.isclose(ref["sum"], float(m.data.sum(dtype=np.float64)),
                                                      rtol=1e-6))
                else:
                    rec["ncempy_error"] = r.stderr.strip().splitlines()[-1][:200]
            out[kind] = rec
    print(json.dumps(out))


if __name__ == "__main__":
    main()
