"""``matterflow dft1d pinn``: train (or load) the parametric TDSE PINN and compare it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import console, handle_errors, make_progress, save_figure
from matterflow.core.errors import InputError

app = typer.Typer(help="The parametric TDSE PINN.")


@app.command("pinn")
@handle_errors
def pinn(
    e0: Annotated[list[float] | None, typer.Option(
        "--e0", help="Field amplitude (a.u.) to compare with Crank–Nicolson; repeat the option. "
                     "Default: 5 values across the trained range.")] = None,
    load: Annotated[Path | None, typer.Option(
        help="Load a trained model instead of training one.")] = None,
    save: Annotated[Path | None, typer.Option(
        help="Where to write the trained model (default: pinn_tdse.pt; not with --load).")] = None,
    potential: Annotated[str, typer.Option(help="Binding potential: harmonic or soft_coulomb.")] = "harmonic",
    electrons: Annotated[int, typer.Option(
        help="1, or 2 (singlet, time-dependent Kohn–Sham with exact exchange).")] = 1,
    omega: Annotated[float, typer.Option(help="Field frequency ω (a.u.).")] = 1.0,
    t_final: Annotated[float, typer.Option("--t-final", help="Time window (a.u.).")] = 2.0,
    x_max: Annotated[float, typer.Option("--x-max", help="Box half width (bohr).")] = 5.0,
    e0_min: Annotated[float, typer.Option("--e0-min", help="Smallest trained E₀ (a.u.).")] = 0.0,
    e0_max: Annotated[float, typer.Option("--e0-max", help="Largest trained E₀ (a.u.).")] = 1.0,
    adam_steps: Annotated[int, typer.Option("--adam-steps", help="Adam iterations.")] = 1000,
    lbfgs_steps: Annotated[int, typer.Option("--lbfgs-steps", help="L-BFGS iterations.")] = 60,
    width: Annotated[int, typer.Option(help="Hidden units per layer.")] = 64,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 4,
    threads: Annotated[int, typer.Option(help="Torch threads (0: torch default).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    figure: Annotated[Path | None, typer.Option(
        help="Write a PNG of PINN vs reference at the largest --e0.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a PINN (x, t, E₀) → ψ for a driven 1D electron once; compare with Crank–Nicolson."""
    import numpy as np

    from matterflow.dft1d.pinn import TDSEPINN, break_even_queries, compare_with_reference

    if load is not None and save is not None:
        raise InputError("--save: not with --load (the loaded model is already saved)")
    if load is not None:
        model = TDSEPINN.load(load)
        trained_now = False
    else:
        model = TDSEPINN(potential=potential, n_electrons=electrons, omega=omega, t_final=t_final, x_max=x_max,
                         e0_min=e0_min, e0_max=e0_max, adam_steps=adam_steps,
                         lbfgs_steps=lbfgs_steps, width=width, depth=depth, n_threads=threads,
                         seed=seed)
        with make_progress(quiet or as_json) as progress:
            bar = progress.add_task("training PINN", total=adam_steps + lbfgs_steps)

            def step(done: int, total: int, loss: float) -> None:
                progress.update(bar, completed=done,
                                description=f"training PINN (residual {loss:.2e})")

            model.fit(progress=step)
        save = save or Path("pinn_tdse.pt")
        model.save(save)
        trained_now = True
    values = list(e0) if e0 else list(np.linspace(model.e0_min, model.e0_max, 5))
    for v in values:
        if not model.e0_min <= v <= model.e0_max:
            raise InputError(f"--e0: {v} outside the trained range [{model.e0_min}, {model.e0_max}]")
    rows = [compare_with_reference(model, v) for v in values]
    inf_t = float(np.mean([r["inference_time_s"] for r in rows]))
    ref_t = float(np.mean([r["reference_time_s"] for r in rows]))
    n_star = break_even_queries(model.fit_time_s_, inf_t, ref_t)
    summary = {"n_electrons": model.n_electrons, "e0": values, "density_error": [r["density_error"] for r in rows],
               "static_error": [r["static_error"] for r in rows],
               "worst_density_error": max(r["density_error"] for r in rows),
               "worst_e0": values[int(np.argmax([r["density_error"] for r in rows]))],
               "train_time_s": model.fit_time_s_, "inference_time_s": inf_t,
               "reference_time_s": ref_t,
               "break_even_queries": None if not np.isfinite(n_star) else n_star,
               "model": str(save if trained_now else load)}
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        from matterflow.dft1d.pinn_tasks import _comparison_figures

        i = int(np.argmax(values))
        r = rows[i]
        outputs = {"e0": np.array([values[i]]), "x_bohr": r["x"], "t_au": r["t"],
                   "density_pinn": r["density_pinn"][None], "density_reference": r["density_reference"][None],
                   "dipole_pinn": r["dipole_pinn"][None], "dipole_reference": r["dipole_reference"][None],
                   "density_error": np.array([r["density_error"]])}
        fig = next(iter(_comparison_figures(outputs, None).values()))
        save_figure(fig, figure)
    if as_json:
        print(json.dumps(summary))
        return
    from rich.table import Table

    table = Table(title="PINN vs Crank–Nicolson (density, relative L2 over x and t)")
    for col in ("E₀ (a.u.)", "PINN error", "field-free guess error"):
        table.add_column(col, justify="right")
    for v, r in zip(values, rows, strict=True):
        table.add_row(f"{v:.3g}", f"{r['density_error']:.2%}", f"{r['static_error']:.2%}")
    console.print(table)
    console.print(f"worst E₀ = {summary['worst_e0']:.3g}: error {summary['worst_density_error']:.2%}")
    console.print(f"training {model.fit_time_s_:.1f} s; per new E₀: PINN {inf_t * 1e3:.1f} ms, "
                  f"Crank–Nicolson {ref_t * 1e3:.1f} ms")
    if np.isfinite(n_star):
        console.print(f"break-even after {n_star:.0f} new E₀ queries")
    else:
        console.print("the PINN never breaks even here: one PINN query costs as much as or more "
                      "than one Crank–Nicolson run")
    console.print(f"model: {summary['model']}" + (f"\nfigure: {figure}" if figure else ""))
