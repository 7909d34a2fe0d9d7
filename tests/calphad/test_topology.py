"""Propagation over draws whose diagrams differ: a miscibility gap, another topology, a
phase that vanishes (issue 25, item 1), checked against analytic phase diagrams."""
import json

import numpy as np
import pytest

from matterflow.calphad.engine import R_GAS, BinaryModel
from matterflow.calphad.propagate import diagram_of_draw, pair_keys
from matterflow.calphad.tasks import summarize
from matterflow.core.registry import stack_results

# ideal liquid; FCC solid of both pure elements (melting 1000 K, dH 10 kJ/mol) that barely
# mixes; a 1:1 line compound CMPD, 15 kJ/mol below the liquid mixture at 0 K, shifted by VC
EUTECTIC_TDB = """
ELEMENT CU BLANK 0 0 0 !
ELEMENT NI BLANK 0 0 0 !
ELEMENT VA BLANK 0 0 0 !
FUNCTION VC 298.15 0; 6000 N !
PHASE LIQUID % 1 1 !
CONSTITUENT LIQUID : CU,NI : !
PARAMETER G(LIQUID,CU;0) 298.15 0; 6000 N !
PARAMETER G(LIQUID,NI;0) 298.15 0; 6000 N !
PHASE FCC_A1 % 1 1 !
CONSTITUENT FCC_A1 : CU,NI : !
PARAMETER G(FCC_A1,CU;0) 298.15 -10000+10*T; 6000 N !
PARAMETER G(FCC_A1,NI;0) 298.15 -10000+10*T; 6000 N !
PARAMETER G(FCC_A1,CU,NI;0) 298.15 60000; 6000 N !
PHASE CMPD % 2 1 1 !
CONSTITUENT CMPD : CU : NI : !
PARAMETER G(CMPD,CU:NI;0) 298.15 -30000+20*T+VC#; 6000 N !
"""
# analytic: ideal liquid against (nearly) pure solids, symmetric -> eutectic at x = 1/2,
# ln(1/2) = -(dH/R)(1/T - 1/Tm); the compound melts where -15000 + 10 T = R T ln(1/2)
T_EUTECTIC_NO_COMPOUND = 1.0 / (1.0 / 1000.0 + R_GAS * np.log(2.0) / 10000.0)
T_COMPOUND_MELTS = 15000.0 / (10.0 + R_GAS * np.log(2.0))


@pytest.fixture(scope="module")
def eutectic_model():
    from pycalphad import Database

    return BinaryModel(Database(EUTECTIC_TDB), parameters=["VC"], n_grid=300)


def test_draw_with_a_miscibility_gap_propagates(toy_model):
    temps = np.array([500.0, 600.0, 800.0])
    out = diagram_of_draw(toy_model, [12000.0], [], temps, np.linspace(0, 1, 11), t_scan=(400, 900))
    keys = pair_keys(toy_model.phases)
    gap = out["boundary_x"][keys.index("LIQUID|LIQUID")]
    # binodal of the symmetric regular solution: ln(x/(1-x)) = W (2x - 1) / (R T)
    from scipy.optimize import brentq

    for i, t in enumerate(temps):
        tc = 12000.0 / (2 * R_GAS)
        if t >= tc:
            assert np.isnan(gap[i]).all()
            continue
        x = brentq(lambda x, t=t: np.log(x / (1 - x)) - 12000.0 * (2 * x - 1) / (R_GAS * t),
                   1e-9, 0.5 - 1e-6)
        assert gap[i] == pytest.approx([x, 1 - x], abs=0.01)
    assert out["phase_set_code"].shape == (3, 11)


def test_draws_with_other_topology_are_counted_with_their_own_intervals(eutectic_model):
    m = eutectic_model
    labels = [i.label for i in m.invariants([0.0], t_min=500, t_max=1200, tol=0.01)]
    assert "congruent:CMPD+LIQUID" in labels
    draws = [[0.0], [0.0], [40000.0]]  # the last: the compound never forms (a missing phase)
    temps = np.linspace(500, 1200, 8)
    per = []
    for d in draws:
        r = diagram_of_draw(m, d, labels, temps, np.linspace(0, 1, 21), t_scan=(500, 1200),
                            dt=10.0, tol=0.01)
        r["temperatures_k"] = temps
        per.append(r)
    vals, _ = stack_results(per)
    tab = summarize(vals["invariant_temperature_k"], vals["invariant_x"], vals["boundary_x"],
                    vals["temperatures_k"], labels,
                    invariant_signature=vals["invariant_signature"],
                    invariant_all_temperature_k=vals["invariant_all_temperature_k"])
    k = labels.index("congruent:CMPD+LIQUID")
    assert tab.found_fraction[k] == pytest.approx(2 / 3)
    assert tab.temperature_mean_k[k] == pytest.approx(T_COMPOUND_MELTS, abs=1.0)
    topo = json.loads(tab.topologies)
    assert tab.n_topologies == 2 and [t["count"] for t in topo] == [2, 1]
    other = topo[1]
    assert other["signature"] == "eutectic:FCC_A1+LIQUID+FCC_A1"
    row = other["invariants"][0]
    assert row["temperature_mean_k"] == pytest.approx(T_EUTECTIC_NO_COMPOUND, abs=1.5)
    # the gap of the solid (FCC|FCC below the eutectic) is a boundary of that draw
    fcc_gap = vals["boundary_x"][2, pair_keys(m.phases).index("FCC_A1|FCC_A1")]
    assert np.isfinite(fcc_gap[0]).all()
