"""MALA model archives: restricted scaler unpickling, and predictions equal to MALA 1.4.0's.

``mala_prediction.npy`` was made by MALA itself (see tests/electrons/data/mala_be2/SOURCE.md
and ``make_mala_reference.py``); the last test reruns MALA from its own venv
(``/work/refvenvs/mala`` or ``$MATTERFLOW_MALA_PYTHON``) and is skipped when there is none.
"""

import io
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.electrons.mala_model import (
    ScalerUnpickler,
    load_mala_model,
    predict_from_descriptors,
    read_mala_scaler,
)
from matterflow.electrons.model import load_model

D = Path(__file__).parent / "data" / "mala_be2"
ZIP = D / "Be_model.zip"
runner = CliRunner()
MALA_PY = Path(os.environ.get("MATTERFLOW_MALA_PYTHON", "/work/refvenvs/mala/bin/python"))


def test_prediction_equals_mala_float32():
    model = load_mala_model(ZIP)
    assert model.layer_sizes == (91, 100, 11) and model.activations == ("ReLU",)
    x, ref = np.load(D / "descriptors_subset.npy"), np.load(D / "mala_prediction.npy")
    # MALA predicted these one point at a time: with the same batches the numbers are identical
    np.testing.assert_array_equal(model.predict(x, batch_size=1), ref)
    # other batch sizes only change float32 rounding (BLAS blocking)
    np.testing.assert_allclose(model.predict(x), ref, rtol=4e-6, atol=0)
    setup = model.setup
    assert setup.energy_grid_ev[0] == -5.0 and len(setup.energy_grid_ev) == 11
    assert setup.descriptor_params["twojmax"] == 10 and setup.valence_electrons == {"Be": 2.0}


def test_saved_model_round_trip_and_load_model(tmp_path):
    x, ref = np.load(D / "descriptors_subset.npy"), np.load(D / "mala_prediction.npy")
    direct = load_model(ZIP)  # a MALA archive loads as a model
    np.testing.assert_array_equal(direct.predict(x, batch_size=1), ref)
    direct.save(tmp_path / "be.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "be.pt").predict(x, batch_size=1), ref)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/matterflow-mala-evil",))


def test_scaler_unpickler_refuses_other_globals(tmp_path):
    flag = Path("/tmp/matterflow-mala-evil")
    flag.unlink(missing_ok=True)
    blob = pickle.dumps(_Evil())
    with pytest.raises(InputError, match=r"evil.pkl: .*posix.system is not admitted|system"):
        read_mala_scaler(blob, "evil.pkl")
    assert not flag.exists()
    with pytest.raises(pickle.UnpicklingError):
        ScalerUnpickler(io.BytesIO(pickle.dumps(np.float64))).load()
    # an archive whose scaler is such a pickle is refused before any prediction
    with zipfile.ZipFile(ZIP) as z, zipfile.ZipFile(tmp_path / "bad.zip", "w") as out:
        for n in z.namelist():
            out.writestr(n, blob if n.endswith("iscaler.pkl") else z.read(n))
    with pytest.raises(InputError, match="iscaler"):
        load_mala_model(tmp_path / "bad.zip")
    assert not flag.exists()


def test_scaler_matches_its_json_form():
    with zipfile.ZipFile(ZIP) as z:
        pkl = read_mala_scaler(z.read("Be_model.iscaler.pkl"), "iscaler")
    assert pkl.feature_wise and pkl.standard and pkl.shift.shape == (1, 91)
    as_json = read_mala_scaler(__import__("json").dumps(pkl.to_dict()).encode(), "iscaler.json")
    np.testing.assert_array_equal(as_json.shift, pkl.shift)
    np.testing.assert_array_equal(as_json.scale, pkl.scale)


def test_descriptor_length_mismatch():
    model = load_mala_model(ZIP)
    x = np.load(D / "descriptors_subset.npy")
    with pytest.raises(InputError, match="90 features per point.*takes 91"):
        predict_from_descriptors(model, x[:, :90])
    with_xyz = np.concatenate([np.zeros((len(x), 3), np.float32), x], axis=1)
    np.testing.assert_array_equal(predict_from_descriptors(model, with_xyz),
                                  predict_from_descriptors(model, x))


def test_cli_import_model_and_predict_descriptors(tmp_path):
    pt = tmp_path / "be.pt"
    res = runner.invoke(app, ["electrons", "import-mala-model", str(ZIP), "-o", str(pt),
                              "--pp-input", str(D / "recreate_data" / "Be.pp.ldos.in")])
    assert res.exit_code == 0, res.output
    assert load_model(pt).setup.ldos_smearing_ev == pytest.approx(5 / np.sqrt(2))
    np.save(tmp_path / "x.npy", np.load(D / "descriptors_subset.npy"))
    res = runner.invoke(app, ["electrons", "predict", str(pt), str(tmp_path / "x.npy"),
                              "--descriptors", str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.h5")])
    assert res.exit_code == 0, res.output
    import h5py

    with h5py.File(tmp_path / "p.h5") as f:
        np.testing.assert_allclose(f["ldos"][()], np.load(D / "mala_prediction.npy"), rtol=4e-6)
    np.save(tmp_path / "short.npy", np.load(D / "descriptors_subset.npy")[:, :50])
    res = runner.invoke(app, ["electrons", "predict", str(ZIP), str(tmp_path / "x.npy"),
                              "--descriptors", str(tmp_path / "short.npy")])
    assert res.exit_code == 2 and "takes 91" in res.output


@pytest.mark.slow
@pytest.mark.skipif(not MALA_PY.exists(), reason="no MALA venv (/work/refvenvs/mala)")
def test_prediction_equals_mala_rerun(tmp_path):
    """MALA itself, run now, on the same descriptors."""
    work = tmp_path / "ref"
    subprocess.run([str(MALA_PY), str(D / "make_mala_reference.py"), str(D / "descriptors_subset.npy"),
                    str(work)], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    ref = np.load(work / "mala_prediction.npy")
    x = np.load(work / "descriptors_subset.npy")
    np.testing.assert_array_equal(load_mala_model(ZIP).predict(x, batch_size=1), ref)


@pytest.mark.slow
def test_descriptor_settings_reproduce_mala_descriptors():
    """The imported descriptor settings give MALA's own bispectrum (LAMMPS) on snapshot 1."""
    import json

    from ase import Atoms

    from matterflow.electrons.descriptors.bispectrum import bispectrum_descriptors

    info = json.loads((D / "Be_snapshot1.info.json").read_text())["atoms"]
    atoms = Atoms(numbers=info["numbers"], positions=info["positions"], cell=info["cell"], pbc=True)
    model = load_mala_model(ZIP)
    mine = bispectrum_descriptors(atoms, (18, 18, 27), model.setup.descriptor_params,
                                  points=np.arange(0, 18 * 18 * 27, 16))
    mala = np.load(D / "descriptors_subset.npy")
    np.testing.assert_allclose(mine, mala, rtol=2e-6, atol=2e-6 * np.abs(mala).max())
    np.testing.assert_allclose(model.predict(mine, batch_size=1), np.load(D / "mala_prediction.npy"),
                               rtol=1e-5, atol=1e-9)
