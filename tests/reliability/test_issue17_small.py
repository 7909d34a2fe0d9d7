"""Issue 17 item 8, the smaller items: each test is named after what it checks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError, MatterflowWarning

runner = CliRunner()
EXE = Path(sys.executable).parent / "matterflow"
EVIL = "<script>alert(1)</script>"


def test_report_of_crafted_h5_html_escapes_every_name_and_value(tmp_path):
    from matterflow.core.report import write_report

    p = tmp_path / "results.h5"
    with h5py.File(p, "w") as f:
        f.attrs["workflow_name"] = EVIL
        f.attrs["status"] = "<b>complete</b>"
        f.attrs["host"] = "<img src=x onerror=alert(2)>"
        f.attrs["seeds"] = json.dumps({EVIL: 1})
        g = f.create_group("<img src=y onerror=alert(3)>")
        g.attrs["task"] = EVIL
        g.attrs["params"] = json.dumps({"<i>p</i>": "<svg onload=alert(4)>"})
        g.attrs["inputs"] = json.dumps({"<a>": "<iframe>"})
        rec = np.zeros(3, dtype=[(EVIL, "<f8"), ("<svg/onload=alert(5)>", "<i4")])
        ds = g.create_dataset("compound", data=rec)
        ds.attrs["units"] = "<u onmouseover=alert(6)>"
        g.create_dataset(EVIL.replace("/", "|"), data="<iframe src=javascript:alert(7)>",
                         dtype=h5py.string_dtype())
        g.create_dataset("names", data=np.array(["<object>", "x"], dtype=object),
                         dtype=h5py.string_dtype())
    page = write_report(p).read_text()
    for raw in ("<script", "<img", "<svg", "<iframe", "<u ", "<i>", "<a>", "<object", "<b>comp"):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page          # the dtype's field name
    assert "&lt;svg/onload=alert(5)&gt;" in page


def test_compute_failed_log_dropped_for_matterflow_errors_kept_for_other_exceptions():
    from matterflow.core.execute import _QuietMatterflowErrors

    def record(exc_text):
        return logging.LogRecord("distributed.worker", logging.ERROR, "w.py", 1,
                                 "Compute Failed\nKey: %s\nState: %s\nTask: %s\nException: %r\n"
                                 "Traceback: %r\n", ("k", "executing", "t", exc_text, "tb"), None)

    flt = _QuietMatterflowErrors()
    assert not flt.filter(record("InputError('bad.h5: not a readable HDF5 file')"))
    assert not flt.filter(record("StorageError('disk full')"))
    assert flt.filter(record("ZeroDivisionError('division by zero')"))
    assert any(isinstance(f, _QuietMatterflowErrors)
               for f in logging.getLogger("distributed.worker").filters)


@pytest.mark.parametrize("mode", ["--processes", "--threads"])
def test_run_task_level_bad_input_prints_clean_message_without_dask_traceback(tmp_path, mode,
                                                                              cli_env):
    (tmp_path / "bad.h5").write_bytes(b"not an HDF5 file at all")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: t\nsteps:\n  - {id: frames, task: xrd.frames, inputs: {source: bad.h5}}\n")
    r = subprocess.run([str(EXE), "run", str(wf), "--out", str(tmp_path / "o"), "--workers", "1",
                        mode, "--quiet"], capture_output=True, text=True, timeout=120,
                       env=cli_env)
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "bad.h5: not a readable HDF5 file" in text
    assert "Compute Failed" not in text and "Traceback" not in text


def test_demo_only_core_merges_into_the_existing_index(tmp_path):
    from matterflow.cli import demo_workflows

    out = tmp_path / "demo-out"
    labels = [d if len(ps) == 1 else f"{d}/{ps[0].stem}"
              for d, ps in demo_workflows().items() if d != "core"]
    other = out / labels[0]                 # an earlier run of another domain's demo
    other.mkdir(parents=True)
    with h5py.File(other / "results.h5", "w") as f:
        f.attrs["status"] = "complete"
    (other / "report.html").write_text("<html>earlier</html>")
    r = runner.invoke(app, ["demo", "--only", "core", "--out", str(out), "--quiet",
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    index = (out / "index.html").read_text()
    assert "core/report.html" in index and f"{labels[0]}/report.html" in index
    assert index.count("class='card'") == 2


def test_dft_energy_window_error_names_energy_min_and_keeps_the_scf(tmp_path, monkeypatch):
    from ase.build import bulk

    from matterflow.electrons.dft import run_dft

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    kw = dict(kpts=(1, 1, 1), mesh=(8, 8, 8), electronic_temperature_k=933)
    monkeypatch.setenv("MATTERFLOW_CACHE_DIR", "off")
    fresh = run_dft(atoms, energy_grid_ev=np.arange(-6, 14, 0.05), **kw)   # the reference
    monkeypatch.setenv("MATTERFLOW_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(InputError, match=r"--energy-min\) must lie 3 sigma below.*give "
                                         r"--energy-min -\d") as err:
        run_dft(atoms, energy_grid_ev=np.arange(-1, 14, 0.05), **kw)
    assert "converged SCF is kept" in str(err.value)
    assert len(list((tmp_path / "cache" / "dft").glob("scf-*.npy"))) == 1
    with pytest.raises(InputError, match=r"--energy-max\) must lie above the Fermi level"):
        run_dft(atoms, energy_grid_ev=np.arange(-6, 2, 0.05), **kw)
    again = run_dft(atoms, energy_grid_ev=np.arange(-6, 14, 0.05), **kw)  # starts from it
    assert again.total_energy_ev == pytest.approx(fresh.total_energy_ev, abs=1e-5)
    np.testing.assert_allclose(again.eigenvalues_ev, fresh.eigenvalues_ev, atol=1e-4)
    assert list((tmp_path / "cache" / "dft").glob("scf-*.npy")) == []     # used, then removed


def test_dft_cli_window_message_names_the_options_exit_2(tmp_path):
    r = runner.invoke(app, ["electrons", "dft", "--out", str(tmp_path / "s"), "--snapshots", "1",
                            "--kpts", "1,1,1", "--mesh", "8,8,8", "--temperature", "933",
                            "--energy-min", "-1", "--energy-max", "14", "--quiet",
                            "--workers", "1"])
    assert r.exit_code == 2, r.output
    assert "--energy-min" in r.output and "Traceback" not in r.output


def test_kpts_accepted_as_comma_separated_triple_as_the_help_shows(tmp_path):
    from matterflow.clitools import parse_ints

    assert parse_ints("2,2,2", "--kpts") == (2, 2, 2) == parse_ints("2x2x2", "--kpts")
    with pytest.raises(InputError, match=r"--kpts: 3 integers >= 1.*got '2,2'"):
        parse_ints("2,2", "--kpts")
    help_text = runner.invoke(app, ["electrons", "dft", "--help"], terminal_width=200).output
    assert "N,N,N" in help_text
    # a bad energy range stops the command after --kpts was parsed (before any DFT)
    r = runner.invoke(app, ["electrons", "dft", "--out", str(tmp_path), "--kpts", "2,2,2",
                            "--energy-min", "5", "--energy-max", "1"])
    assert r.exit_code == 2 and "Invalid value for '--kpts'" not in r.output
    assert "energy" in r.output


def test_basis_predict_on_nan_feature_names_column_and_row_not_the_target(tmp_path):
    from matterflow.basis.data import DEFAULT_FEATURES, load_csv, shipped_csv

    table = pd.read_csv(shipped_csv()).head(6)
    feature = DEFAULT_FEATURES[0]
    table.loc[3, feature] = np.nan
    p = tmp_path / "new.csv"
    table.to_csv(p, index=False)
    with pytest.raises(InputError) as err:   # what `basis predict` reads the table with
        load_csv(p, require_target=False, require_levels=False)
    msg = str(err.value)
    assert f"column {feature!r}, row 5: missing value (NaN)" in msg
    assert f"feature {feature!r} must be given" in msg and "target" not in msg


def _calibrate(dist, rot1, rot2):
    from matterflow.diffraction.xrd import auto_calibrate
    from matterflow.diffraction.xrd.synthetic import calibrant_image, make_geometry

    ai = make_geometry(distance_mm=dist, centre_px=(530.3, 495.7), rot1_deg=rot1, rot2_deg=rot2,
                       pixel_size_um=100.0, shape=(1024, 1024), energy_kev=20.0)
    img = calibrant_image(ai, "LaB6", max_counts=1500, background=30, seed=11)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        auto_calibrate(img, calibrant="LaB6", energy_kev=20.0, pixel_size_um=100.0)
    return [str(w.message) for w in got if issubclass(w.category, MatterflowWarning)]


def test_calibrate_small_tilts_at_long_distance_warns_geometry_is_degenerate():
    # at 600 mm the rings span < 10° of 2θ: tilt and centre trade off (the fit's tilts are
    # off by more than the true ones)
    msgs = _calibrate(600.0, 0.2, 0.1)
    assert any("geometry is degenerate" in m and "compensate" in m for m in msgs), msgs


@pytest.mark.slow
def test_calibrate_well_determined_tilts_do_not_warn():
    msgs = _calibrate(150.0, 0.1, -0.05)
    assert not any("degenerate" in m for m in msgs), msgs
