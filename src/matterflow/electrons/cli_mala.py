"""CLI of MALA models: ``matterflow electrons import-mala-model``, and ``predict --descriptors``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import console, handle_errors
from matterflow.core.errors import InputError

app = typer.Typer(help="MALA model archives.")

__all__ = ["app", "predict_descriptors_command", "report_qe_terms"]


@app.command("import-mala-model")
@handle_errors
def import_mala_model(
    archive: Annotated[Path, typer.Argument(help="MALA model archive (NAME.zip).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="matterflow model file to write.")],
    ldos_smearing: Annotated[float | None, typer.Option(
        help="LDOS Gaussian width σ (eV) of the training data (default: from --pp-input, else 0 "
             "= no broadening correction, as MALA).")] = None,
    pp_input: Annotated[Path | None, typer.Option(
        help="pp.x LDOS input of the training data (σ = degauss_ldos/√2).")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Electronic temperature (K); default: the archive's info.json.")] = None,
) -> None:
    """Import a MALA model archive (network, scalers, descriptor settings) as a matterflow model."""
    from matterflow.electrons.mala_model import load_mala_model

    if ldos_smearing is None and pp_input is not None:
        from matterflow.electrons.qe import read_pp_ldos_input

        ldos_smearing = float(read_pp_ldos_input(pp_input)["sigma_ev"])
    model = load_mala_model(archive, ldos_smearing_ev=ldos_smearing, temperature_k=temperature)
    model.save(out)
    s = model.setup
    assert s is not None
    console.print(f"{out}: MALA network {list(model.layer_sizes)} ({', '.join(model.activations)}), "
                  f"{len(s.energy_grid_ev)} LDOS energies from {s.energy_grid_ev[0]} eV, "
                  f"bispectrum 2J = {s.descriptor_params['twojmax']}, cut-off "
                  f"{s.descriptor_params['rcutfac']} Å, T = {s.temperature_k:.2f} K, "
                  f"σ = {s.ldos_smearing_ev} eV")


def predict_descriptors_command(model_path: Path, structure: Path, descriptors: Path,
                                out: Path | None) -> None:
    """``electrons predict MODEL SNAPSHOT --descriptors FILE``: the LDOS of given descriptors.

    With a snapshot made from QE files (``import-mala``), QE's energy terms follow from the
    predicted LDOS, beside QE's values.
    """
    import numpy as np

    from matterflow.electrons.mala_model import predict_from_descriptors
    from matterflow.electrons.model import load_model

    model = load_model(model_path)
    ldos = predict_from_descriptors(model, descriptors)
    console.print(f"{descriptors}: LDOS {ldos.shape} predicted by {model_path}")
    snap = None
    if structure.suffix == ".h5":
        from matterflow.electrons.snapshot import load_snapshot

        snap = load_snapshot(structure)
        if ldos.shape[:3] != tuple(snap.grid_shape) or ldos.shape[-1] != len(snap.energy_grid_ev):
            raise InputError(f"{descriptors}: predicted LDOS {ldos.shape} does not fit the grid "
                             f"{snap.grid_shape} x {len(snap.energy_grid_ev)} energies of {structure}")
        if snap.ldos is not None:
            ref = np.asarray(snap.ldos)
            rel = float(np.abs(ldos - ref).sum() / np.abs(ref).sum())
            console.print(f"  LDOS mean relative absolute difference to {structure}: {rel * 100:.3f} %")
    if out is not None:
        from matterflow.core.store import atomic_h5

        with atomic_h5(out) as f:
            f.create_dataset("ldos", data=ldos).attrs["units"] = "1/(eV*Å^3)"
            if model.setup is not None:
                f.create_dataset("energy_grid_ev", data=model.setup.energies).attrs["units"] = "eV"
            f.attrs["model"] = str(model_path)
            f.attrs["descriptors"] = str(descriptors)
        console.print(f"results: {out}")
    if snap is not None:
        from matterflow.electrons.mala_qe import is_qe_snapshot, qe_observables

        if is_qe_snapshot(snap):
            res = qe_observables(snap.with_(ldos=ldos, density=None, eigenvalues_ev=None))
            for name, row in res["ldos"]["terms"].items():
                if row["reference_ev"] is not None:
                    console.print(f"  {name:>14s} from the predicted LDOS {row['matterflow_ev']:14.6f} eV"
                                  f", QE {row['reference_ev']:14.6f} eV, difference "
                                  f"{row['difference_mev_per_atom']:+.2f} meV/atom")


def report_qe_terms(structure: Path, prediction: dict) -> None:
    """After ``electrons predict`` on a snapshot made from QE files: QE's energy terms of the
    predicted density, band energy and DOS (UPF valence and core charges, libxc), beside QE's."""
    if structure.suffix != ".h5":
        return
    from matterflow.electrons.mala_qe import _snapshot_pseudos, is_qe_snapshot
    from matterflow.electrons.snapshot import load_snapshot

    snap = load_snapshot(structure, with_ldos=False)
    if not is_qe_snapshot(snap) or tuple(prediction["density"].shape) != tuple(snap.grid_shape):
        return
    import numpy as np

    from matterflow.electrons.observables import entropy_energy
    from matterflow.electrons.qe_energy import qe_energy_terms

    ts = entropy_energy(np.asarray(prediction["dos"]), np.asarray(prediction["energy_grid_ev"]),
                        float(prediction["fermi_ev"]), snap.electronic_temperature_k)
    mode = "atomic" if snap.meta.get("scf_iterations") == 1 else "self"
    t = qe_energy_terms(np.asarray(prediction["density"]), snap.atoms,
                        _snapshot_pseudos(snap, None), functional=snap.meta["functional"],
                        ecutrho_ev=float(snap.meta["ecutrho_ev"]),
                        band_energy_ev=float(prediction["band_energy_ev"]), minus_ts_ev=-ts,
                        input_density=mode, n_electrons=snap.n_electrons).terms_ev
    ref = snap.meta["qe_terms_ev"]
    console.print(f"QE-consistent terms of the prediction ({snap.meta['functional']}, UPF charges; "
                  f"{mode} input density), beside {snap.meta.get('code')}:")
    for k, v in t.items():
        r = ref.get(k)
        tail = "" if r is None else f", QE {r:14.6f} eV, difference {(v - r) * 1000 / snap.n_atoms:+.2f} meV/atom"
        console.print(f"  {k:>14s} {v:14.6f} eV{tail}")
