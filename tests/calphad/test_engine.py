"""The hull engine against independent references: analytic regular solution, pycalphad's
own minimiser, and the published Cu-Mg phase diagram."""
import numpy as np
import pytest

from matterflow.calphad.engine import R_GAS

# Cu-Mg invariant reactions, experimental (Nayeb-Hashemi & Clark, Bull. Alloy Phase Diagrams
# 5 (1984) 36, "The Cu-Mg system"): temperature (K) and liquid composition (x_Mg).
PUBLISHED = {
    "eutectic:FCC_A1+LIQUID+CU2MG": (725 + 273.15, 0.219),
    "congruent:CU2MG+LIQUID": (797 + 273.15, 1 / 3),
    "congruent:CUMG2+LIQUID": (568 + 273.15, 2 / 3),
    "eutectic:CU2MG+LIQUID+CUMG2": (552 + 273.15, 0.585),
    "eutectic:CUMG2+LIQUID+HCP_A3": (485 + 273.15, 0.855),
}


def test_regular_solution_binodal_is_analytic(toy_model):
    """Symmetric regular solution: binodal x solves ln(x/(1-x)) = W (2x-1)/(RT); T_c = W/2R."""
    from scipy.optimize import brentq

    w = 12000.0
    tc = w / (2 * R_GAS)
    for t in (0.6 * tc, 0.8 * tc, 0.95 * tc):
        x_exact = brentq(lambda x, t=t: np.log(x / (1 - x)) - w * (2 * x - 1) / (R_GAS * t),
                         1e-12, 0.5 - 1e-9)
        regs = [r for r in toy_model.regions(t, [w]) if len(r.phases) == 2]
        assert len(regs) == 1, regs
        assert regs[0].x_left == pytest.approx(x_exact, abs=3e-3)
        assert regs[0].x_right == pytest.approx(1 - x_exact, abs=3e-3)
    # above T_c: a single phase everywhere
    assert all(len(r.phases) == 1 for r in toy_model.regions(1.05 * tc, [w]))


def test_chemical_potential_is_analytic(toy_model):
    w, t, x = 12000.0, 1000.0, 0.3
    mu_a, mu_b = toy_model.chemical_potentials(t, x, [w])
    assert mu_b == pytest.approx(R_GAS * t * np.log(x) + w * (1 - x) ** 2, abs=2.0)
    assert mu_a == pytest.approx(R_GAS * t * np.log(1 - x) + w * x ** 2, abs=2.0)


def test_cumg_invariants_match_published_diagram(cumg_model):
    invs = {i.label: i for i in cumg_model.invariants(t_min=600, t_max=1300)}
    assert set(PUBLISHED) <= set(invs), sorted(invs)
    for label, (t_ref, x_ref) in PUBLISHED.items():
        inv = invs[label]
        x_liq = inv.compositions[1] if inv.kind == "eutectic" else inv.compositions[0]
        assert inv.temperature_k == pytest.approx(t_ref, abs=8.0), label
        assert x_liq == pytest.approx(x_ref, abs=0.03), label


def test_cumg_phases_agree_with_pycalphad_equilibrium(cumg_model):
    """Independent reference: pycalphad's Gibbs-energy minimiser at the middle of each region."""
    from pycalphad import equilibrium
    from pycalphad import variables as v

    dbf = cumg_model.database
    for t in (700.0, 900.0, 1050.0):
        for r in cumg_model.regions(t):
            if len(r.phases) == 1 and r.x_right - r.x_left < 0.02:
                continue
            x = 0.5 * (r.x_left + r.x_right)
            if not 0.01 < x < 0.99:
                continue
            eq = equilibrium(dbf, ["CU", "MG", "VA"], list(cumg_model.phases),
                             {v.T: t, v.P: 101325, v.N: 1, v.X("MG"): x})
            names = {str(p) for p in np.ravel(eq.Phase.values) if str(p)}
            assert names == set(r.phases), (t, x, names, r)


def test_invariant_temperature_agrees_with_pycalphad(cumg_model):
    """Just below/above our eutectic temperature pycalphad finds 2 solids / liquid."""
    from pycalphad import equilibrium
    from pycalphad import variables as v

    inv = [i for i in cumg_model.invariants(t_min=950, t_max=1020)
           if i.label == "eutectic:FCC_A1+LIQUID+CU2MG"][0]
    x = inv.compositions[1]
    eq = equilibrium(cumg_model.database, ["CU", "MG", "VA"], list(cumg_model.phases),
                     {v.T: [inv.temperature_k - 1.0, inv.temperature_k + 1.0], v.P: 101325,
                      v.N: 1, v.X("MG"): x})
    below = {str(p) for p in np.ravel(eq.Phase.values[..., 0, :, :]) if str(p)}
    above = {str(p) for p in np.ravel(eq.Phase.values[..., 1, :, :]) if str(p)}
    assert below == {"FCC_A1", "CU2MG"}
    assert "LIQUID" in above and "FCC_A1" not in above


def test_offsets_shift_the_diagram(cumg_model):
    from pycalphad import Database

    from matterflow.calphad.datasets import cumg_truth_tdb
    from matterflow.calphad.engine import BinaryModel, add_offset_parameters

    dbf = Database(str(cumg_truth_tdb()))
    add_offset_parameters(dbf, {"DL0": "G(LIQUID,CU,MG;0)"})
    m = BinaryModel(dbf, parameters=["DL0"], n_grid=200)
    t0 = {i.label: i.temperature_k for i in m.invariants([0.0], t_min=900, t_max=1100)}
    t1 = {i.label: i.temperature_k for i in m.invariants([-3000.0], t_min=900, t_max=1100)}
    ref = {i.label: i.temperature_k for i in cumg_model.invariants(t_min=900, t_max=1100)}
    lab = "eutectic:FCC_A1+LIQUID+CU2MG"
    assert t0[lab] == pytest.approx(ref[lab], abs=0.1)
    assert t1[lab] < t0[lab] - 10  # a more stable liquid melts lower


# Fe-C, stable (graphite) and metastable (cementite) diagrams: textbook values (e.g.
# Okamoto, J. Phase Equilibria 13 (1992) 543): temperatures (K) and x_C of the middle phase.
FE_C_STABLE = {"eutectoid:BCC_A2+FCC_A1+GRAPHITE": (738 + 273.15, 0.032),
               "eutectic:FCC_A1+LIQUID+GRAPHITE": (1153 + 273.15, 0.171),
               "peritectic:BCC_A2+FCC_A1+LIQUID": (1495 + 273.15, 0.0074)}
FE_C_METASTABLE = {"eutectoid:BCC_A2+FCC_A1+CEMENTITE_D011": (727 + 273.15, 0.0346),
                   "eutectic:FCC_A1+LIQUID+CEMENTITE_D011": (1147 + 273.15, 0.173)}


def test_second_system_fe_c_invariants_match_published():
    """Fe-C (cfe_broshe.tdb, shipped with pycalphad): interstitial C on (C,VA) sublattices,
    magnetic BCC; stable and metastable (no graphite) diagrams."""
    from importlib.resources import files

    from matterflow.calphad.engine import BinaryModel

    tdb = str(files("pycalphad.tests.databases") / "cfe_broshe.tdb")
    stable = BinaryModel(tdb, components=["FE", "C"], n_grid=300)
    meta = BinaryModel(tdb, components=["FE", "C"], n_grid=300,
                       phases=[p for p in stable.phases if p not in ("GRAPHITE", "DIAMOND_A4")])
    for model, ref in ((stable, FE_C_STABLE), (meta, FE_C_METASTABLE)):
        invs = {i.label: i for i in model.invariants(t_min=900, t_max=1800)}
        for label, (t_ref, x_ref) in ref.items():
            assert label in invs, sorted(invs)
            assert invs[label].temperature_k == pytest.approx(t_ref, abs=5.0), label
            assert invs[label].compositions[1] == pytest.approx(x_ref, abs=0.01), label
