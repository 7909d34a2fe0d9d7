"""``matterflow dft1d pinn-tdks``: the parametric TDKS PINN of a singlet pair against Crank–Nicolson."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import console, handle_errors, make_progress, save_figure
from matterflow.core.errors import InputError

app = typer.Typer(help="The parametric time-dependent Kohn–Sham PINN.")


@app.command("pinn-tdks")
@handle_errors
def pinn_tdks(
    load: Annotated[Path | None, typer.Option(
        help="Load a trained model (from --save) instead of training one.")] = None,
    save: Annotated[Path | None, typer.Option(
        help="Where to write the trained model (default: pinn_tdks.pt; not with --load).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="NeXus/HDF5 file of the comparison.")] = Path("pinn_tdks.h5"),
    figure: Annotated[Path | None, typer.Option(
        help="PNG of density(x,t) and dipole(t), PINN vs Crank–Nicolson, at the worst case.")] = None,
    test_e0: Annotated[list[float] | None, typer.Option(
        "--test-e0", help="Test amplitudes E₀ (a.u.); repeat. Default 0.4 and 1 × e0-max.")] = None,
    test_omega: Annotated[list[float] | None, typer.Option(
        "--test-omega", help="Test frequencies ω (a.u.); repeat. Default: min, mid, max.")] = None,
    test_state: Annotated[list[int] | None, typer.Option(
        "--test-state", help="Test initial states (0, 1); repeat. Default: the trained ones.")] = None,
    e0_min: Annotated[float, typer.Option("--e0-min", help="Smallest trained E₀ (a.u.).")] = 0.0,
    e0_max: Annotated[float, typer.Option("--e0-max", help="Largest trained E₀ (a.u.).")] = 0.05,
    omega_min: Annotated[float, typer.Option("--omega-min", help="Smallest trained ω (a.u.).")] = 0.3,
    omega_max: Annotated[float, typer.Option("--omega-max", help="Largest trained ω (a.u.).")] = 1.0,
    state: Annotated[list[int] | None, typer.Option(
        "--state", help="Trained initial states: 0 ground, 1 first excited orbital (doubly "
                        "occupied, self-consistent); repeat. Default both.")] = None,
    charge: Annotated[float, typer.Option(help="Charge Z of the soft-Coulomb well -Z/sqrt(x²+1).")] = 2.0,
    t_final: Annotated[float, typer.Option("--t-final", help="Time window (ħ/Eₕ).")] = 10.0,
    x_max: Annotated[float, typer.Option("--x-max", help="Box half width (bohr).")] = 10.0,
    adam_steps: Annotated[int, typer.Option(
        "--adam-steps", help="Adam iterations (the benchmark's figures: 12000).")] = 3000,
    lbfgs_steps: Annotated[int, typer.Option("--lbfgs-steps", help="L-BFGS iterations.")] = 0,
    learning_rate: Annotated[float, typer.Option("--lr", help="Initial Adam step.")] = 5e-3,
    width: Annotated[int, typer.Option(help="Hidden units per layer.")] = 64,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 4,
    causal_eps: Annotated[float, typer.Option("--causal-eps", help="Causal weighting (0: off).")] = 50.0,
    ground_weight: Annotated[float, typer.Option(
        "--ground-weight", help="Weight of the ground-state residual.")] = 2.0,
    n_x: Annotated[int, typer.Option("--n-x", help="Reference grid points.")] = 256,
    n_steps: Annotated[int, typer.Option("--n-steps", help="Reference time steps.")] = 1000,
    n_saved: Annotated[int, typer.Option("--n-saved", help="Compared times.")] = 101,
    threads: Annotated[int, typer.Option(help="Torch threads (0: torch default).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one PINN φ(x, t; E₀, ω, state) for the driven two-electron TDKS equation; compare.

    The equation is non-linear (exact exchange: v_Hxc = v_H/2); the reference is the
    self-consistent Crank–Nicolson propagator of ``matterflow.dft1d.tdks``.
    """
    import numpy as np

    from matterflow.dft1d.pinn_tdks import TDKSPINN, comparison_figure, evaluate_tdks, write_nexus

    if load is not None and save is not None:
        raise InputError("--save: not with --load (the loaded model is already saved)")
    if n_saved < 2 or n_steps % (n_saved - 1):
        raise InputError(f"--n-steps: must be a multiple of --n-saved - 1; got {n_steps}, {n_saved}")
    if load is not None:
        model = TDKSPINN.load(load)
    else:
        model = TDKSPINN(charge=charge, t_final=t_final, x_max=x_max, e0_min=e0_min,
                         e0_max=e0_max, omega_min=omega_min, omega_max=omega_max,
                         states=tuple(state) if state else (0, 1), adam_steps=adam_steps,
                         lbfgs_steps=lbfgs_steps, learning_rate=learning_rate, width=width,
                         depth=depth, causal_eps=causal_eps, ground_weight=ground_weight,
                         n_threads=threads, seed=seed)
        model._validate()
    e0s = test_e0 or [0.4 * model.e0_max, model.e0_max]
    omegas = test_omega or sorted({model.omega_min, 0.5 * (model.omega_min + model.omega_max),
                                   model.omega_max})
    states = test_state or [int(s) for s in model.states]
    cases = list(itertools.product(e0s, omegas, states))
    for case in cases:
        model.check_query(*case)
    if load is None:
        with make_progress(quiet or as_json) as progress:
            bar = progress.add_task("training TDKS PINN", total=adam_steps + lbfgs_steps)

            def step(done: int, total: int, loss: float) -> None:
                progress.update(bar, completed=done,
                                description=f"training TDKS PINN (residual {loss:.2e})")

            model.fit(progress=step)
        save = save or Path("pinn_tdks.pt")
        model.save(save)
    with make_progress(quiet or as_json) as progress:
        bar = progress.add_task("Crank–Nicolson references", total=len(cases))
        evaluation = evaluate_tdks(model, cases, n_x=n_x, n_steps=n_steps, n_saved=n_saved,
                                   progress=lambda done, _: progress.update(bar, completed=done))
    rows = evaluation["rows"]
    errs = [r["density_error"] for r in rows]
    worst = int(np.argmax(errs))
    inf_t, ref_t = evaluation["mean_inference_time_s"], evaluation["mean_reference_time_s"]
    write_nexus(out, model, evaluation)
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        save_figure(comparison_figure(rows[worst], cases[worst]), figure)
    n_star = evaluation["break_even_queries"]
    summary = {"cases": [list(c) for c in cases], "density_error": errs,
               "induced_error": [r["induced_error"] for r in rows],
               "static_error": [r["static_error"] for r in rows],
               "peak_error": [r["peak_error"] for r in rows],
               "worst_density_error": errs[worst], "worst_case": list(cases[worst]),
               "worst_peak_error": evaluation["worst_peak_error"],
               "train_time_s": model.fit_time_s_, "inference_time_s": inf_t,
               "reference_time_s": ref_t,
               "break_even_queries": None if not np.isfinite(n_star) else n_star,
               "out": str(out), "model": str(save or load)}
    if as_json:
        print(json.dumps(summary))
        return
    from rich.table import Table

    table = Table(title="TDKS PINN vs Crank–Nicolson (density: relative L2 over x and t)")
    for col in ("E₀", "ω", "state", "PINN error", "field-free guess", "induced-density error",
                "spectrum peak shift"):
        table.add_column(col, justify="right")
    for (e, w, s), r in zip(cases, rows, strict=True):
        table.add_row(f"{e:.3g}", f"{w:.3g}", str(s), f"{r['density_error']:.2%}",
                      f"{r['static_error']:.2%}", f"{r['induced_error']:.1%}",
                      f"{r['peak_error']:.1%}")
    console.print(table)
    console.print(f"worst case {cases[worst]}: density error {errs[worst]:.2%} (goal ≤ 5 %); "
                  f"worst spectrum peak shift {evaluation['worst_peak_error']:.1%} (goal ≤ 2 %)")
    console.print(f"training {model.fit_time_s_:.1f} s; per query: PINN {inf_t * 1e3:.1f} ms, "
                  f"Crank–Nicolson {ref_t * 1e3:.1f} ms")
    console.print(f"break-even after {n_star:.0f} new queries" if np.isfinite(n_star) else
                  "the PINN never breaks even: a query costs as much as a Crank–Nicolson run")
    console.print(f"results: {out}" + (f"\nfigure: {figure}" if figure else ""))
