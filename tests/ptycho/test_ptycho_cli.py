"""`matterflow ptycho` commands: simulate -> reconstruct, exit codes on bad input."""

import h5py
import numpy as np
from typer.testing import CliRunner

from matterflow.microscopy.ptycho.cli import app


def test_simulate_then_reconstruct_writes_hdf5_and_figures(tmp_path):
    run = CliRunner().invoke
    data = tmp_path / "sto.h5"
    r = run(app, ["simulate", "-o", str(data), "--scan", "8"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "rec"
    r = run(app, ["reconstruct", str(data), "-o", str(out), "--iterations", "2"])
    assert r.exit_code == 0, r.output
    with h5py.File(out / "ptycho.h5") as f:
        assert f["phase"].attrs["units"] == "rad" and np.isfinite(f["phase"][()]).all()
        assert f.attrs["pixel_size_a"] > 0
    assert sorted(p.name for p in out.glob("*.png")) == ["00_Phase_and_probe.png", "01_Loss.png"]
    assert (out / "checkpoint.pt").exists()


def test_bad_input_exits_2_with_the_file_named(tmp_path):
    np.save(tmp_path / "d.npy", np.full((4, 8, 8), np.nan, np.float32))
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "d.npy"), "--energy", "2e5",
                                 "--semiangle", "20", "--sampling", "0.2", "--scan-step", "0.5"])
    assert r.exit_code == 2 and "d.npy" in r.output and "NaN" in r.output
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "absent.h5")])
    assert r.exit_code == 2 and "absent.h5" in r.output


def test_bilayer_sample_gives_a_depth_profile_with_each_layer_on_its_side(tmp_path):
    run = CliRunner().invoke
    data = tmp_path / "bl.h5"
    r = run(app, ["simulate", "--sample", "bilayer", "-o", str(data)])
    assert r.exit_code == 0, r.output
    with h5py.File(data) as f:
        truth = f["truth"][()]
    assert truth.shape == (2, 96, 96)
    a, b = (t.ravel() - t.mean() for t in truth)
    assert abs(a @ b) / np.sqrt((a @ a) * (b @ b)) < 0.05  # the two lattices are distinct
    out = tmp_path / "rec"
    # the layers are 12 Å apart in a 22 Å slab; 8 slices of 2.75 Å
    r = run(app, ["reconstruct", str(data), "-o", str(out), "--slices", "8",
                  "--slice-thickness", "2.75", "--no-probe", "--iterations", "20",
                  "--lr-object", "0.05", "--batch-size", "32"])
    assert r.exit_code == 0, r.output
    assert "depth profile" in r.output and (out / "02_Depth_profile.png").exists()
    with h5py.File(out / "ptycho.h5") as f:
        prof = f["layer_ncc"][()]
    assert prof.shape == (8, 2)
    up, low = prof.argmax(0)
    assert up <= 2 and low >= 5, prof  # true depths 5 Å (slice 1) and 17 Å (slice 6)
