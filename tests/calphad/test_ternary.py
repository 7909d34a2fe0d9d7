"""Ternary sections and liquidus against independent references: the exact tie-lines of two
ideal solutions, pycalphad's own minimiser on the Cr-Ti-V assessment (Ghosh 2002) and the
SGTE melting points of the pure elements."""
from collections import Counter

import numpy as np
import pytest

from matterflow.calphad.engine import R_GAS
from matterflow.core.errors import InputError

# two ideal solutions ALPHA and BETA of A, B, C; at T the lattice stabilities differ by
# dG_i = G_i(ALPHA) - G_i(BETA): A prefers ALPHA, B prefers BETA, C is indifferent
IDEAL_TDB = """
ELEMENT A BLANK 0 0 0 !
ELEMENT B BLANK 0 0 0 !
ELEMENT C BLANK 0 0 0 !
TYPE_DEFINITION % SEQ * !
PHASE ALPHA % 1 1 !
CONSTITUENT ALPHA : A,B,C : !
PHASE BETA % 1 1 !
CONSTITUENT BETA : A,B,C : !
PARAMETER G(ALPHA,A;0) 298.15 0; 6000 N !
PARAMETER G(ALPHA,B;0) 298.15 0; 6000 N !
PARAMETER G(ALPHA,C;0) 298.15 0; 6000 N !
PARAMETER G(BETA,A;0) 298.15 3000; 6000 N !
PARAMETER G(BETA,B;0) 298.15 -3000; 6000 N !
PARAMETER G(BETA,C;0) 298.15 0; 6000 N !
"""

# SGTE unary data (Dinsdale, CALPHAD 15 (1991) 317): melting points, K
MELTING_K = {"CR": 2180.0, "TI": 1941.0, "V": 2183.0}


@pytest.fixture(scope="module")
def crtiv():
    from matterflow.calphad.ternary import TernaryModel, crtiv_tdb

    return TernaryModel(crtiv_tdb(), ["CR", "TI", "V"])


def test_ideal_two_phase_tie_lines_are_exact():
    """Equal chemical potentials of two ideal solutions: x_i(BETA)/x_i(ALPHA) = exp(dG_i/RT)."""
    from pycalphad import Database

    from matterflow.calphad.ternary import TernaryModel, section_grid

    t = 1000.0
    model = TernaryModel(Database(IDEAL_TDB), ["A", "B", "C"], n_grid=80)
    s = model.section(t, section_grid(0.05, margin=0.01))
    k = np.exp(np.array([3000.0, -3000.0, 0.0]) / (R_GAS * t))  # BETA/ALPHA ratios
    assert set(s.labels) == {"ALPHA", "BETA", "ALPHA+BETA"}
    assert len(s.tie_lines) > 20
    errs = []
    for a, b in s.tie_lines:
        xa = np.array([1 - a.sum(), *a])
        xb = np.array([1 - b.sum(), *b])
        alpha, beta = (xa, xb) if xa[0] > xb[0] else (xb, xa)  # ALPHA is the A-rich end
        errs.append(np.max(np.abs(beta - alpha / k)))
    # the ends lie on the refined grid: one step there is 1/80/4 = 0.0031 in site fraction
    assert np.median(errs) < 0.005 and np.max(errs) < 0.01, (np.median(errs), np.max(errs))
    # phase fractions sum to one; single-phase points hold one phase
    assert np.allclose(s.phase_fractions.sum(axis=1), 1.0)
    one = np.array([lab in ("ALPHA", "BETA") for lab in s.labels])
    assert np.allclose(s.phase_fractions[one].max(axis=1), 1.0)


@pytest.mark.parametrize("temperature", [800.0, 1200.0])
def test_crtiv_section_agrees_with_pycalphad(crtiv, temperature):
    """Phase assemblage on >= 90 % of a 0.1 lattice; G within 25 J/mol everywhere."""
    from matterflow.calphad.ternary import agreement, pycalphad_section, section_grid

    x = section_grid(0.1, margin=0.02)
    s = crtiv.section(temperature, x)
    ref, g_ref, _ = pycalphad_section(crtiv.database, crtiv.components, crtiv.phases,
                                      temperature, x)
    assert sum(1 for r in ref if not r) == 0
    assert agreement(s.labels, ref) >= 0.9, Counter(zip(s.labels, ref, strict=True))
    assert np.max(np.abs(s.gibbs_j_mol - g_ref)) < 25.0
    # two-phase regions with a Laves phase exist at both temperatures (Ghosh 2002, Fig. 9)
    assert any("LAVES_C15" in lab for lab in s.labels)


def test_crtiv_miscibility_gap_at_800k(crtiv):
    """The BCC miscibility gap of the ternary at low T: two BCC_A2 instances."""
    from matterflow.calphad.ternary import section_grid

    s = crtiv.section(800.0, section_grid(0.05, margin=0.01))
    assert any(lab.count("BCC_A2") == 2 for lab in s.labels)


def test_edges_and_corners(crtiv):
    """Targets on the edges and corners are located (sliver facets along the edges); pure Ti
    is HCP below and BCC above its transition at 1155 K, liquid above 1941 K (SGTE)."""
    from matterflow.calphad.ternary import section_grid

    x = section_grid(0.1, margin=0.0)
    ti = int(np.flatnonzero(x[:, 0] == 1.0)[0])
    for t, phase in ((800.0, "HCP_A3"), (1200.0, "BCC_A2"), (2000.0, "LIQUID")):
        s = crtiv.section(t, x)
        assert s.labels[ti] == phase
        assert np.allclose(s.phase_fractions.sum(axis=1), 1.0)


def test_liquidus_melting_points_and_pycalphad(crtiv):
    """Pure corners melt at the SGTE temperatures; inside, pycalphad brackets our liquidus (+-3 K)."""
    import warnings

    from pycalphad import equilibrium
    from pycalphad import variables as v

    x = np.array([[1e-6, 1e-6], [1 - 2e-6, 1e-6], [1e-6, 1 - 2e-6], [0.1, 0.6], [0.3, 0.6]])
    res = crtiv.liquidus(x, t_min=1850.0, t_max=2250.0, dt=25.0)
    for name, tl in zip(crtiv.components, res.liquidus_k[:3], strict=True):
        assert tl == pytest.approx(MELTING_K[name], abs=1.0)
    assert set(res.primary_phase) == {"BCC_A2"}
    for (xb, xc), tl in zip(x[3:], res.liquidus_k[3:], strict=True):
        assert np.isfinite(tl)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eq = equilibrium(crtiv.database, ["CR", "TI", "V", "VA"], list(crtiv.phases),
                             {v.T: [tl - 3.0, tl + 3.0], v.P: 101325, v.N: 1,
                              v.X("TI"): xb, v.X("V"): xc})
        ph = np.asarray(eq.Phase.values).reshape(2, -1)
        below = sorted(p for p in ph[0] if p)
        above = sorted(p for p in ph[1] if p)
        assert above == ["LIQUID"] and below == ["BCC_A2", "LIQUID"], (tl, below, above)


def test_section_input_errors(crtiv):
    from matterflow.calphad.ternary import TernaryModel, crtiv_tdb

    with pytest.raises(InputError, match="outside the composition triangle"):
        crtiv.section(1000.0, [[0.7, 0.6]])
    with pytest.raises(InputError, match="outside the model's range"):
        crtiv.section(100.0, [[0.2, 0.2]])
    with pytest.raises(InputError, match="three different elements"):
        TernaryModel(crtiv_tdb(), ["CR", "TI"])
    with pytest.raises(InputError, match="phase 'SIGMA' is not in the model"):
        TernaryModel(crtiv_tdb(), ["CR", "TI", "V"], phases=["SIGMA"])


def test_ensemble_chain_of_zeros_is_the_section_and_prior_spreads():
    """Zero offsets reproduce the deterministic section (entropy 0); a prior spreads it."""
    from pycalphad import Database

    from matterflow.calphad.engine import add_offset_parameters
    from matterflow.calphad.ternary import TernaryModel, crtiv_tdb, section_grid
    from matterflow.calphad.ternary_tasks import section_ensemble

    offsets = {"DC15": "G(LAVES_C15,CR:TI;0)"}
    dbf = add_offset_parameters(Database(str(crtiv_tdb())), offsets)
    common = {"temperature_k": 1200.0, "step": 0.1, "margin": 0.02, "n_draws": 4}
    zero = section_ensemble(chain=np.zeros((4, 2, 1)), model_tdb=dbf.to_string(fmt="tdb"),
                            parameter_names=["DC15"], params=common)
    assert zero.source == "chain" and np.all(zero.entropy == 0)
    plain = TernaryModel(crtiv_tdb(), ["CR", "TI", "V"]).section(
        1200.0, section_grid(0.1, margin=0.02), refine=1)
    assert [zero.label_names[c] for c in zero.codes[0]] == plain.labels
    prior = section_ensemble(params={**common, "offsets": offsets, "prior_std": 5000.0,
                                     "n_draws": 6})
    assert prior.source == "prior" and prior.entropy.max() > 0.3
    assert np.allclose(prior.probability.sum(axis=0), 1.0)


def test_propose_picks_the_most_uncertain_compositions_apart():
    from matterflow.calphad.ternary_tasks import section_propose

    x = np.array([[0.1, 0.1], [0.12, 0.1], [0.5, 0.2], [0.3, 0.3]])
    codes = np.array([[0, 0, 0, 1], [1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 1]])
    res = section_propose(codes, x, ["A", "A+B"], params={"top_k": 3, "min_separation": 0.05})
    # entropies ln 2, ln 2, 0.562, 0: the second point is too close to the first
    assert res.x.tolist() == [[0.1, 0.1], [0.5, 0.2]]
    assert res.entropy[0] == pytest.approx(np.log(2))
    ex = section_propose(codes, x, ["A", "A+B"], exclude=[[0.1, 0.1]],
                         params={"top_k": 1, "min_separation": 0.01})
    assert ex.x.tolist() == [[0.12, 0.1]]


def test_cli_section_propagate_propose(tmp_path):
    import h5py
    from typer.testing import CliRunner

    from matterflow.cli import app

    r = CliRunner()
    res = r.invoke(app, ["calphad", "section", "--T", "1000", "--step", "0.1", "--out",
                         str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "section.png").exists()
    with h5py.File(tmp_path / "s" / "section.h5") as f:
        assert f.attrs["NX_class"] == "NXroot" and f["labels"].shape == (36,)
    res = r.invoke(app, ["calphad", "section-propagate", "--T", "1200", "--step", "0.1",
                         "--offset", "DC15=G(LAVES_C15,CR:TI;0)", "--prior-std", "5000",
                         "--draws", "4", "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["calphad", "section-propose", str(tmp_path / "e" / "section_draws.h5"),
                         "--top-k", "2"])
    assert res.exit_code == 0, res.output
    assert "rank" in res.output and (tmp_path / "e" / "section_proposal.png").exists()
    res = r.invoke(app, ["calphad", "section", "--components", "CR,TI", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "three names" in res.output
