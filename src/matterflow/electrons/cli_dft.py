"""CLI of the DFT-data part: ``matterflow electrons dft | observables | import-mala | broaden``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import (
    Cluster,
    Force,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    Workers,
    console,
    handle_errors,
    make_progress,
    parse_ints,
)
from matterflow.core.errors import InputError

app = typer.Typer(help="DFT data: snapshots, observables, MALA import, re-broadening.")

RUN_DIR = ".matterflow-run"  # results.h5 and the step cache, beside the snapshot files


def _save_snapshots(results: Path, step: str, targets: list[Path]) -> list[tuple]:
    """Write item k of the mapped ``step`` of ``results`` to ``targets[k]``, one at a time."""
    import json

    import h5py
    import numpy as np
    from ase import Atoms

    from matterflow.electrons.snapshot import Snapshot, save_snapshot

    rows = []
    with h5py.File(results, "r") as f:
        g = f[step]
        for k, path in enumerate(targets):
            def item(name: str, k: int = k) -> np.ndarray:
                return g[name][k]

            meta_raw = item("meta_json")
            meta = json.loads(meta_raw.decode() if isinstance(meta_raw, bytes) else str(meta_raw))
            atoms = Atoms(numbers=item("numbers"), positions=item("positions"), cell=item("cell"),
                          pbc=True)
            snap = Snapshot(atoms=atoms, grid_shape=tuple(int(n) for n in item("grid_shape")),
                            energy_grid_ev=item("energy_grid_ev"), ldos=item("ldos"),
                            density=item("density"), eigenvalues_ev=item("eigenvalues_ev"),
                            kweights=item("kweights"), fermi_ev=float(item("fermi_ev")),
                            electronic_temperature_k=float(item("electronic_temperature_k")),
                            band_energy_ev=float(item("band_energy_ev")),
                            total_energy_ev=float(item("total_energy_ev")),
                            ldos_smearing_ev=float(item("ldos_smearing_ev")), meta=meta)
            save_snapshot(snap, path)
            rows.append((str(path), len(atoms), snap.total_energy_ev, snap.fermi_ev,
                         snap.band_energy_ev, float(meta.get("total_seconds", float("nan")))))
    return rows


SYSTEM_DEFAULTS: dict[str, dict] = {
    # electronic_temperature None: the ionic --temperature
    "al": {"repeat": "1,1,1", "kpts": "2,2,2", "grid_spacing": 0.3375, "electronic_temperature": None,
           "smearing": 0.05, "energy_min": -4.5, "energy_max": 11.0, "energy_step": 0.05},
    # dense H2 (issue 22's study): Γ point, a fine grid so the LDOS holds the cell's electrons,
    # Fermi-Dirac 3000 K, LDOS broadened 0.2 eV on a window that covers the H2 bands
    "hydrogen": {"repeat": "2,2,1", "kpts": "1,1,1", "grid_spacing": 0.2, "electronic_temperature": 3000.0,
                 "smearing": 0.2, "energy_min": -18.0, "energy_max": 10.0, "energy_step": 0.1},
}
"""Defaults of ``electrons dft`` per ``--system`` (the options marked [system] in its help)."""


@app.command("dft")
@handle_errors
def dft(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for snapshot_NNN.h5 files.")] = Path("dft-snapshots"),
    snapshots: Annotated[int, typer.Option(help="Number of snapshots.")] = 2,
    system: Annotated[str, typer.Option(
        help="al: thermally displaced fcc aluminium; hydrogen: boxes of H2 molecules (dense molecular "
             "solid or liquid, see --density, --phase). Sets the defaults marked [system].")] = "al",
    repeat: Annotated[str | None, typer.Option(
        metavar="N,N,N", help="al: repeats of the 4-atom fcc cube (1,1,1); hydrogen: of the "
                               "2-molecule hcp cell (2,2,1). [system]")] = None,
    temperature: Annotated[float, typer.Option(help="Ionic temperature of the displacements (K).")] = 298.0,
    density: Annotated[float, typer.Option(help="hydrogen: mass density (g/cm³).")] = 0.6,
    phase: Annotated[str, typer.Option(help="hydrogen: solid (hcp molecular centres, thermal "
                                             "displacements and librations) or liquid (hard-sphere "
                                             "random insertion).")] = "solid",
    thermal: Annotated[str, typer.Option(
        help="al: displacement sampler: 'phonons' (correlated harmonic modes from EMT force constants of the "
             "supercell, classical) or 'independent' (Gaussian per atom, Debye amplitude).")] = "phonons",
    electronic_temperature: Annotated[float | None, typer.Option(
        help="Fermi-Dirac temperature (K); al: --temperature, hydrogen: 3000 K (dense H2 needs "
             "smearing to converge). [system]")] = None,
    structure: Annotated[Path | None, typer.Option(
        help="Run on this ASE-readable structure instead (all frames).")] = None,
    kpts: Annotated[str | None, typer.Option(
        metavar="N,N,N", help="Monkhorst-Pack k-grid; al 2,2,2, hydrogen 1,1,1 (Γ). [system]")] = None,
    mesh: Annotated[str | None, typer.Option(
        metavar="N,N,N", help="Real-space grid per cell (default: from --grid-spacing).")] = None,
    grid_spacing: Annotated[float | None, typer.Option(
        help="Grid spacing (Å) when --mesh is not given; al 0.3375 (12 points per 4.05 Å), "
             "hydrogen 0.2. [system]")] = None,
    basis: Annotated[str, typer.Option(help="GTH basis: gth-szv, gth-dzv, gth-dzvp.")] = "gth-szv",
    xc: Annotated[str, typer.Option(help="lda,pz or lda,vwn.")] = "lda,pz",
    smearing: Annotated[float | None, typer.Option(
        help="Gaussian LDOS broadening (eV); al 0.05, hydrogen 0.2. [system]")] = None,
    energy_min: Annotated[float | None, typer.Option(help="Lowest LDOS energy (eV); al -4.5, hydrogen -18. "
                                                          "[system]")] = None,
    energy_max: Annotated[float | None, typer.Option(help="Highest LDOS energy (eV); al 11, hydrogen 10. "
                                                          "[system]")] = None,
    energy_step: Annotated[float | None, typer.Option(help="LDOS energy step (eV); al 0.05, hydrogen 0.1. "
                                                           "[system]")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (snapshot i uses seed + i).")] = 0,
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Kohn-Sham DFT (PySCF, LDA) of thermally displaced Al or dense-hydrogen snapshots: LDOS,
    density, energies.

    Snapshot files already in OUT are kept. The others run as a workflow
    (structures -> dft, mapped over snapshots, one per Dask task) whose results
    and cache are in OUT/.matterflow-run/: a killed run resumes with the
    snapshots already computed.
    """
    from matterflow.electrons.dft_tasks import DftParams

    if system not in SYSTEM_DEFAULTS:
        raise InputError(f"--system: one of {', '.join(SYSTEM_DEFAULTS)} is accepted; got {system!r}")
    if phase not in ("solid", "liquid"):
        raise InputError(f"--phase: solid or liquid is accepted; got {phase!r}")
    sd = SYSTEM_DEFAULTS[system]
    if electronic_temperature is not None:
        t_el = electronic_temperature
    else:
        t_el = sd["electronic_temperature"] or max(temperature, 1.0)
    reps = parse_ints(repeat or sd["repeat"], "--repeat")
    kgrid = parse_ints(kpts or sd["kpts"], "--kpts")
    grid = parse_ints(mesh, "--mesh", minimum=4)
    pick = lambda value, name: sd[name] if value is None else value  # noqa: E731
    try:
        params = DftParams(xc=xc, basis=basis, kpts=kgrid, mesh=grid or (12, 12, 12),
                           grid_spacing_a=None if grid else pick(grid_spacing, "grid_spacing"),
                           electronic_temperature_k=t_el,
                           energy_min_ev=pick(energy_min, "energy_min"),
                           energy_max_ev=pick(energy_max, "energy_max"),
                           energy_step_ev=pick(energy_step, "energy_step"),
                           ldos_smearing_ev=pick(smearing, "smearing"))
    except Exception as exc:  # pydantic ValidationError -> clear message
        from pydantic import ValidationError

        from matterflow.core.registry import validation_message
        if isinstance(exc, ValidationError):
            raise InputError(validation_message(exc, prefix="electrons dft", model=DftParams)) from None
        raise
    if structure is not None:
        from ase.io import read

        if not structure.exists():
            raise InputError(f"{structure}: structure file not found")
        try:
            n_frames = len(read(structure, index=":"))
        except Exception as exc:
            raise InputError(f"{structure}: ASE cannot read it ({exc})") from None
    else:
        if snapshots < 1:
            raise InputError(f"--snapshots must be >= 1; got {snapshots}")
        from matterflow.electrons.structures import THERMAL_SAMPLERS

        if system == "al" and thermal not in THERMAL_SAMPLERS:
            raise InputError(f"--thermal must be one of {', '.join(THERMAL_SAMPLERS)}; got {thermal!r}")
        n_frames = snapshots
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"snapshot_{i:03d}.h5" for i in range(n_frames)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    rows = []
    if todo:
        indices = todo if len(todo) < n_frames else []
        if structure is not None:
            first = {"id": "structures", "task": "electrons.read_structures",
                     "params": {"indices": indices}, "inputs": {"structure": structure}}
        elif system == "hydrogen":
            first = {"id": "structures", "task": "electrons.hydrogen_structures",
                     "params": {"n_snapshots": snapshots, "n_cells": list(reps), "density_g_cm3": density,
                                "temperature_k": temperature, "phase": phase, "seed": seed,
                                "indices": indices}}
        else:
            first = {"id": "structures", "task": "electrons.structures",
                     "params": {"n_snapshots": snapshots, "repeat": list(reps),
                                "temperature_k": temperature, "thermal": thermal, "seed": seed,
                                "indices": indices}}
        steps = [first, {"id": "dft", "task": "electrons.dft", "params": params, "batch_size": 1,
                         "inputs": {k: f"structures.{k}" for k in ("positions", "cell", "numbers")}}]
        opts = RunOptions(out / RUN_DIR, workers, processes, scheduler, cluster, force, quiet)
        summary = opts.run_steps(steps, name="electrons-dft", summary=False)
        rows = _save_snapshots(summary.results, "dft", [paths[i] for i in todo])
    for path, n, e, mu, eb, sec in sorted(rows):
        console.print(f"{path}: {n} atoms, F = {e:.6f} eV ({e / n:.6f} eV/atom), "
                      f"E_F = {mu:.4f} eV, band = {eb:.4f} eV, {sec:.1f} s")
    if len(todo) < n_frames:
        console.print(f"{n_frames - len(todo)} snapshot(s) already present in {out}, kept")


@app.command("observables")
@handle_errors
def observables(
    snapshot: Annotated[Path, typer.Argument(help="Snapshot HDF5 file (from `electrons dft`).")],
    xc: Annotated[str, typer.Option(help="LDA of the data: lda,pz or lda,vwn.")] = "",
    kernel: Annotated[str, typer.Option(help="Energy interpolant: cubic or linear.")] = "cubic",
    no_correction: Annotated[bool, typer.Option(
        "--no-correction", help="Do not correct the Gaussian broadening.")] = False,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write every energy term beside the reference code's value (JSON).")] = None,
    pseudo_dir: Annotated[Path | None, typer.Option(
        help="Folder of the UPF files (QE snapshots; default: where import-mala found them).")] = None,
) -> None:
    """Observables from a snapshot's LDOS (no DFT code), compared with its DFT values."""
    import numpy as np

    from matterflow.electrons.observables import observables_from_ldos
    from matterflow.electrons.snapshot import load_snapshot

    snap = load_snapshot(snapshot)
    from matterflow.electrons.mala_qe import is_qe_snapshot

    if is_qe_snapshot(snap):
        from matterflow.electrons.cli_qe import qe_observables_command

        qe_observables_command(snapshot, snap, json_out=json_out, pseudo_dir=pseudo_dir,
                               kernel=kernel, correction=False if no_correction else None)
        return
    if snap.ldos is None:
        raise InputError(f"{snapshot}: no LDOS in the file")
    obs = observables_from_ldos(snap.ldos, snap.energy_grid_ev, snap.atoms,
                                temperature_k=snap.electronic_temperature_k,
                                ldos_smearing_ev=snap.ldos_smearing_ev,
                                n_electrons=snap.n_electrons,
                                xc=xc or snap.meta.get("functional", "lda,pz"), kernel=kernel,
                                broadening_correction=not no_correction)
    n = snap.n_atoms
    console.print(f"{snapshot}: {n} atoms, grid {snap.grid_shape}, {len(snap.energy_grid_ev)} energies")
    for name, val in obs.energy_terms.items():
        console.print(f"  {name:>24s} {val:16.6f} eV")
    rows = [("Fermi level", obs.fermi_ev, snap.fermi_ev, 1.0, "eV"),
            ("band energy", obs.band_energy_ev, snap.band_energy_ev, 1000 / n, "meV/atom"),
            ("total energy", obs.total_energy_ev, snap.total_energy_ev, 1000 / n, "meV/atom")]
    for name, ours, ref, scale, unit in rows:
        console.print(f"  {name:>24s} from LDOS {ours:.6f} eV, DFT {ref:.6f} eV, "
                      f"difference {(ours - ref) * scale:+.4f} {unit}")
    if snap.density is not None:
        rel = float(np.abs(obs.density - snap.density).sum() / np.abs(snap.density).sum())
        console.print(f"  density mean relative absolute difference {rel * 100:.4f} %")
    if json_out is not None:
        from matterflow.electrons.cli_qe import write_json

        write_json(json_out, {"snapshot": str(snapshot), "reference_code": snap.meta.get("code"),
                              "terms_ev": obs.energy_terms,
                              "reference_terms_ev": snap.meta.get("pyscf_terms_ev"),
                              "rows": {r[0]: {"matterflow_ev": r[1], "reference_ev": r[2]}
                                       for r in rows}})


@app.command("import-mala")
@handle_errors
def import_mala(
    ldos: Annotated[Path, typer.Argument(help="MALA LDOS .npy (nx, ny, nz, ne).")],
    dft_output: Annotated[Path, typer.Argument(help="DFT output beside it (QE pw.x output, or ASE-readable).")],
    offset: Annotated[float | None, typer.Option(
        help="ldos_gridoffset_ev (eV); QE: from the pp.x input.")] = None,
    spacing: Annotated[float | None, typer.Option(
        help="ldos_gridspacing_ev (eV); QE: from the pp.x input.")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Electronic temperature (K); QE: degauss of the pw.x input or output.")] = None,
    units: Annotated[str, typer.Option(
        help="LDOS units in the file: 1/(eV*A^3), 1/(eV*Bohr^3), 1/(Ry*Bohr^3).")] = "1/(eV*A^3)",
    out: Annotated[Path, typer.Option("--out", "-o", help="Snapshot HDF5 to write.")] = Path("snapshot.h5"),
    n_electrons: Annotated[float | None, typer.Option(
        help="Valence electrons per cell; QE: from its output.")] = None,
    ldos_smearing: Annotated[float | None, typer.Option(
        help="Gaussian LDOS width σ (eV); QE: degauss_ldos/√2 of the pp.x input.")] = None,
    density: Annotated[Path | None, typer.Option(help="MALA density .npy (QE data).")] = None,
    pw_input: Annotated[Path | None, typer.Option(
        help="pw.x input (default: found beside the output or in recreate_data/).")] = None,
    pp_input: Annotated[Path | None, typer.Option(
        help="pp.x LDOS input (default: found beside the output or in recreate_data/).")] = None,
    pseudo_dir: Annotated[Path | None, typer.Option(help="Folder of the UPF files.")] = None,
) -> None:
    """Convert a MALA snapshot (LDOS .npy + DFT output) into a matterflow snapshot file."""
    from matterflow.electrons.cli_qe import is_pw_output, report_import
    from matterflow.electrons.io_formats import load_mala
    from matterflow.electrons.snapshot import save_snapshot

    if is_pw_output(dft_output):
        from matterflow.electrons.mala_qe import load_mala_qe

        snap = load_mala_qe(ldos, dft_output, pw_input=pw_input, pp_input=pp_input,
                            density_path=density, pseudo_dir=pseudo_dir, energy_offset_ev=offset,
                            energy_spacing_ev=spacing, electronic_temperature_k=temperature,
                            ldos_smearing_ev=ldos_smearing, n_electrons=n_electrons,
                            ldos_units=units)
    else:
        for name, val in (("--offset", offset), ("--spacing", spacing), ("--temperature", temperature)):
            if val is None:
                raise InputError(f"{name} is needed: {dft_output} is not a Quantum ESPRESSO pw.x "
                                 "output, whose files would give it")
        snap = load_mala(ldos, dft_output, energy_offset_ev=offset, energy_spacing_ev=spacing,
                         electronic_temperature_k=temperature, ldos_units=units,  # type: ignore[arg-type]
                         ldos_smearing_ev=ldos_smearing, n_electrons=n_electrons)
    save_snapshot(snap, out)
    console.print(f"{out}: {snap.n_atoms} atoms, grid {snap.grid_shape}, "
                  f"{len(snap.energy_grid_ev)} energies")
    report_import(snap)


@app.command("broaden")
@handle_errors
def broaden(
    snapshots: Annotated[list[Path], typer.Argument(help="Snapshot .h5 files (from `electrons dft`).")],
    sigma: Annotated[float, typer.Option(help="Wanted Gaussian LDOS width (eV), >= the present one.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the re-broadened files (same names).")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Widen the LDOS of snapshots to a larger Gaussian width (exact convolution, no DFT)."""
    from matterflow.electrons.broadening import rebroaden_snapshot
    from matterflow.electrons.snapshot import load_snapshot, save_snapshot

    for p in snapshots:
        if not p.exists():
            raise InputError(f"{p}: snapshot file not found")
    out.mkdir(parents=True, exist_ok=True)
    with make_progress(quiet) as progress:
        bar = progress.add_task("re-broadening", total=len(snapshots))
        for p in snapshots:
            target = out / p.name
            if target.resolve() == p.resolve():
                raise InputError(f"--out: {out} holds {p.name} itself; choose another folder")
            snap = load_snapshot(p)
            try:
                wide = rebroaden_snapshot(snap, sigma)
            except InputError as exc:
                raise InputError(f"{p}: {exc}") from None
            save_snapshot(wide, target)
            progress.advance(bar)
    console.print(f"{len(snapshots)} snapshot(s) re-broadened to σ = {sigma} eV in {out}")
