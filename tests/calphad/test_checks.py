"""Warnings when a model's diagram misses the data it was fitted to (issue 25, item 4)."""
import shutil
import warnings

import numpy as np
import pytest

from matterflow.calphad.datasets import bundled_system, cumg_truth_tdb, load_datasets

JONES = "CU-MG-ZPF-CUMG2-HCP_A3-Jones1931.json"  # (Mg) + Mg2Cu tie-lines, 733-753 K
BAGNOUD = "CU-MG-ZPF-LAVES_C15-LIQUID-Bagnoud1978.json"


@pytest.fixture(scope="module")
def zpf_subset(tmp_path_factory):
    dst = tmp_path_factory.mktemp("zpf")
    for name in (JONES, BAGNOUD):
        shutil.copy(bundled_system("Cu-Mg") / "zpf" / name, dst / name)
    return load_datasets(dst)


@pytest.fixture(scope="module")
def fitted():
    from pycalphad import Database

    from matterflow.calphad.tasks import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(params={"check_data": False})
    return Database(res.tdb), list(res.parameter_names), np.asarray(res.parameter_values)


def test_fitted_model_off_the_data_is_named_with_espei_driving_force(zpf_subset, fitted):
    from espei.error_functions.zpf_error import ZPFResidual

    from matterflow.calphad.checks import DataMismatchWarning, diagram_vs_data, warn_mismatches

    dbf, names, values = fitted
    found = diagram_vs_data(dbf, zpf_subset, names, values)
    off = [m for m in found if m.dataset == JONES and m.kind == "invariant-off-data"]
    assert off and "eutectic:CUMG2+LIQUID+HCP_A3" in off[0].message
    with pytest.warns(DataMismatchWarning, match="Jones1931"):
        warn_mismatches(off)
    # the driving force reported is ESPEI's own for these tie-lines
    jones = load_datasets(bundled_system("Cu-Mg") / "zpf" / JONES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = ZPFResidual(dbf, jones, None, names).get_residuals(values)
    assert off[0].value == pytest.approx(np.max(np.abs(ref)), rel=0.1)
    assert not [m for m in found if m.dataset == BAGNOUD]  # these the model meets


def test_a_phase_the_data_say_is_stable_but_never_forms(zpf_subset, fitted):
    from pycalphad import equilibrium
    from pycalphad import variables as v

    from matterflow.calphad.checks import diagram_vs_data

    dbf, names, values = fitted
    bad = values.copy()
    bad[names.index("VV0000")] += 80000.0  # G(CUMG2,CU:MG) up by 80 kJ per formula unit
    found = diagram_vs_data(dbf, zpf_subset, names, bad)
    never = [m for m in found if m.kind == "phase-never-stable"]
    assert len(never) == 1 and "CUMG2" in never[0].message and JONES in never[0].dataset
    # pycalphad agrees: at the data's temperature and the CuMg2 composition it is absent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eq = equilibrium(dbf, ["CU", "MG", "VA"], list(dbf.phases),
                         {v.T: 743.15, v.P: 101325, v.N: 1, v.X("MG"): 2 / 3},
                         parameters=dict(zip(names, bad, strict=True)))
    assert "CUMG2" not in set(eq.Phase.values.ravel())


def test_published_assessment_meets_the_data(zpf_subset):
    from matterflow.calphad.checks import check_files

    found = check_files(cumg_truth_tdb(), zpf_subset, aliases={"LAVES_C15": "CU2MG"})
    assert found == []


def test_liquid_measured_below_the_models_eutectic_is_named(fitted):
    """The fitted model puts L -> LAVES_C15 + CUMG2 at 937 K (experiment 825 K): Urazova's
    liquidus points between 825 and 900 K lie where it has no liquid."""
    from pycalphad import equilibrium
    from pycalphad import variables as v

    from matterflow.calphad.checks import diagram_vs_data
    from matterflow.calphad.datasets import zpf_points

    name = "CU-MG-ZPF-CUMG2-FCC_A1-HCP_A3-LAVES_C15-LIQUID-Urazova1907.json"
    data = load_datasets(bundled_system("Cu-Mg") / "zpf" / name)
    dbf, names, values = fitted
    found = diagram_vs_data(dbf, data, names, values)
    absent = [m for m in found if m.kind == "phase-absent" and m.dataset == name]
    assert absent and "LIQUID" in absent[0].message
    # pycalphad: at one such point, 25 K above its measured temperature, no liquid
    pts = [(p.temperature_k, x) for p in zpf_points(data, ["CU", "MG"])
           for ph, x in zip(p.phases, p.x, strict=True)
           if ph == "LIQUID" and 0.45 < x < 0.6 and p.temperature_k < 880]
    t, x = pts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eq = equilibrium(dbf, ["CU", "MG", "VA"], list(dbf.phases),
                         {v.T: t + 25, v.P: 101325, v.N: 1, v.X("MG"): x},
                         parameters=dict(zip(names, values, strict=True)))
    assert "LIQUID" not in set(eq.Phase.values.ravel())
