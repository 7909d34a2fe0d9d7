"""CLI helpers for Quantum ESPRESSO-made snapshots (``import-mala``, ``observables --json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matterflow.clitools import console
from matterflow.electrons.snapshot import Snapshot

__all__ = ["is_pw_output", "report_import", "qe_observables_command", "write_json"]


def is_pw_output(path: Path) -> bool:
    """True for a QE ``pw.x`` output (``Program PWSCF`` in its first lines)."""
    try:
        with open(path, errors="replace") as f:
            return "Program PWSCF" in f.read(5000)
    except OSError:
        return False


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _finite(obj: Any) -> Any:
    """NaN and inf (unknown values) as null: JSON has no NaN."""
    import math

    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON (NaN as null), atomically."""
    from matterflow.core.store import atomic_write_bytes

    text = json.dumps(_finite(json.loads(json.dumps(data, default=_default))), indent=2,
                      allow_nan=False)
    atomic_write_bytes(Path(path), (text + "\n").encode())
    console.print(f"{path}: energy terms written")


def report_import(snap: Snapshot) -> None:
    """Say where electron count, temperature and LDOS width came from."""
    m = snap.meta
    if "sources" not in m:
        return
    console.print(f"  electrons {snap.n_electrons}, T = {snap.electronic_temperature_k:.3f} K, "
                  f"LDOS σ = {snap.ldos_smearing_ev:.4f} eV, energies from "
                  f"{snap.energy_grid_ev[0]} eV step {snap.energy_grid_ev[1] - snap.energy_grid_ev[0]} eV")
    for k, v in m["sources"].items():
        console.print(f"  {k}: {v}")


def qe_observables_command(path: Path, snap: Snapshot, *, json_out: Path | None,
                           pseudo_dir: Path | None, kernel: str, correction: bool | None) -> None:
    """Print (and write) QE's energy terms recomputed from the density and from the LDOS."""
    from matterflow.electrons.mala_qe import qe_observables

    res = qe_observables(snap, pseudo_dir=pseudo_dir, kernel=kernel,
                         broadening_correction=bool(correction))
    console.print(f"{path}: {snap.n_atoms} atoms, grid {snap.grid_shape}, reference "
                  f"{res['reference_code']}, one-electron term with the "
                  f"{res['input_density']} input density (QE SCF iterations: "
                  f"{res['scf_iterations']})")
    for part in ("dft_density", "ldos"):
        if part not in res:
            continue
        console.print(f"  from the {'DFT density and eigenvalues' if part == 'dft_density' else 'LDOS'}"
                      f" (Fermi level {res[part]['fermi_ev']:.4f} eV):")
        for name, row in res[part]["terms"].items():
            ref = row["reference_ev"]
            if ref is None:
                console.print(f"    {name:>14s} {row['matterflow_ev']:16.6f} eV")
            else:
                console.print(f"    {name:>14s} {row['matterflow_ev']:16.6f} eV, QE {ref:16.6f} eV, "
                              f"difference {row['difference_mev_per_atom']:+.4f} meV/atom")
    if "floor" in res:
        f = res["floor"]
        console.print(f"  broadening floor (eigenvalue DOS broadened by σ = {f['sigma_ev']:.3f} eV on "
                      f"the LDOS grid): {f['floor_mev_per_atom']:+.2f} meV/atom")
    if "floor_fitted_sigma" in res:
        f = res["floor_fitted_sigma"]
        console.print(f"  the LDOS array itself is broadened by σ ≈ {f['sigma_ev']:.3f} eV (fit of its DOS "
                      f"to the eigenvalues); floor at that width {f['floor_mev_per_atom']:+.2f} meV/atom")
    if json_out is not None:
        write_json(json_out, {"snapshot": str(path), **res})
