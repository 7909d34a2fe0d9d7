"""Planted pickles (issue 17): no loader of a model, checkpoint or chain file runs code from it.

Every loader is handed a payload in the file format it reads: a pickle whose ``__reduce__``
creates a marker file when it is unpickled (what a file made to attack its reader does). The
loader is called the way the CLI or the workflow task calls it; the marker must not appear,
the error must be clear (exit 2 from the CLI) and name the file. With ``--trust-pickle`` a
legitimate file of the old (pickle) format still loads, with a warning; every new format
round-trips (save -> load gives the same predictions).
"""

import io
import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.core.safeload import UnsafeLoadWarning

runner = CliRunner()


class Payload:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PAYLOAD-RAN"
    yield m
    assert not m.exists(), "the planted payload ran"


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _refused(result, path) -> str:
    """The CLI stopped with exit 2 and a message naming ``path``; returns the message."""
    assert result.exit_code == 2, result.output
    flat = "".join(result.output.split())  # rich wraps long lines
    assert str(path) in flat, result.output
    assert "Traceback" not in result.output
    return result.output


def test_the_payload_is_live(tmp_path):
    """The planted files do run code when unpickled the old way (so the tests below mean it)."""
    m = tmp_path / "m1"
    pickle.loads(pickle.dumps({"model": Payload(m)}))
    assert m.exists()
    m = tmp_path / "m2"
    torch.load(io.BytesIO(_torch_bytes({"state": Payload(m)})), weights_only=False)
    assert m.exists()


# ----------------------------------------------------------------------------------- basis
@pytest.fixture(scope="module")
def basis(tmp_path_factory):
    from matterflow.basis.data import TARGET, load_csv, shipped_csv
    from matterflow.basis.model import BasisPredictor

    raw = pd.read_csv(shipped_csv())
    mats = sorted(raw["chem_formula"].unique())
    d = tmp_path_factory.mktemp("basis")
    raw[raw["chem_formula"].isin(mats[:20])].to_csv(d / "train.csv", index=False)
    raw[raw["chem_formula"].isin(mats[40:43])].drop(columns=[TARGET]).to_csv(d / "new.csv",
                                                                              index=False)
    model = BasisPredictor(n_estimators=20).fit(load_csv(d / "train.csv"))
    model.save(d / "new.model")
    # the format of matterflow before issue 17
    (d / "old.model").write_bytes(pickle.dumps({"magic": "matterflow.basis.BasisPredictor/1",
                                                "model": model}))
    return d, model, load_csv(d / "new.csv", features=model.features_, require_target=False,
                              require_levels=False)


def test_basis_predict_refuses_a_planted_pickle(basis, tmp_path, marker):
    d = basis[0]
    bad = tmp_path / "sent.model"
    bad.write_bytes(pickle.dumps({"magic": "matterflow.basis.BasisPredictor/1",
                                  "model": Payload(marker)}))
    out = _refused(runner.invoke(app, ["basis", "predict", str(bad), str(d / "new.csv")]), bad)
    assert "--trust-pickle" in out
    # the workflow task: a file path, and the bytes a results file would hand over
    from matterflow.core.blob import to_bytes_array
    from matterflow.core.registry import get_task

    with pytest.raises(InputError, match="pickled Python objects"):
        get_task("basis.predict")(str(bad), d / "new.csv")
    with pytest.raises(InputError, match="^model: .*pickled"):
        get_task("basis.predict")(to_bytes_array(bad.read_bytes()), d / "new.csv")


def test_basis_predict_refuses_a_skops_archive_of_other_types(basis, tmp_path, marker):
    import skops.io as sio

    d = basis[0]
    for name, obj in (("object", Payload(marker)), ("function", os.system)):
        bad = tmp_path / f"{name}.model"
        bad.write_bytes(sio.dumps({"format": "matterflow.basis.BasisPredictor/2", "model": obj}))
        out = _refused(runner.invoke(app, ["basis", "predict", str(bad), str(d / "new.csv")]),
                       bad)
        assert "names types" in out


def test_basis_predict_refuses_a_file_of_another_kind(basis, tmp_path):
    d = basis[0]
    bad = tmp_path / "notes.model"
    bad.write_text("a text file")
    out = _refused(runner.invoke(app, ["basis", "predict", str(bad), str(d / "new.csv")]), bad)
    assert "accepted" in out


def test_basis_old_model_loads_only_with_trust_pickle(basis, tmp_path):
    d, model, new = basis
    with pytest.warns(UnsafeLoadWarning, match="old.model"):
        r = runner.invoke(app, ["basis", "predict", str(d / "old.model"), str(d / "new.csv"),
                                "--trust-pickle", "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "p.csv")["error_ha"],
                                  model.predict(new).error_ha)


def test_basis_model_file_round_trip(basis):
    from matterflow.basis.model import BasisPredictor
    from matterflow.core.safeload import MAGIC_ZIP

    d, model, new = basis
    assert (d / "new.model").read_bytes().startswith(MAGIC_ZIP)  # a skops archive
    again = BasisPredictor.load(d / "new.model")
    a, b = model.predict(new), again.predict(new)
    for k in ("error_ha", "lower_ha", "upper_ha", "sisso_error_ha", "trustworthy"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


# ------------------------------------------------------------------------------ dft1d PINN
@pytest.fixture(scope="module")
def pinn(tmp_path_factory):
    """A small PINN (random weights: enough for file formats), new and old file."""
    from matterflow.dft1d.pinn import TDSEPINN, _build_net

    torch.manual_seed(0)
    m = TDSEPINN(width=8, depth=1, n_fourier=2)
    m._init_ground_state()
    m.model_ = _build_net(8, 1, 2)
    m.model_.eval()
    m.loss_history_, m.fit_time_s_ = np.array([1.0, 0.5]), 2.5
    d = tmp_path_factory.mktemp("pinn")
    m.save(d / "new.pt")
    (d / "old.pt").write_bytes(_torch_bytes({
        "format": "matterflow.dft1d.TDSEPINN/1", "params": m.get_params(),
        "state": m.model_.state_dict(), "loss_history": m.loss_history_, "fit_time_s": 2.5}))
    return d, m


def test_pinn_load_refuses_planted_pickles(pinn, tmp_path, marker):
    from matterflow.core.blob import to_bytes_array
    from matterflow.core.registry import get_task

    planted = {"torch": _torch_bytes({"format": "matterflow.dft1d.TDSEPINN/2", "meta": "{}",
                                      "state": {}, "loss_history": Payload(marker)}),
               "pickle": pickle.dumps({"format": "matterflow.dft1d.TDSEPINN/1",
                                       "params": Payload(marker)})}
    for kind, data in planted.items():
        bad = tmp_path / f"{kind}.pt"
        bad.write_bytes(data)
        out = _refused(runner.invoke(app, ["dft1d", "pinn", "--load", str(bad), "--e0", "0.5"]),
                       bad)
        assert "--trust-pickle" in out
        with pytest.raises(InputError, match=f"{kind}.pt: not loaded"):
            get_task("dft1d.pinn_predict")(str(bad))
        with pytest.raises(InputError, match="^model: not loaded"):
            get_task("dft1d.pinn_predict")(to_bytes_array(data))


def test_pinn_old_file_loads_only_with_trust_pickle(pinn):
    from matterflow.core.registry import get_task
    from matterflow.dft1d.pinn import TDSEPINN

    d, m = pinn
    with pytest.raises(InputError, match="old.pt: not loaded"):
        TDSEPINN.load(d / "old.pt")
    with pytest.warns(UnsafeLoadWarning):
        old = TDSEPINN.load(d / "old.pt", trust_pickle=True)
    x, t = np.linspace(-4, 4, 17), np.linspace(0, 2, 5)
    np.testing.assert_array_equal(old.predict_psi(x, t, 0.5), m.predict_psi(x, t, 0.5))
    with pytest.warns(UnsafeLoadWarning):
        r = get_task("dft1d.pinn_predict")(str(d / "old.pt"),
                                            params={"e0": [0.5], "trust_pickle": True,
                                                    "n_x": 64, "n_steps": 40, "n_saved": 5})
    assert np.isfinite(r.density_error).all()


def test_pinn_file_round_trip(pinn):
    from matterflow.dft1d.pinn import TDSEPINN

    d, m = pinn
    again = TDSEPINN.load(d / "new.pt")
    x, t = np.linspace(-4, 4, 17), np.linspace(0, 2, 5)
    np.testing.assert_array_equal(again.predict_psi(x, t, 0.7), m.predict_psi(x, t, 0.7))
    assert again.get_params() == m.get_params() and again.fit_time_s_ == 2.5
    np.testing.assert_array_equal(again.loss_history_, m.loss_history_)


@pytest.mark.parametrize("task, suffix, extra, mode", [
    ("dft1d.pinn_predict", ".pt", "params: {e0: [0.5]}", "--processes"),
    ("basis.predict", ".model", "", "--threads"),
])
def test_workflow_step_on_the_executor_refuses_a_planted_pickle(task, suffix, extra, mode, basis,
                                                                tmp_path, marker):
    """``matterflow run``: the step runs on a Dask worker (a worker process for the PINN);
    the file is refused there too, and the run exits 2 with the message."""
    bad = tmp_path / f"sent{suffix}"
    bad.write_bytes(pickle.dumps({"format": "matterflow.dft1d.TDSEPINN/1",
                                  "magic": "matterflow.basis.BasisPredictor/1",
                                  "model": Payload(marker)}))
    data = f", data: {basis[0] / 'new.csv'}" if task == "basis.predict" else ""
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"name: planted\nsteps:\n  - id: p\n    task: {task}\n"
                    f"    inputs: {{model: {bad}{data}}}\n    {extra}\n")
    r = runner.invoke(app, ["run", str(flow), "--out", str(tmp_path / "out"), "--workers", "1",
                            mode, "-q", "--no-report"])
    assert r.exit_code == 2, r.output
    assert "pickled Python objects" in r.output and "sent" in r.output


# ------------------------------------------------------------------------------- dft1d FNO
@pytest.fixture(scope="module")
def fno(tmp_path_factory):
    from matterflow.dft1d.datasets import generate_dataset, load_dataset
    from matterflow.dft1d.fno import DensityToPotentialFNO

    d = tmp_path_factory.mktemp("fno")
    path = generate_dataset(d / "ds", n_samples=16, n_points=32, workers=1, seed=3)
    ds = load_dataset(path)
    m = DensityToPotentialFNO(epochs=1, hidden_channels=8, n_modes=4, batch_size=8)
    m.fit(ds.density, ds.v_hxc)
    m.x_ = np.asarray(ds.x, dtype=float)  # the grid, kept by physics-loss fits
    m.save(d / "new.pt")
    hyper = {k: getattr(m, k) for k in ("n_modes", "hidden_channels", "n_layers", "epochs",
                                        "batch_size", "learning_rate", "weight_decay", "seed",
                                        "threads", "density_weight", "physics_loss",
                                        "density_warmup", "grad_clip", "target", "n_electrons",
                                        "spin", "exact_hx", "softening", "warm_start")}
    (d / "old.pt").write_bytes(_torch_bytes({  # the format before issue 17
        "hyper": hyper, "n_points": m.n_points_, "in_mean": m.in_mean_, "in_std": m.in_std_,
        "out_mean": m.out_mean_, "out_std": m.out_std_, "state": m.model_.state_dict(),
        "loss_history": m.loss_history_, "x": m.x_}))
    return d, path, ds, m


def test_train_fno_refuses_a_planted_init_model(fno, tmp_path, marker):
    d, path = fno[:2]
    bad = tmp_path / "sent.pt"
    bad.write_bytes(_torch_bytes({"format": "matterflow.dft1d.DensityToPotentialFNO/2",
                                  "meta": "{}", "state": Payload(marker)}))
    out = _refused(runner.invoke(app, ["dft1d", "train-fno", str(path), "--init-model",
                                       str(bad), "--out", str(tmp_path / "o")]), bad)
    assert "--trust-pickle" in out


def test_train_fno_bad_init_model_is_a_clear_error(fno, tmp_path):
    """Not a KeyError traceback: a torch file of another model, a text file, a damaged file."""
    d, path = fno[:2]
    cases = {"other.pt": _torch_bytes({"weights": torch.zeros(3)}),
             "text.pt": b"not a model",
             "cut.pt": (d / "new.pt").read_bytes()[:2000]}
    for name, data in cases.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        out = _refused(runner.invoke(app, ["dft1d", "train-fno", str(path), "--init-model",
                                           str(bad), "--out", str(tmp_path / "o")]), bad)
        assert "DensityToPotentialFNO" in out


def test_fno_old_file_loads_only_with_trust_pickle(fno):
    from matterflow.dft1d.fno import DensityToPotentialFNO

    d, _, ds, m = fno
    with pytest.raises(InputError, match="old.pt: not loaded"):
        DensityToPotentialFNO.load(d / "old.pt")
    with pytest.warns(UnsafeLoadWarning):
        old = DensityToPotentialFNO.load(d / "old.pt", trust_pickle=True)
    np.testing.assert_array_equal(old.predict(ds.density), m.predict(ds.density))


def test_fno_file_round_trip(fno):
    from matterflow.dft1d.fno import DensityToPotentialFNO

    d, _, ds, m = fno
    again = DensityToPotentialFNO.load(d / "new.pt")
    np.testing.assert_array_equal(again.predict(ds.density), m.predict(ds.density))
    np.testing.assert_array_equal(again.x_, m.x_)
    assert again.loss_history_ == m.loss_history_


# ------------------------------------------------------------------------ calphad checkpoint
def _logpost(p):
    return -0.5 * float(np.sum((np.asarray(p) / 100.0) ** 2))


def _emcee(n_steps, **kw):
    from matterflow.calphad.mcmc import run_emcee

    return run_emcee(_logpost, [10.0], [50.0], n_walkers=4, n_steps=n_steps, seed=1, **kw)


def _old_checkpoint(new_ckpt) -> bytes:
    """The pickle that matterflow wrote before issue 17, from a new (HDF5) checkpoint."""
    from matterflow.calphad.mcmc import _load

    return pickle.dumps(_load(new_ckpt))


def test_calphad_sample_refuses_a_planted_checkpoint(tmp_path, marker):
    bad = tmp_path / "sent.ckpt"
    bad.write_bytes(pickle.dumps({"key": {}, "chain": Payload(marker)}))
    with pytest.raises(InputError, match="sent.ckpt: not loaded.*--trust-pickle"):
        _emcee(2, checkpoint=bad)
    # the CLI: the OUT.ckpt it reads by default, and --checkpoint
    out = tmp_path / "chain.h5"
    out.with_suffix(".ckpt").write_bytes(bad.read_bytes())
    args = ["calphad", "sample", "-o", str(out), "--walkers", "4", "--steps", "1", "--stride",
            "8", "-q", "--workers", "1", "--threads"]
    _refused(runner.invoke(app, args), out.with_suffix(".ckpt"))
    _refused(runner.invoke(app, [*args, "--checkpoint", str(bad)]), bad)


def test_calphad_truncated_checkpoint_says_what_to_do(tmp_path):
    ck = tmp_path / "c.ckpt"
    _emcee(3, checkpoint=ck)
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"c.ckpt: damaged MCMC checkpoint .*delete it"):
        _emcee(3, checkpoint=ck)
    # an old pickle checkpoint cut short, read with --trust-pickle: no raw UnpicklingError
    ck.write_bytes(data)
    old = _old_checkpoint(ck)
    ck.write_bytes(old[: len(old) // 2])
    with pytest.warns(UnsafeLoadWarning), \
            pytest.raises(InputError, match=r"c.ckpt: .*truncated pickle.*delete it"):
        _emcee(3, checkpoint=ck, trust_pickle=True)


def test_calphad_old_checkpoint_resumes_only_with_trust_pickle(tmp_path):
    ck = tmp_path / "c.ckpt"
    _emcee(3, checkpoint=ck)
    ck.write_bytes(_old_checkpoint(ck))
    with pytest.raises(InputError, match="not loaded"):
        _emcee(6, checkpoint=ck)
    with pytest.warns(UnsafeLoadWarning):
        resumed = _emcee(6, checkpoint=ck, trust_pickle=True)
    assert resumed.resumed_from == 3
    np.testing.assert_array_equal(resumed.chain, _emcee(6).chain)
    assert ck.read_bytes()[:4] == b"\x89HDF"  # written again in the new format


def test_calphad_hdf5_checkpoint_round_trip(tmp_path):
    ck = tmp_path / "c.ckpt"
    _emcee(3, checkpoint=ck)
    resumed = _emcee(6, checkpoint=ck)
    fresh = _emcee(6)
    assert resumed.resumed_from == 3
    np.testing.assert_array_equal(resumed.chain, fresh.chain)
    np.testing.assert_array_equal(resumed.lnprob, fresh.lnprob)
    np.testing.assert_array_equal(resumed.acceptance, fresh.acceptance)


# ----------------------------------------------------------------- electrons checkpoint, model
NET = {"n_in": 4, "n_out": 6, "hidden": [8], "activation": "tanh"}


def _arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(4, 6))).astype(np.float32)
    return x[:100], y[:100], x[100:], y[100:]


class _Killed(Exception):
    pass


def _killed_after(epoch):
    def on_epoch(e, loss):
        if e == epoch:
            raise _Killed

    return on_epoch


def _train(max_epochs, ckdir, **kw):
    from matterflow.electrons.training import TrainParams, build_feedforward, train_network

    p = TrainParams(max_epochs=max_epochs, batch_size=32, learning_rate=3e-3, patience=50, seed=3)
    return train_network(build_feedforward, NET, *_arrays(), p, checkpoint_dir=ckdir, **kw)


def test_electrons_training_refuses_a_planted_checkpoint(tmp_path, marker):
    from matterflow.electrons.training import CHECKPOINT_FORMAT

    bad = tmp_path / "ck" / "checkpoint.pt"
    bad.parent.mkdir()
    bad.write_bytes(_torch_bytes({"format": CHECKPOINT_FORMAT, "key": "k",
                                  "result": Payload(marker)}))
    with pytest.raises(InputError, match="checkpoint.pt: not loaded.*--trust-pickle"):
        _train(2, bad.parent)


def test_electrons_old_checkpoint_resumes_only_with_trust_pickle(tmp_path):
    from matterflow.electrons.training import TrainResult

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(_Killed):  # killed after the checkpoint of epoch 1 was written
        _train(4, tmp_path, on_epoch=_killed_after(1))
    ck = torch.load(ckpt, weights_only=True)
    ck.pop("format")
    ck["result"] = TrainResult(**ck["result"])  # the format before issue 17: a pickled object
    ckpt.write_bytes(_torch_bytes(ck))
    with pytest.raises(InputError, match="not loaded"):
        _train(4, tmp_path)
    with pytest.warns(UnsafeLoadWarning):
        resumed = _train(4, tmp_path, trust_pickle=True)
    full = _train(4, None)
    assert resumed.resumed_from_epoch == 1
    np.testing.assert_allclose(resumed.val_loss, full.val_loss, rtol=1e-5)


def test_electrons_model_file_refuses_a_planted_pickle(tmp_path, marker):
    from matterflow.electrons.model import FORMAT, load_model

    bad = tmp_path / "model.pt"
    bad.write_bytes(_torch_bytes({"format": FORMAT, "architecture": "feedforward",
                                  "model": Payload(marker)}))
    with pytest.raises(InputError, match="model.pt: not loaded"):
        load_model(bad)
    bad.write_bytes(json.dumps({"format": FORMAT}).encode())
    with pytest.raises(InputError, match="model.pt: not a matterflow LDOS model file.*accepted"):
        load_model(bad)


def _snapshot(seed):
    """A small synthetic Al snapshot (LDOS a smooth function of the local density)."""
    from matterflow.electrons.descriptors import GaussianDescriptorParams, gaussian_descriptors
    from matterflow.electrons.observables import observables_from_ldos
    from matterflow.electrons.snapshot import Snapshot
    from matterflow.electrons.structures import aluminium_supercell

    energies, grid = np.arange(-1.0, 16.0, 0.1), (8, 8, 8)
    atoms = aluminium_supercell((1, 1, 1), temperature_k=298.0, seed=seed)
    g = gaussian_descriptors(atoms, grid, GaussianDescriptorParams())[..., 0]
    free = np.sqrt(np.clip(energies, 0, None)) / (2 * np.pi**2) / 3.81**1.5
    shape = np.tanh(g / g.mean())[..., None]
    ldos = (0.6 + 0.8 * shape) * free * (1 + 0.05 * shape * energies / 16)
    obs = observables_from_ldos(ldos, energies, atoms, temperature_k=298.0, ldos_smearing_ev=0.0)
    return Snapshot(atoms=atoms, grid_shape=grid, energy_grid_ev=energies, ldos=ldos,
                    density=obs.density, eigenvalues_ev=None, kweights=None, fermi_ev=obs.fermi_ev,
                    electronic_temperature_k=298.0, band_energy_ev=obs.band_energy_ev,
                    total_energy_ev=obs.total_energy_ev, ldos_smearing_ev=0.0,
                    meta={"functional": "lda,pz"})


def test_electrons_train_cli_refuses_a_planted_checkpoint(tmp_path, marker):
    """`electrons train` reads OUT.ckpt/checkpoint.pt by default: a planted one stops it."""
    from matterflow.electrons.snapshot import save_snapshot
    from matterflow.electrons.training import CHECKPOINT_FORMAT

    snaps = [str(save_snapshot(_snapshot(s), tmp_path / f"s{s}.h5")) for s in range(3)]
    out = tmp_path / "model.pt"
    bad = tmp_path / "model.pt.ckpt" / "checkpoint.pt"
    bad.parent.mkdir()
    bad.write_bytes(_torch_bytes({"format": CHECKPOINT_FORMAT, "key": "k",
                                  "result": Payload(marker)}))
    r = runner.invoke(app, ["electrons", "train", *snaps, "--kind", "gaussian", "--hidden", "8",
                            "--epochs", "2", "--out", str(out), "-q"])
    assert "--trust-pickle" in _refused(r, bad)
    assert not out.exists()
