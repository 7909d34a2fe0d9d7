"""Quantum ESPRESSO's energy terms recomputed without QE, on MALA's Be2 snapshot 0.

From MALA's density (``Be_snapshot0.dens.npy``), QE's eigenvalues (``Be_snapshot0.out``) and the
UPF pseudopotential (tests/electrons/data/mala_be2): one-electron, Hartree (FFT), XC (PBE
through libxc via PySCF, with the UPF core charge), Ewald (UPF valence charges), -TS and the
total, each minus QE's printed value, in meV/atom, and the seconds taken (best of 3).

Also, in the same run: the one-electron term with the self-consistent double counting
(QE stopped this SCF after one iteration, so its term uses the starting atomic density), the
XC term without the core charge, the Ewald energy with PySCF's GTH valence (4 for Be: the
baseline before this work), and the total energy from the DFT's own LDOS with the broadening
floor (eigenvalue DOS broadened by the pp.x width, and by the width the LDOS array shows).
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from matterflow.electrons.mala_qe import (  # noqa: E402
    LdosWidthWarning,
    broadening_floor,
    fit_ldos_broadening,
    load_mala_qe,
    qe_observables,
)
from matterflow.electrons.observables import GTH_VALENCE, ewald_energy  # noqa: E402
from matterflow.electrons.qe import read_pw_input, read_pw_output  # noqa: E402
from matterflow.electrons.qe_energy import (  # noqa: E402
    band_terms_from_eigenvalues,
    fermi_from_eigenvalues,
    qe_energy_terms,
)
from matterflow.electrons.upf import read_upf  # noqa: E402

D = Path(__file__).resolve().parents[1] / "tests" / "electrons" / "data" / "mala_be2"
# snapshot 1 (no density in MALA's set: Ewald, -TS and the LDOS route only), if the full copy is here
FULL = Path(os.environ.get("MATTERFLOW_MALA_BE2", "/work/shared/data/electrons/mala-be2"))


def snapshot1(deg: float) -> dict:
    o = read_pw_output(FULL / "Be_snapshot1.out")
    n = len(o.atoms)
    pp = {"Be": read_upf(FULL / "Be.pbe-n-rrkjus_psl.1.0.0.UPF", element="Be")}
    mu = fermi_from_eigenvalues(o.eigenvalues_ev, o.kweights, o.n_electrons, deg, "fermi-dirac")
    _, mts = band_terms_from_eigenvalues(o.eigenvalues_ev, o.kweights, mu, deg, "fermi-dirac")
    ew = ewald_energy(o.atoms, np.array([pp["Be"].z_valence] * n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LdosWidthWarning)
        snap = load_mala_qe(FULL / "Be_snapshot1.out.npy", FULL / "Be_snapshot1.out",
                            pw_input=D / "recreate_data" / "Be.pw.scf.in",
                            pp_input=D / "recreate_data" / "Be.pp.ldos.in", pseudo_dir=FULL)
    res = qe_observables(snap)
    return {"ewald_minus_qe_mev_per_atom": (ew - o.terms_ev["ewald"]) * 1000 / n,
            "minus_ts_minus_qe_mev_per_atom": (mts - o.terms_ev["minus_ts"]) * 1000 / n,
            "ldos_route_total_minus_qe_mev_per_atom":
                res["ldos"]["terms"]["total"]["difference_mev_per_atom"],
            "floor_pp_sigma_mev_per_atom": res["floor"]["floor_mev_per_atom"],
            "ldos_sigma_fitted_ev": res["floor_fitted_sigma"]["sigma_ev"]}


def main() -> None:
    t0 = time.perf_counter()
    o = read_pw_output(D / "Be_snapshot0.out")
    pp = {"Be": read_upf(D / "Be.pbe-n-rrkjus_psl.1.0.0.UPF", element="Be")}
    dens = np.load(D / "Be_snapshot0.dens.npy")[..., 0]
    deg = read_pw_input(D / "recreate_data" / "Be.pw.scf.in").degauss_ev
    t_read = time.perf_counter() - t0
    n = len(o.atoms)
    best = np.inf
    for _ in range(3):
        t1 = time.perf_counter()
        mu = fermi_from_eigenvalues(o.eigenvalues_ev, o.kweights, o.n_electrons, deg, "fermi-dirac")
        band, mts = band_terms_from_eigenvalues(o.eigenvalues_ev, o.kweights, mu, deg, "fermi-dirac")
        terms = qe_energy_terms(dens, o.atoms, pp, functional=o.functional, ecutrho_ev=o.ecutrho_ev,
                                band_energy_ev=band, minus_ts_ev=mts, input_density="atomic",
                                n_electrons=o.n_electrons).terms_ev
        best = min(best, time.perf_counter() - t1)
    diff = {k: (terms[k] - o.terms_ev[k]) * 1000 / n
            for k in ("one_electron", "hartree", "xc", "ewald", "minus_ts", "total")}
    selfc = qe_energy_terms(dens, o.atoms, pp, functional=o.functional, ecutrho_ev=o.ecutrho_ev,
                            band_energy_ev=band, minus_ts_ev=mts).terms_ev
    nocore = {"Be": type(pp["Be"])(**{**pp["Be"].__dict__, "core_density": None})}
    xc_nc = qe_energy_terms(dens, o.atoms, nocore, functional=o.functional, ecutrho_ev=o.ecutrho_ev,
                            band_energy_ev=band, minus_ts_ev=mts).terms_ev["xc"]
    ew_gth = ewald_energy(o.atoms, np.array([float(GTH_VALENCE["Be"])] * n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LdosWidthWarning)
        snap = load_mala_qe(D / "Be_snapshot0.out.npy", D / "Be_snapshot0.out",
                            density_path=D / "Be_snapshot0.dens.npy")
    t2 = time.perf_counter()
    res = qe_observables(snap)
    t_ldos = time.perf_counter() - t2
    sigma_fit, _ = fit_ldos_broadening(snap)
    floor_fit = broadening_floor(snap, sigma_ev=sigma_fit)["floor_ev"] * 1000 / n
    out = {
        "benchmark": "electrons_qe_terms",
        "data": "MALA test-data Be2 snapshot 0 (QE 6.6, PBE, USPP + NLCC, 2 atoms, 18x18x27)",
        "baseline": "Quantum ESPRESSO's printed terms in Be_snapshot0.out",
        "terms_minus_qe_mev_per_atom": diff,
        "max_abs_mev_per_atom": max(abs(v) for v in diff.values()),
        "seconds_terms": best, "seconds_reading_files": t_read, "seconds_ldos_route": t_ldos,
        "one_electron_self_consistent_minus_qe_mev_per_atom":
            (selfc["one_electron"] - o.terms_ev["one_electron"]) * 1000 / n,
        "xc_without_core_charge_minus_qe_mev_per_atom": (xc_nc - o.terms_ev["xc"]) * 1000 / n,
        "ewald_gth_valence_minus_qe_mev_per_atom": (ew_gth - o.terms_ev["ewald"]) * 1000 / n,
        "ldos_route_minus_qe_mev_per_atom": {k: r["difference_mev_per_atom"]
                                             for k, r in res["ldos"]["terms"].items()
                                             if r["reference_ev"] is not None},
        "ldos_density_relative_l1": res["ldos"]["density_relative_l1"],
        "ldos_sigma_pp_input_ev": snap.ldos_smearing_ev,
        "floor_pp_sigma_mev_per_atom": res["floor"]["floor_mev_per_atom"],
        "ldos_sigma_fitted_ev": sigma_fit,
        "floor_fitted_sigma_mev_per_atom": floor_fit,
    }
    if (FULL / "Be_snapshot1.out").exists():
        out["snapshot1"] = snapshot1(deg)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
