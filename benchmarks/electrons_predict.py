"""Chunked LDOS inference: grid points per second and peak memory for 1×, 8×, 27× cells.

A model (bispectrum descriptors, twojmax 4, 2×64 network, 171 energies) is
fitted briefly on the 4-atom cubic Al cell (12³ grid, 0.34 Å spacing); then
``predict_observables`` (descriptors → LDOS → DOS, Fermi level, density,
band and total energy; two passes, 4096-point chunks, 2 Dask threads) runs on
the 1×, 2×2×2 and 3×3×3 supercells at the same grid spacing, each in a fresh
process so that its peak RSS is its own.

Baselines in the same run: time per point of the 1× cell (linear time means
the 27× cell has the same per-point rate) and the memory the whole LDOS would
take (n_points × n_energies × 8 bytes), which chunking avoids.

The same prediction also runs the way ``matterflow electrons predict`` runs it: a
workflow (read_structures -> predict) built with ``run_steps`` on a 2-thread local
cluster, the chunks spread over its threads (``workflow_points_per_s``: grid points
over the predict step's own ``duration_s``; measured after the peak RSS).

Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ENERGIES = np.arange(-5.0, 12.0, 0.1)
GRID = 12
CHUNK = 4096


def _model_file(path: str) -> None:
    from ase.build import bulk

    from matterflow.electrons.descriptors import BispectrumParams, bispectrum_descriptors
    from matterflow.electrons.model import FeedForwardLdosModel, LdosSetup

    params = BispectrumParams(twojmax=4)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions += np.random.default_rng(0).normal(0, 0.1, atoms.positions.shape)
    x = bispectrum_descriptors(atoms, (GRID,) * 3, params).reshape(GRID**3, -1)
    free = np.sqrt(np.clip(ENERGIES + 3.0, 0, None)) / (2 * np.pi**2) / 3.81**1.5
    y = free[None, :] * (1 + 0.1 * np.tanh(x[:, :1] - x[:, :1].mean()))
    setup = LdosSetup(energy_grid_ev=tuple(ENERGIES), descriptor_kind="bispectrum",
                      descriptor_params=params.model_dump(), grid_spacing_ang=(4.05 / GRID,) * 3,
                      temperature_k=298.0, ldos_smearing_ev=0.1, valence_electrons={"Al": 3.0})
    FeedForwardLdosModel((64, 64), train={"max_epochs": 3, "batch_size": 128}, setup=setup).fit(x, y).save(path)


def _run_one(path: str, repeat: int) -> None:
    import dask
    from ase.build import bulk

    from matterflow.electrons.model import load_model
    from matterflow.electrons.predict import predict_observables

    model = load_model(path)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.positions += np.random.default_rng(repeat).normal(0, 0.1, atoms.positions.shape)
    with dask.config.set(num_workers=2):   # warm-up: numba compilation, thread pools
        predict_observables(model, bulk("Al", "fcc", a=4.05, cubic=True), grid_shape=(4, 4, 4),
                            chunk_points=CHUNK, scheduler="threads")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with dask.config.set(num_workers=2):
        t0 = time.perf_counter()
        p = predict_observables(model, atoms, chunk_points=CHUNK, scheduler="threads")
        dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = int(p.timings["n_points"])
    flow_pps = _workflow_points_per_s(path, atoms, n)
    print(json.dumps({"repeat": repeat, "atoms": len(atoms), "points": n, "seconds": dt,
                      "points_per_s": n / dt, "workflow_points_per_s": flow_pps,
                      "peak_rss_mb": peak, "rss_before_mb": base,
                      "whole_ldos_mb": n * len(ENERGIES) * 8 / 2**20,
                      "total_energy_per_atom_ev": p.total_energy_ev / len(atoms)}))


def _workflow_points_per_s(model_path: str, atoms, n_points: int) -> float:
    """Grid points per second of the predict step of the `electrons predict` workflow."""
    from pathlib import Path

    import h5py

    from matterflow.core.execute import run_steps

    tmp = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    atoms.write(tmp / "cell.extxyz")
    steps = [{"id": "structure", "task": "electrons.read_structures",
              "inputs": {"structure": tmp / "cell.extxyz"}},
             {"id": "predict", "task": "electrons.predict", "params": {"chunk_points": CHUNK},
              "inputs": {"model": Path(model_path),
                         **{k: f"structure.{k}" for k in ("positions", "cell", "numbers")}}}]
    run_steps(steps, tmp / "run", name="bench", workers=2, processes=False)
    with h5py.File(tmp / "run" / "results.h5") as f:
        assert int(np.prod(f["predict/density"].shape)) == n_points
        return n_points / float(f["predict"].attrs["duration_s"])


def main() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        _model_file(path)
        rows = []
        for rep in (1, 2, 3):
            out = subprocess.run([sys.executable, __file__, "--one", path, str(rep)], capture_output=True,
                                 text=True, check=True, env=env)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    one, big = rows[0], rows[-1]
    print(json.dumps({
        "benchmark": "electrons_predict",
        "chunk_points": CHUNK,
        "cells": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        "points_per_s_27x": round(big["points_per_s"], 1),
        "workflow_points_per_s_27x": round(big["workflow_points_per_s"], 1),
        "ratio_time_per_point_27x_vs_1x": round(one["points_per_s"] / big["points_per_s"], 3),
        "ratio_time_per_point_27x_vs_8x": round(rows[1]["points_per_s"] / big["points_per_s"], 3),
        "peak_rss_growth_mb_1x_to_27x": round(big["peak_rss_mb"] - one["peak_rss_mb"], 1),
        "whole_ldos_27x_mb": round(big["whole_ldos_mb"], 1),
    }))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        _run_one(sys.argv[2], int(sys.argv[3]))
    else:
        main()
