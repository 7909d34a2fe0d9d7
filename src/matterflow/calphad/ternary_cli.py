"""``matterflow calphad section|liquidus|section-propagate|section-propose``: ternary systems.

Merged into the calphad sub-app by ``calphad/cli.py`` (``app.add_typer(ternary_cli.app)``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import (
    console,
    handle_errors,
    parse_key_values,
    read_result_file,
    save_figures,
    write_result_file,
)
from matterflow.core.errors import InputError

__all__ = ["app"]

app = typer.Typer(help="Ternary systems: isothermal sections, liquidus projections, their "
                  "uncertainty and the next experiment.")

Tdb = Annotated[Path | None, typer.Option(help="Ternary TDB (default: Cr-Ti-V of Ghosh 2002, "
                                          "shipped with pycalphad's tests).")]
Components = Annotated[str | None, typer.Option(help="A,B,C; compositions are x_B, x_C "
                                                "(default: the database's three elements).")]
Phases = Annotated[list[str] | None, typer.Option("--phase", help="Phase to include (repeat; "
                                                  "default: all).")]
Step = Annotated[float, typer.Option(help="Spacing of the composition lattice.")]
Margin = Annotated[float, typer.Option(help="Smallest mole fraction on the lattice.")]
NGrid = Annotated[int, typer.Option(help="Site-fraction points per axis of a one-sublattice "
                                    "phase.")]
Temperature = Annotated[float, typer.Option("--T", "--temperature", help="Temperature (K).")]


def _check_tdb(tdb: Path | None) -> None:
    if tdb is not None and not tdb.exists():
        raise InputError(f"--tdb {tdb}: not found")


def _inputs(tdb: Path | None) -> dict:
    return {"tdb": tdb} if tdb is not None else {}



@app.command("section")
@handle_errors
def section_cmd(
    tdb: Tdb = None,
    components: Components = None,
    temperature: Temperature = 1200.0,
    phase: Phases = None,
    step: Step = 0.02,
    margin: Margin = 0.01,
    n_grid: NGrid = 60,
    refine: Annotated[int, typer.Option(help="Levels of local refinement at phase "
                                        "boundaries.")] = 2,
    compare: Annotated[bool, typer.Option("--compare/--no-compare", help="Also run "
                       "pycalphad's equilibrium on the same grid (slow) and report the "
                       "agreement.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("section"),
) -> None:
    """Isothermal section of a ternary: phase assemblage over the Gibbs triangle at one T.

    Writes OUT/section.h5 (assemblage, phase fractions, G, tie-lines, tie-triangles;
    with --compare pycalphad's assemblage and the agreement) and OUT/section.png.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import ternary_figures
    from matterflow.calphad.ternary_tasks import section

    _check_tdb(tdb)
    params = {"components": components, "temperature_k": temperature, "phases": phase,
              "step": step, "margin": margin, "n_grid": n_grid, "refine": refine,
              "compare_pycalphad": compare}
    res = section(tdb, params=params)
    out.mkdir(parents=True, exist_ok=True)
    h5 = write_result_file(out / "section.h5", res, inputs=_inputs(tdb),
                           parameters=section.make_params(params).model_dump())
    png = save_figures(ternary_figures.section_figures(res.__dict__), stem=out / "section")
    console.print(f"{'-'.join(res.components)} at {res.temperature_k:g} K: {len(res.x)} "
                  f"compositions in {res.seconds:.3f} s")
    for lab, n in Counter(res.labels).most_common():
        console.print(f"  {n:5d}  {lab}")
    if compare:
        console.print(f"pycalphad equilibrium: {res.reference_seconds:.2f} s "
                      f"({res.reference_seconds / res.seconds:.1f}x ours); same assemblage "
                      f"on {100 * res.agreement:.1f} % of the grid")
    console.print(f"results: {h5}\nfigure: {png[0]}")

@app.command("liquidus")
@handle_errors
def liquidus_cmd(
    tdb: Tdb = None,
    components: Components = None,
    t_min: Annotated[float, typer.Option(help="Lowest scan temperature (K).")] = 1400.0,
    t_max: Annotated[float, typer.Option(help="Highest scan temperature (K); all liquid "
                                         "there.")] = 2300.0,
    dt: Annotated[float, typer.Option(help="Scan step (K); crossings interpolated.")] = 20.0,
    phase: Phases = None,
    step: Step = 0.05,
    margin: Margin = 0.01,
    n_grid: NGrid = 60,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("liquidus"),
) -> None:
    """Liquidus projection: liquidus temperature and primary phase over the triangle.

    Writes OUT/liquidus.h5 and OUT/liquidus.png.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matterflow.calphad import ternary_figures
    from matterflow.calphad.ternary_tasks import liquidus

    _check_tdb(tdb)
    params = {"components": components, "t_min_k": t_min, "t_max_k": t_max, "dt_k": dt,
              "phases": phase, "step": step, "margin": margin, "n_grid": n_grid}
    res = liquidus(tdb, params=params)
    out.mkdir(parents=True, exist_ok=True)
    h5 = write_result_file(out / "liquidus.h5", res, inputs=_inputs(tdb),
                           parameters=liquidus.make_params(params).model_dump())
    png = save_figures(ternary_figures.liquidus_figures(res.__dict__), stem=out / "liquidus")
    ok = np.isfinite(res.liquidus_k)
    console.print(f"liquidus of {'-'.join(res.components)} at {len(res.x)} compositions in "
                  f"{res.seconds:.1f} s; found at {int(ok.sum())}")
    if ok.any():
        i = int(np.nanargmin(res.liquidus_k))
        console.print(f"  lowest {res.liquidus_k[i]:.1f} K at x = {res.x[i].round(3).tolist()}"
                      f", highest {np.nanmax(res.liquidus_k):.1f} K")
    for ph, n in Counter(p for p in res.primary_phase if p).most_common():
        console.print(f"  primary {ph}: {n} compositions")
    console.print(f"results: {h5}\nfigure: {png[0]}")

@app.command("section-propagate")
@handle_errors
def section_propagate_cmd(
    chain: Annotated[Path | None, typer.Argument(help="Chain file from `calphad sample` "
                     "on a ternary model (optional: without it the draws come from the "
                     "prior on --offset).")] = None,
    tdb: Tdb = None,
    components: Components = None,
    temperature: Temperature = 1200.0,
    offset: Annotated[list[str] | None, typer.Option(help="NAME=TARGET: a free offset on a "
                      "TDB parameter, e.g. DT0='G(BCC_A2,CR,TI,V:VA;0)' (repeat).")] = None,
    prior_std: Annotated[float, typer.Option(help="Std of each offset's Normal prior "
                                             "(J/mol).")] = 2000.0,
    draws: Annotated[int, typer.Option(help="Parameter draws.")] = 20,
    burn: Annotated[float, typer.Option(help="Burn-in fraction of the chain.")] = 0.5,
    phase: Phases = None,
    step: Step = 0.05,
    margin: Margin = 0.01,
    n_grid: NGrid = 60,
    refine: Annotated[int, typer.Option(help="Levels of local refinement.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed of the draws.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("section"),
) -> None:
    """Parameter draws -> probability of each phase region over (x_B, x_C) at one T.

    Writes OUT/section_draws.h5 (the input of `calphad section-propose`) and
    OUT/section_probability.png.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matterflow.calphad import ternary_figures
    from matterflow.calphad.ternary_tasks import section_ensemble

    _check_tdb(tdb)
    params: dict = {"components": components, "temperature_k": temperature, "phases": phase,
                    "step": step, "margin": margin, "n_grid": n_grid, "refine": refine,
                    "n_draws": draws, "burn_fraction": burn, "prior_std": prior_std,
                    "seed": seed}
    inputs: dict = {}
    if chain is not None:
        ch = read_result_file(chain, "chain")
        for key in ("chain", "model_tdb", "parameter_names"):
            if key not in ch:
                raise InputError(f"{chain}: no {key!r} dataset; is it a `calphad sample` "
                                 "output?")
        inputs = {"chain": ch["chain"], "model_tdb": str(ch["model_tdb"]),
                  "parameter_names": [str(n) for n in ch["parameter_names"]]}
    elif offset:
        params["offsets"] = parse_key_values(offset, "--offset", key="NAME", value="TARGET",
                                             example="DT0='G(BCC_A2,CR,TI,V:VA;0)'")
    else:
        raise InputError("give a chain file or at least one --offset NAME=TARGET")
    res = section_ensemble(tdb, params=params, **inputs)
    out.mkdir(parents=True, exist_ok=True)
    h5 = write_result_file(out / "section_draws.h5", res,
                           inputs={**_inputs(tdb), **({"chain": chain} if chain else {})},
                           parameters=section_ensemble.make_params(params).model_dump())
    png = save_figures(ternary_figures.ensemble_figures(res.__dict__),
                       stem=out / "section_probability")
    console.print(f"{len(res.draws)} draws ({res.source}) of {', '.join(res.parameter_names)}"
                  f" at {res.temperature_k:g} K: {res.seconds_per_draw:.3f} s per section")
    uncertain = res.modal_probability < 0.9
    console.print(f"  assemblage uncertain (P(modal) < 0.9) at {int(uncertain.sum())} of "
                  f"{len(res.x)} compositions; max entropy {np.max(res.entropy):.3f} nat")
    for k, lab in enumerate(res.label_names):
        console.print(f"  {lab:40s} mean area fraction {res.probability[k].mean():.3f}")
    console.print(f"draws: {h5}\nfigure: {png[0]}")

@app.command("section-propose")
@handle_errors
def section_propose_cmd(
    draws: Annotated[Path, typer.Argument(help="section_draws.h5 from `calphad "
                                          "section-propagate`.")],
    top_k: Annotated[int, typer.Option(help="Experiments to propose.")] = 5,
    min_separation: Annotated[float, typer.Option(help="Smallest distance between picks in "
                                                  "(x_B, x_C).")] = 0.05,
    exclude: Annotated[list[str] | None, typer.Option(help="x_B,x_C already measured "
                       "(repeat).")] = None,
    out: Annotated[Path | None, typer.Option(help="Figure (PNG) of the entropy map.")] = None,
) -> None:
    """Next experiments at one T: the compositions whose assemblage is most uncertain."""
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import ternary_figures
    from matterflow.calphad.ternary_tasks import section_propose

    d = read_result_file(draws, "draws")
    if "codes" not in d or "label_names" not in d:
        raise InputError(f"{draws}: no 'codes'; is it a `calphad section-propagate` output?")
    ex = []
    for e in exclude or []:
        try:
            a, b = (float(v) for v in e.split(","))
        except ValueError:
            raise InputError(f"--exclude {e!r}: expected x_B,x_C (e.g. 0.3,0.2)") from None
        ex.append((a, b))
    res = section_propose(d["codes"], d["x"], [str(n) for n in d["label_names"]],
                          [str(c) for c in d.get("components", [])],
                          float(d.get("temperature_k", float("nan"))), ex or None,
                          params={"top_k": top_k, "min_separation": min_separation})
    comps = res.components or ["A", "B", "C"]
    console.print(f"rank  x({comps[1]})  x({comps[2]})  entropy (nat)  most likely (p)")
    for r in range(len(res.x)):
        console.print(f"{r + 1:4d}  {res.x[r, 0]:.3f}   {res.x[r, 1]:.3f}   "
                      f"{res.entropy[r]:.3f}          {res.modal_label[r]} "
                      f"({res.modal_probability[r]:.2f})")
    if not len(res.x):
        console.print("no composition is uncertain: every draw predicts the same section")
    fig = out or draws.with_name("section_proposal.png")
    save_figures(ternary_figures.proposal_figures(res.__dict__), stem=fig.with_suffix(""))
    console.print(f"figure: {fig}")
