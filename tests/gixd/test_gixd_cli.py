"""`matterflow gixd` commands: simulate -> detect (on the executor) -> evaluate -> track; bad
input named by file and field."""

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("gixd")
    data = d / "sim.h5"
    r = runner.invoke(app, ["gixd", "simulate", str(data), "--n", "3", "--size", "64",
                            "--detector-px", "128", "--keep-detector", "--coco",
                            str(d / "labels.json")])
    assert r.exit_code == 0, r.output
    return d


def test_cli_round_trip(sim, tmp_path):
    data, peaks = sim / "sim.h5", tmp_path / "peaks.h5"
    r = runner.invoke(app, ["gixd", "detect", str(data), "--method", "classical", "-p",
                            str(peaks), "-o", str(tmp_path / "run"), "--coco",
                            str(tmp_path / "det.json"), "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    with h5py.File(peaks, "r") as f:
        assert f["n"].shape == (3,) and f["q_inv_nm"].attrs["units"] == "1/nm"
        assert "input_checksums" in f.attrs or "parameters" in f.attrs
    with h5py.File(tmp_path / "run" / "results.h5", "r") as f:   # ran on the executor
        assert "detect" in f and "frames" in f
    det = json.loads((tmp_path / "det.json").read_text())
    assert {c["name"] for c in det["categories"]} == {"peak", "ring"}
    r = runner.invoke(app, ["gixd", "evaluate", str(peaks), str(data)])
    assert r.exit_code == 0 and "AP50" in r.output, r.output
    r2 = runner.invoke(app, ["gixd", "evaluate", str(peaks), str(sim / "labels.json")])
    assert r2.exit_code == 0 and r2.output.split("(")[0] == r.output.split("(")[0], r2.output
    r = runner.invoke(app, ["gixd", "track", str(peaks), "-o", str(tmp_path / "tracks.h5")])
    assert r.exit_code == 0 and "tracks" in r.output, r.output
    assert (tmp_path / "tracks.png").exists()


def test_detector_frames_through_the_poni(sim, tmp_path):
    # detector images of the simulate file (dataset `detector`) with its PONI
    r = runner.invoke(app, ["gixd", "detect", str(sim / "sim.h5"), "--method", "classical",
                            "--geometry", str(sim / "sim.poni"), "--incidence-deg", "0.2",
                            "-p", str(tmp_path / "p.h5"), "-o", str(tmp_path / "run"), "-q"])
    assert r.exit_code == 0, r.output
    assert "in 3 of 3 frames" in r.output


def _err(r):
    return " ".join(r.output.split())


def test_missing_incidence_angle_is_named(sim, tmp_path):
    r = runner.invoke(app, ["gixd", "detect", str(sim / "sim.h5"), "--method", "classical",
                            "--geometry", str(sim / "sim.poni"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "incidence_deg" in _err(r) and "sim.poni" in _err(r), r.output


def test_shape_not_matching_the_poni_is_named(sim, tmp_path):
    bad = tmp_path / "frames.h5"
    with h5py.File(bad, "w") as f:
        f["entry/data/data"] = np.zeros((2, 100, 100), np.uint32)
    r = runner.invoke(app, ["gixd", "detect", str(bad), "--method", "classical",
                            "--geometry", str(sim / "sim.poni"), "--incidence-deg", "0.2",
                            "-o", str(tmp_path / "r")])
    msg = _err(r)
    assert r.exit_code == 2 and "frames.h5" in msg and "(100, 100)" in msg and "128 x 128" in msg, r.output


def test_missing_hdf5_path_and_dataset_are_named(sim, tmp_path):
    r = runner.invoke(app, ["gixd", "detect", str(tmp_path / "none.h5"), "--method", "classical"])
    assert r.exit_code == 2 and "none.h5" in _err(r), r.output
    r = runner.invoke(app, ["gixd", "detect", str(sim / "sim.h5"), "--method", "classical",
                            "--dataset", "/entry/nothing", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "/entry/nothing" in _err(r) and "sim.h5" in _err(r), r.output
    r = runner.invoke(app, ["gixd", "train", str(tmp_path / "none.h5")])
    assert r.exit_code == 2 and "none.h5" in _err(r)


def _coco(tmp_path, **change):
    doc = {"images": [{"id": 0, "width": 64, "height": 64}],
           "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 10, 4, 8]}],
           "categories": [{"id": 1, "name": "peak"}, {"id": 2, "name": "ring"}]}
    doc["annotations"][0].update(change)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    return p


def test_coco_boxes_outside_or_unknown_category_are_named(tmp_path):
    from matterflow.core.errors import InputError
    from matterflow.diffraction.gixd._coco import read_coco

    boxes, labels, n, shape = read_coco(_coco(tmp_path))
    assert shape == (64, 64) and n.tolist() == [1] and boxes[0, 0].tolist() == [10, 10, 14, 18]
    with pytest.raises(InputError, match=r"bad.json: annotations\[0\].bbox .* outside"):
        read_coco(_coco(tmp_path, bbox=[60, 10, 8, 8]))
    with pytest.raises(InputError, match=r"bad.json: annotations\[0\].category_id 7 is unknown"):
        read_coco(_coco(tmp_path, category_id=7))
    with pytest.raises(InputError, match=r"bad.json: annotations\[0\].image_id 3"):
        read_coco(_coco(tmp_path, image_id=3))


def test_train_on_coco_labels_checks_them(sim, tmp_path):
    r = runner.invoke(app, ["gixd", "train", str(sim / "sim.h5"), "--labels",
                            str(_coco(tmp_path, category_id=9)), "--steps", "1"])
    assert r.exit_code == 2 and "category_id 9" in _err(r), r.output


def test_option_bounds_come_from_params(sim, tmp_path):
    r = runner.invoke(app, ["gixd", "train", str(sim / "sim.h5"), "--steps", "0"])
    assert r.exit_code == 2 and "--steps" in _err(r)
    r = runner.invoke(app, ["gixd", "detect", str(sim / "sim.h5"), "--method", "classical",
                            "--incidence-deg", "12"])
    assert r.exit_code == 2 and "--incidence-deg" in _err(r)


def test_corrupt_frame_is_recorded_and_the_rest_processed(tmp_path):
    frames = np.random.default_rng(0).poisson(3.0, (3, 64, 64)).astype(np.float32)
    frames[1, 5, 5] = np.nan
    src = tmp_path / "polar.h5"
    with h5py.File(src, "w") as f:
        f["polar"] = frames
    peaks = tmp_path / "p.h5"
    r = runner.invoke(app, ["gixd", "detect", str(src), "--method", "classical", "-p", str(peaks),
                            "-o", str(tmp_path / "run"), "-q"])
    assert r.exit_code == 0, r.output
    assert "in 2 of 3 frames" in r.output and "frame 1 failed" in r.output and "NaN" in r.output
    with h5py.File(peaks, "r") as f:
        assert f["status"][()].tolist() == [0, 1, 0]


def test_model_of_another_input_size_is_named(sim, tmp_path):
    model = tmp_path / "m.pt"
    r = runner.invoke(app, ["gixd", "train", str(sim / "sim.h5"), "--steps", "1", "--batch-size",
                            "1", "--width", "8", "-o", str(model)])
    assert r.exit_code == 0, r.output
    small = tmp_path / "small.h5"
    with h5py.File(small, "w") as f:
        f["polar"] = np.ones((2, 32, 32), np.float32)
    r = runner.invoke(app, ["gixd", "detect", str(small), "--model", str(model),
                            "-o", str(tmp_path / "run")])
    msg = _err(r)
    assert r.exit_code == 2 and "m.pt" in msg and "(64, 64)" in msg and "(32, 32)" in msg, r.output


def test_finer_q_grid_and_anisotropic_model(tmp_path):
    # --n-q: |q| sampled twice as finely as χ; the labelled boxes sit at the features' |q|
    data = tmp_path / "fine.h5"
    r = runner.invoke(app, ["gixd", "simulate", str(data), "--n", "2", "--size", "64", "--n-q",
                            "128", "--detector-px", "128", "--seed", "3"])
    assert r.exit_code == 0, r.output
    with h5py.File(data, "r") as f:
        polar, boxes, n = f["polar"][()], f["boxes"][()], f["n_boxes"][()]
        q_axis, q_lab = f["q_axis"][()], f["q_inv_nm"][()]
    assert polar.shape == (2, 64, 128) and q_axis.shape == (128,)
    dq = q_axis[1] - q_axis[0]
    for i in range(2):
        centre = (boxes[i, :n[i], 0] + boxes[i, :n[i], 2]) / 2      # polar px along |q|
        q_box = q_axis[0] - dq / 2 + centre * dq
        assert n[i] > 0 and np.abs(q_box - q_lab[i, :n[i]]).max() < 2 * dq
    model = tmp_path / "m.pt"
    r = runner.invoke(app, ["gixd", "train", str(data), "--steps", "1", "--batch-size", "1",
                            "--width", "8", "--arch", "2", "-o", str(model)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["gixd", "detect", str(data), "--model", str(model), "-p",
                            str(tmp_path / "p.h5"), "-o", str(tmp_path / "run"), "-q"])
    assert r.exit_code == 0 and "of 2 frames" in r.output, r.output
