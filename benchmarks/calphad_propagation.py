"""Propagation speed: seconds per posterior draw (invariant points + diagram), 1 vs 2 Dask
workers, on the Cu-Mg model with two free offsets (draws from N(0, 1000 J/mol)).

Two routes on the same warmed workers: ``run_diagrams`` (draws as futures on a client)
and the workflow of ``matterflow calphad propagate`` (read_chain -> posterior -> diagram
mapped over draws -> summarize, built with ``run_steps`` and run on the same cluster
through ``scheduler=``; the time is the diagram step's own ``duration_s``).

Prints one JSON line: seconds per draw with 1 and 2 workers for both routes, the
speed-ups, and the projected wall time of 50 draws with 2 workers.

    python benchmarks/calphad_propagation.py [--draws 16]
"""
import argparse
import json
import time
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=16)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import tempfile
    from pathlib import Path

    import h5py

    from matterflow.calphad.propagate import run_diagrams
    from matterflow.calphad.tasks import build_model, sample
    from matterflow.core.execute import dask_client, run_steps
    from matterflow.core.store import atomic_h5, write_outputs

    sp = sample.make_params({})
    model, dbf = build_model(None, sp)
    tdb = dbf.to_string(fmt="tdb")
    names = list(model.parameter_names)
    labels = [i.label for i in model.invariants(t_min=600, t_max=1400)]
    draws = np.random.default_rng(0).normal(0, 1000.0, size=(args.draws, len(names)))
    dparams = {"t_min": 600, "t_max": 1400, "n_temperatures": 41, "n_x": 51}
    tmp = Path(tempfile.mkdtemp(prefix="calphad-bench-"))
    chain = tmp / "chain.h5"  # the draws as a one-walker chain: posterior takes each once
    with atomic_h5(chain) as f:
        write_outputs(f, {"chain": draws[:, None, :], "model_tdb": tdb, "parameter_names": names},
                      {"chain": "J/mol"})
    model = {"model_tdb": "chain.model_tdb", "parameter_names": "chain.parameter_names"}
    steps = [
        {"id": "chain", "task": "calphad.read_chain", "inputs": {"chain": chain}},
        {"id": "posterior", "task": "calphad.posterior", "inputs": {"chain": "chain.chain", **model},
         "params": {"n_draws": args.draws, "burn_fraction": 0.0, "t_min": 600, "t_max": 1400}},
        {"id": "diagram", "task": "calphad.diagram", "params": dparams,
         "inputs": {"draw": "posterior.draws", "labels": "posterior.invariant_labels", **model}},
    ]
    times, flow = {}, {}
    for workers in (1, 2):
        with dask_client(workers=workers) as client:
            run_diagrams(draws[:workers], tdb, names, labels, dparams, client=client)  # warm
            t0 = time.perf_counter()
            vals = run_diagrams(draws, tdb, names, labels, dparams, client=client)
            times[workers] = (time.perf_counter() - t0) / len(draws)
            out = tmp / f"run{workers}"
            run_steps(steps, out, name="bench", scheduler=client.scheduler.address)
            with h5py.File(out / "results.h5") as f:
                flow[workers] = float(f["diagram"].attrs["duration_s"]) / len(draws)
    t0 = time.perf_counter()
    run_diagrams(draws[:4], tdb, names, labels, dparams)
    serial = (time.perf_counter() - t0) / 4
    found = np.mean(np.isfinite(vals["invariant_temperature_k"]))
    print(json.dumps({
        "benchmark": "calphad_propagation",
        "figure": "seconds per posterior draw (invariants + phase diagram), Dask workers",
        "s_per_draw_1_worker": round(times[1], 3), "s_per_draw_2_workers": round(times[2], 3),
        "speedup_2_vs_1": round(times[1] / times[2], 2),
        "workflow_s_per_draw_1_worker": round(flow[1], 3),
        "workflow_s_per_draw_2_workers": round(flow[2], 3),
        "workflow_speedup_2_vs_1": round(flow[1] / flow[2], 2),
        "s_per_draw_in_process": round(serial, 3),
        "projected_50_draws_2_workers_s": round(50 * times[2], 1),
        "draws": args.draws, "invariants_found_fraction": round(float(found), 3),
        "labels": labels,
    }))


if __name__ == "__main__":
    main()
