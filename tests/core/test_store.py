"""Result store: round trip with units and provenance; atomic writes survive SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.core.store import (
    Results,
    atomic_h5,
    atomic_write_bytes,
    base_provenance,
    read_group,
    sha256_file,
    stack_groups,
    write_outputs,
    write_provenance,
)


def test_round_trip_with_units_and_nesting(tmp_path):
    values = {"energy_ev": np.array([1.5, -2.0]), "fermi_ev": 7.25, "label": "fcc Al",
              "species": ["Al", "Al"], "fit": {"a": np.eye(2), "b": 3}}
    units = {"energy_ev": "eV", "fermi_ev": "eV", "fit/a": "Å", "fit/b": "dimensionless"}
    path = tmp_path / "r.h5"
    with atomic_h5(path) as f:
        write_outputs(f.create_group("step"), values, units)
        write_provenance(f, {"seeds": {"step": 3}, "host": "h"})
    got, got_units = read_group(h5py.File(path, "r")["step"])
    np.testing.assert_array_equal(got["energy_ev"], values["energy_ev"])
    assert got["fermi_ev"] == 7.25 and got["label"] == "fcc Al" and got["species"] == ["Al", "Al"]
    np.testing.assert_array_equal(got["fit"]["a"], np.eye(2))
    assert got_units["energy_ev"] == "eV" and got_units["fit/a"] == "Å"
    assert got_units["label"] == "dimensionless"  # every dataset carries a units attribute
    res = Results(path)
    assert res.provenance["seeds"] == {"step": 3} and res.provenance["creator"] == "matterflow"
    assert res["step"]["fermi_ev"] == 7.25


def test_large_arrays_are_compressed_and_exact(tmp_path):
    big = np.random.default_rng(0).normal(size=(300, 400))
    with atomic_h5(tmp_path / "b.h5") as f:
        write_outputs(f, {"x": big}, {"x": "nm"})
    with h5py.File(tmp_path / "b.h5") as f:
        assert f["x"].compression == "lzf"
        np.testing.assert_array_equal(f["x"][()], big)


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "r.h5"
    with atomic_h5(path) as f:
        f.attrs["version"] = 1
    with pytest.raises(RuntimeError), atomic_h5(path) as f:
        f.attrs["version"] = 2
        raise RuntimeError("boom")
    with h5py.File(path) as f:
        assert f.attrs["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]  # no temporary file left


def test_atomic_bytes_write_replaces_whole_files_only(tmp_path):
    path = tmp_path / "sub" / "model.bin"
    assert atomic_write_bytes(path, b"first") == path and path.read_bytes() == b"first"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["model.bin"]  # no temporary file left


def test_stacking_stored_batches_equals_stacking_in_memory(tmp_path):
    """What the executor does with a mapped step's batch files, one file at a time."""
    rng = np.random.default_rng(1)
    batches = [{"x": rng.normal(size=(n, 3)), "label": [f"item{i}" for i in range(n)],
                "fit": {"center": rng.normal(size=n), "big": rng.normal(size=(n, 200, 400))}}
               for n in (2, 5, 1)]
    units = {"x": "nm", "fit": "", "fit/center": "deg", "fit/big": "counts"}
    paths = []
    for k, b in enumerate(batches):
        with atomic_h5(tmp_path / f"b{k}.h5") as f:
            write_outputs(f.create_group("batch"), b, units)
        paths.append(tmp_path / f"b{k}.h5")
    with atomic_h5(tmp_path / "step.h5") as f:
        stack_groups(f.create_group("step"), paths)
    with h5py.File(tmp_path / "step.h5") as f:
        got, got_units = read_group(f["step"])
        assert f["step/fit/big"].compression == "lzf"            # as write_outputs would
    np.testing.assert_array_equal(got["x"], np.concatenate([b["x"] for b in batches]))
    np.testing.assert_array_equal(got["fit"]["big"],
                                  np.concatenate([b["fit"]["big"] for b in batches]))
    assert got["label"] == [s for b in batches for s in b["label"]]
    assert got_units == {"x": "nm", "label": "dimensionless", "fit/center": "deg",
                         "fit/big": "counts"}


def test_provenance_has_versions_host_and_commit_field():
    prov = base_provenance()
    for key in ("matterflow_version", "git_commit", "python_version", "host", "library_versions"):
        assert key in prov
    assert "numpy" in prov["library_versions"] and "h5py" in prov["library_versions"]


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    p = tmp_path / "x.bin"
    p.write_bytes(os.urandom(10_000))
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_unreadable_results_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(InputError, match="bad.h5: not a readable HDF5 file"):
        Results(bad)
    with pytest.raises(InputError, match="no such results file"):
        Results(tmp_path / "missing.h5")


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from matterflow.core.store import atomic_h5
    path = sys.argv[1]
    data = np.random.default_rng(0).normal(size=(2_000_000,))
    for i in range(10_000):
        with atomic_h5(path) as f:
            for k in range(4):
                f.create_dataset(f"d{k}", data=data + i)
            f.attrs["i"] = i
            f.attrs["complete"] = True
""")


@pytest.mark.parametrize("delay", [0.0, 0.07, 0.23])
def test_sigkill_mid_write_never_leaves_a_corrupt_file(tmp_path, delay):
    path = tmp_path / "results.h5"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)])
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:  # first file complete
        time.sleep(0.005)
    time.sleep(delay)  # now the writer is somewhere inside a later write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.exists()  # the last complete file is still there ...
    with h5py.File(path, "r") as f:  # ... and it opens, whole
            assert f.attrs["complete"]
            assert set(f) == {"d0", "d1", "d2", "d3"}
            assert f["d3"].shape == (2_000_000,)
