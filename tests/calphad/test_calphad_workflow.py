"""Tasks end to end (tiny chains), the CLI, and bad inputs."""
import json
import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.calphad.datasets import bundled_system, load_datasets
from matterflow.calphad.mcmc import ConvergenceWarning
from matterflow.calphad.tasks import diagram, fit, posterior, propose_experiments, sample, summarize
from matterflow.core.errors import InputError
from matterflow.core.registry import stack_results

TINY = {"n_walkers": 4, "n_steps": 4, "data_stride": 6, "n_grid": 100, "init_std": 100.0}


@pytest.fixture(scope="module")
def tiny_chain():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return sample(params=TINY)


def test_fit_generates_a_tdb_with_parameters():
    from pycalphad import Database

    res = fit()
    assert res.n_datasets == 29
    dbf = Database(res.tdb)
    assert len(res.parameter_names) >= 5
    assert set(res.parameter_names) <= set(dbf.symbols)
    assert {"LIQUID", "LAVES_C15", "CUMG2", "FCC_A1", "HCP_A3"} <= set(dbf.phases)


def test_sample_posterior_diagram_summary_propose(tiny_chain):
    s = tiny_chain
    assert s.chain.shape == (4, 4, 2) and s.lnprob.shape == (4, 4)
    assert np.isfinite(s.lnprob).all() and s.n_data > 20
    # same seed, same chain
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = sample(params={**TINY, "n_steps": 2})
    np.testing.assert_allclose(again.chain, s.chain[:2])
    p = posterior(s.chain, s.model_tdb, s.parameter_names, params={"n_draws": 3, "n_grid": 100})
    assert "eutectic:FCC_A1+LIQUID+CU2MG" in p.invariant_labels
    dp = {"n_grid": 100, "n_temperatures": 10, "n_x": 11, "t_min": 700, "t_max": 1200}
    vals, _ = stack_results([diagram(d, s.model_tdb, s.parameter_names, p.invariant_labels,
                                     params=dp) for d in p.draws])
    tab = summarize(vals["invariant_temperature_k"], vals["invariant_x"], vals["boundary_x"],
                    vals["temperatures_k"], p.invariant_labels, vals["query_fractions"],
                    vals["query_gibbs_j_mol"], vals["query_activity"])
    k = tab.labels.index("eutectic:FCC_A1+LIQUID+CU2MG")
    # the chain starts at the published assessment: within the small walker ball of 725 C
    assert tab.temperature_mean_k[k] == pytest.approx(998.0, abs=15)
    assert tab.temperature_low_k[k] <= tab.temperature_mean_k[k] <= tab.temperature_high_k[k]
    assert np.allclose(tab.query_fraction_mean.sum(axis=1), 1.0)
    pr = propose_experiments(vals["phase_set_code"], vals["temperatures_k"], vals["x_grid"],
                             p.phases, params={"top_k": 3})
    assert len(pr.x) <= 3 and np.all(np.diff(pr.score) <= 1e-12)


def test_proposal_ranks_by_entropy_and_cost():
    from matterflow.calphad.propagate import propose

    codes = np.zeros((4, 3, 2), dtype=int)
    codes[:2, 0, 0] = 1  # 50/50 at (T0, x0): ln 2
    codes[0, 2, 1] = 1  # 25/75 at (T2, x1)
    codes[:2, 2, 0] = 1  # 50/50 at (T2, x0), but hotter
    picks = propose(codes, [300.0, 400.0, 500.0], [0.1, 0.9], 2, top_k=3,
                    min_separation=(0, 0))
    assert picks[0]["entropy"] == pytest.approx(np.log(2))
    assert {(p["temperature_k"], p["x"]) for p in picks[:2]} == {(300.0, 0.1), (500.0, 0.1)}
    costly = propose(codes, [300.0, 400.0, 500.0], [0.1, 0.9], 2, top_k=3, cost_per_100k=1.0,
                     min_separation=(0, 0))
    assert (costly[0]["temperature_k"], costly[0]["x"]) == (300.0, 0.1)
    assert costly[1]["score"] == pytest.approx(np.log(2) / 3)


# ----------------------------------------------------------------------------- bad inputs
def test_dataset_breaking_the_schema_names_the_file(tmp_path):
    src = next(bundled_system().rglob("*ZPF*Bagnoud1978.json"))
    data = json.loads(src.read_text())
    data["output"] = "ZPF"
    data["values"] = [[["LIQUID", ["MG"]]]]  # a vertex without its composition list
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="bad.json: breaks ESPEI's dataset schema"):
        load_datasets(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json:1: not valid JSON"):
        load_datasets(tmp_path)


def test_inconsistent_components_name_file_and_field(tmp_path):
    shutil.copytree(bundled_system(), tmp_path / "ds")
    f = next((tmp_path / "ds").rglob("*Jones1931.json"))
    d = json.loads(f.read_text())
    d["components"] = ["CU", "ZN", "VA"]
    f.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"Jones1931.json: .*ZN"):
        fit(tmp_path / "ds", bundled_system().parent / "Cu-Mg-phases.json")


def test_tdb_that_does_not_parse_gives_the_line(tmp_path):
    from matterflow.calphad.datasets import cumg_truth_tdb
    from matterflow.calphad.engine import load_database

    lines = cumg_truth_tdb().read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if "G(LIQUID,CU,MG;1)" in ln)
    lines[k] = "  PARAMETER G(LIQUID,CU,MG;1)  298.15  -8191.29*(T+;  6000 N !"
    bad = tmp_path / "bad.tdb"
    bad.write_text("\n".join(lines))
    with pytest.raises(InputError, match=rf"bad.tdb:{k + 1}: TDB file does not parse"):
        load_database(bad)


def test_unknown_phase_temperature_and_offset(cumg_model):
    from matterflow.calphad.datasets import cumg_truth_tdb
    from matterflow.calphad.engine import BinaryModel

    with pytest.raises(InputError, match="phase 'SIGMA' is not in the model"):
        BinaryModel(cumg_truth_tdb(), phases=["LIQUID", "SIGMA"])
    with pytest.raises(InputError, match="temperature 5000 K is outside"):
        cumg_model.invariants(t_min=600, t_max=5000)
    with pytest.raises(InputError, match="composition x=1.5 is outside"):
        cumg_model.phase_set(800, [1.5])
    with pytest.raises(InputError, match=r"G\(LIQUID,CU,ZN;0\) found 0 times"):
        sample(params={**TINY, "offsets": {"D": "G(LIQUID,CU,ZN;0)"}})
    with pytest.raises(InputError, match="n_walkers"):
        sample(params={**TINY, "n_walkers": 2})


def test_short_chain_warns_not_converged():
    with pytest.warns(ConvergenceWarning, match="R-hat"):
        sample(params={**TINY, "n_steps": 3})


# ----------------------------------------------------------------------------- CLI
def test_cli_sample_propagate_propose(tmp_path):
    from matterflow.calphad.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["fit", "--out", str(tmp_path / "m.tdb")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.tdb").read_text().count("VV00") > 5
    chain = tmp_path / "chain.h5"
    r = runner.invoke(app, ["sample", "-o", str(chain), "--walkers", "4", "--steps", "3",
                            "--stride", "8", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "chain.ckpt").exists() and (tmp_path / "chain.png").exists()
    out = tmp_path / "prop"
    r = runner.invoke(app, ["propagate", str(chain), "-o", str(out), "--draws", "2", "-q",
                            "--t-min", "700", "--t-max", "1200", "--query", "900,0.5"])
    assert r.exit_code == 0, r.output
    table = json.loads((out / "invariants.json").read_text())
    assert any(row["label"] == "eutectic:FCC_A1+LIQUID+CU2MG" for row in table["invariants"])
    # 900 K, x_Mg 0.5: Cu2Mg + liquid (the published diagram), fractions sum to 1
    fr = table["properties"][0]["phase_fractions"]
    assert set(fr) == {"CU2MG", "LIQUID"}
    assert sum(v[0] for v in fr.values()) == pytest.approx(1.0)
    r = runner.invoke(app, ["propose", str(out / "draws.h5"), "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert "rank" in r.output
    r = runner.invoke(app, ["propagate", str(tmp_path / "nope.h5")])
    assert r.exit_code == 2 and "nope.h5: chain file not found" in r.output


def test_phase_not_in_phase_models_names_file(tmp_path):
    shutil.copytree(bundled_system(), tmp_path / "ds")
    f = next((tmp_path / "ds").rglob("*LAVES_C15-LIQUID-Bagnoud1978.json"))
    d = json.loads(f.read_text())
    d["phases"] = ["LIQUID", "SIGMA"]
    d["values"] = [[["LIQUID", ["MG"], [0.3]], ["SIGMA", ["MG"], [None]]] for _ in d["values"]]
    f.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"Bagnoud1978.json: phases: \['SIGMA'\] not in"):
        fit(tmp_path / "ds", bundled_system().parent / "Cu-Mg-phases.json")


def test_propagation_on_dask_equals_in_process(tiny_chain):
    from matterflow.calphad.propagate import run_diagrams
    from matterflow.core.execute import dask_client

    s = tiny_chain
    p = posterior(s.chain, s.model_tdb, s.parameter_names, params={"n_draws": 3, "n_grid": 100})
    dp = {"n_grid": 100, "n_temperatures": 6, "n_x": 6, "t_min": 700, "t_max": 1200}
    serial = run_diagrams(p.draws, s.model_tdb, s.parameter_names, p.invariant_labels, dp)
    with dask_client(workers=2) as client:
        par = run_diagrams(p.draws, s.model_tdb, s.parameter_names, p.invariant_labels, dp,
                           client=client, batch_size=1)
    np.testing.assert_allclose(par["invariant_temperature_k"], serial["invariant_temperature_k"])
    np.testing.assert_array_equal(par["phase_set_code"], serial["phase_set_code"])
