"""Fault injection: a corrupt input of every file type the project reads.

Each case writes a damaged file (garbage bytes, a truncated file, or the right
container with the wrong content), runs the command that reads it, and checks: exit
code 2, a message naming the file, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from matterflow.cli import app

runner = CliRunner()
GARBAGE = bytes(range(256)) * 16


def _truncated(src: Path, dst: Path, keep: float = 0.4) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _process_file(d: Path, poni: Path, frames: str, **extra) -> Path:
    spec = {"name": "c", "input": {"path": frames}, "geometry": str(poni),
            "plugins": [{"plugin": "integrate1d", "npt": 100}], **extra}
    p = d / "process.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


# each case: (what is corrupt) -> function(tmp_path, fixtures) returning (args, file named)

def case_workflow_yaml_bad_syntax(d, fx):
    p = d / "flow.yaml"
    p.write_text("name: x\nsteps:\n  - {id: a, task: core.quickstart\n    params: [\n")
    return ["run", str(p), "--out", str(d / "o")], p


def case_workflow_yaml_binary(d, fx):
    p = d / "flow.yaml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + GARBAGE)
    return ["run", str(p), "--out", str(d / "o")], p


def case_workflow_yaml_not_a_mapping(d, fx):
    p = d / "flow.yaml"
    p.write_text("- just\n- a list\n")
    return ["run", str(p), "--out", str(d / "o")], p


def case_poni_garbage(d, fx):
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    write_frames_h5(d / "f.h5", fx["series"].frames[:2])
    poni = d / "geometry.poni"
    poni.write_bytes(GARBAGE)
    return ["xrd", "process", str(_process_file(d, poni, "f.h5")), "--out", str(d / "o")], poni


def case_poni_missing_distance(d, fx):
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    write_frames_h5(d / "f.h5", fx["series"].frames[:2])
    poni = d / "geometry.poni"
    text = fx["poni"].read_text()
    poni.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("Distance")))
    return ["xrd", "process", str(_process_file(d, poni, "f.h5")), "--out", str(d / "o")], poni


def case_hdf5_frames_truncated(d, fx):
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    full = write_frames_h5(d / "full.h5", fx["series"].frames[:4])
    bad = _truncated(full, d / "frames.h5")
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frames.h5")), "--out",
            str(d / "o")], bad


def case_hdf5_frames_garbage(d, fx):
    bad = d / "frames.h5"
    bad.write_bytes(GARBAGE)
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frames.h5")), "--out",
            str(d / "o")], bad


def case_tiff_frames_garbage(d, fx):
    bad = d / "frame_0001.tif"
    bad.write_bytes(b"II*\x00" + GARBAGE)
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frame_0001.tif")), "--out",
            str(d / "o")], bad


def case_tiff_frames_truncated(d, fx):
    import tifffile

    tifffile.imwrite(d / "full.tif", fx["series"].frames[0])
    bad = _truncated(d / "full.tif", d / "frame_0001.tif", 0.3)
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frame_0001.tif")), "--out",
            str(d / "o")], bad


def case_edf_frames_garbage(d, fx):
    bad = d / "frame_0001.edf"
    bad.write_bytes(b"{\nHeaderID = EH:000001:000000:000000 ;\n" + GARBAGE)
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frame_0001.edf")), "--out",
            str(d / "o")], bad


def case_edf_frames_truncated(d, fx):
    import fabio

    fabio.edfimage.EdfImage(data=fx["series"].frames[0].astype(np.float32)).write(
        str(d / "full.edf"))
    bad = _truncated(d / "full.edf", d / "frame_0001.edf", 0.5)
    return ["xrd", "process", str(_process_file(d, fx["poni"], "frame_0001.edf")), "--out",
            str(d / "o")], bad


def case_calibrant_image_garbage(d, fx):
    bad = d / "calib.tif"
    bad.write_bytes(b"II*\x00" + GARBAGE)
    return ["xrd", "calibrate", str(bad), "--calibrant", "LaB6", "--energy", "25",
            "--pixel-size", "150", "--out", str(d / "g.poni")], bad


def case_mask_file_garbage(d, fx):
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    write_frames_h5(d / "f.h5", fx["series"].frames[:2])
    bad = d / "mask.npy"
    bad.write_bytes(b"\x93NUMPY" + GARBAGE)
    spec = _process_file(d, fx["poni"], "f.h5")
    data = yaml.safe_load(spec.read_text())
    data["plugins"].insert(0, {"plugin": "mask", "file": "mask.npy"})
    spec.write_text(yaml.safe_dump(data))
    return ["xrd", "process", str(spec), "--out", str(d / "o")], bad


def case_csv_binary(d, fx):
    bad = d / "calcs.csv"
    bad.write_bytes(b"\xff\xfe\x00" + GARBAGE)
    return ["basis", "fit", str(bad), "--out", str(d / "m.model")], bad


def case_csv_wrong_columns(d, fx):
    bad = d / "calcs.csv"
    bad.write_text("a,b,c\n1,2,3\n4,5,6\n")
    return ["basis", "fit", str(bad), "--out", str(d / "m.model")], bad


def case_tdb_garbage(d, fx):
    bad = d / "model.tdb"
    bad.write_text("ELEMENT CU FCC_A1 63.546 !\nPARAMETER G(LIQUID,CU;0) 298.15 +(((( !\n"
                   "PHASE ???\n")
    return ["calphad", "sample", "--tdb", str(bad), "--out", str(d / "chain.h5"),
            "--steps", "2", "--walkers", "4"], bad


def _espei_datasets_with(d: Path, text: str):
    """The shipped Cu-Mg datasets copied to ``d`` with the first JSON file replaced by ``text``."""
    import matterflow.calphad as calphad

    src = Path(calphad.__file__).parent / "data" / "Cu-Mg"
    ds = d / "Cu-Mg"
    shutil.copytree(src, ds)
    shutil.copy(src.with_name("Cu-Mg-phases.json"), d / "Cu-Mg-phases.json")
    bad = next(ds.rglob("*.json"))
    bad.write_text(text)
    return ["calphad", "fit", "--datasets", str(ds), "--out", str(d / "m.tdb")], bad


def case_espei_datasets_bad_json(d, fx):
    return _espei_datasets_with(d, '{"components": ["CU", "MG"], "phases": ["LIQUID"], "values": [[[0.1,')


def case_espei_dataset_wrong_schema(d, fx):
    return _espei_datasets_with(d, '{"components": 7, "values": "none"}')


def case_structure_file_garbage(d, fx):
    bad = d / "cell.xyz"
    bad.write_text("3\nnot a comment line\nAl 0 0\nXx 1 2 3 4\n")
    return ["electrons", "dft", "--structure", str(bad), "--out", str(d / "s")], bad


def case_structure_file_binary_cif(d, fx):
    bad = d / "cell.cif"
    bad.write_bytes(GARBAGE)
    return ["electrons", "dft", "--structure", str(bad), "--out", str(d / "s")], bad


def case_snapshot_h5_truncated(d, fx):
    import h5py

    full = d / "full.h5"
    with h5py.File(full, "w") as f:
        f.create_dataset("ldos", data=np.random.default_rng(0).random((8, 8, 8, 50)))
    bad = _truncated(full, d / "snapshot_000.h5", 0.3)
    return ["electrons", "observables", str(bad)], bad


def case_snapshot_h5_wrong_content(d, fx):
    import h5py

    bad = d / "snapshot_000.h5"
    with h5py.File(bad, "w") as f:
        f["something_else"] = np.arange(3)
    return ["electrons", "observables", str(bad)], bad


def case_dft1d_dataset_garbage(d, fx):
    bad = d / "dataset.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + GARBAGE)
    return ["dft1d", "invert", str(bad)], bad


def case_electrons_model_garbage(d, fx):
    bad = d / "model.pt"
    bad.write_bytes(b"PK\x03\x04" + GARBAGE)
    snap = d / "cell.xyz"
    snap.write_text("1\n\nAl 0 0 0\n")
    return ["electrons", "predict", str(bad), str(snap), "--out", str(d / "p.h5")], bad


def case_basis_model_truncated(d, fx):
    bad = d / "forest.model"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    csv = d / "new.csv"
    csv.write_text("a\n1\n")
    return ["basis", "predict", str(bad), str(csv)], bad


def case_results_h5_for_report_garbage(d, fx):
    bad = d / "results.h5"
    bad.write_bytes(GARBAGE)
    return ["report", str(bad)], bad


def case_chain_h5_for_propagate_garbage(d, fx):
    bad = d / "chain.h5"
    bad.write_bytes(GARBAGE)
    return ["calphad", "propagate", str(bad)], bad


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.fixture(scope="module")
def fx(series, poni_file):
    return {"series": series, "poni": poni_file}


@pytest.mark.parametrize("what", list(CASES))
def test_corrupt_input_exits_2_naming_the_file_without_traceback(what, tmp_path, fx,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, named = CASES[what](tmp_path, fx)
    r = runner.invoke(app, args, catch_exceptions=True, terminal_width=400)
    raised = r.exception if not isinstance(r.exception, SystemExit) else None
    assert raised is None, f"raw {type(raised).__name__}: {raised}"
    text = " ".join(r.output.split())
    assert r.exit_code == 2, f"exit {r.exit_code}: {r.output[-2000:]}"
    assert named.name in text, r.output
    assert "Traceback" not in r.output


def test_basis_predict_out_that_is_a_folder_exits_2_before_loading(tmp_path):
    (tmp_path / "predictions").mkdir()
    r = runner.invoke(app, ["basis", "predict", str(tmp_path / "any.model"),
                            str(tmp_path / "new.csv"), "--out", str(tmp_path / "predictions")])
    assert r.exit_code == 2 and "is a folder" in r.output and "predictions" in r.output
    assert not isinstance(r.exception, IsADirectoryError)


def test_report_into_a_path_under_a_file_is_a_clean_storage_error(tmp_path):
    import h5py

    res = tmp_path / "results.h5"
    with h5py.File(res, "w") as f:
        f.attrs["workflow_name"] = "x"
    (tmp_path / "afile").write_text("")
    r = runner.invoke(app, ["report", str(res), "--out", str(tmp_path / "afile" / "r.html")])
    assert r.exit_code == 1 and "afile" in r.output and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
