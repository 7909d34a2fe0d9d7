"""Models stored as bytes in results files: one field type, one unit, one reader."""

import dataclasses
import typing

import h5py
import numpy as np
import pytest

from matterflow.core.blob import BYTES_UNITS, bytes_field, from_bytes_array, to_bytes_array
from matterflow.core.errors import InputError
from matterflow.core.registry import list_tasks, result_to_dict
from matterflow.core.store import atomic_h5, read_group, write_outputs


@dataclasses.dataclass(frozen=True)
class _Trained:
    model: np.ndarray = bytes_field("a model file")


def test_bytes_survive_a_results_file(tmp_path):
    blob = bytes(range(256)) * 3 + b"\x00\x00"           # NULs inside and at the end
    values, units = result_to_dict(_Trained(model=to_bytes_array(blob)))
    with atomic_h5(tmp_path / "r.h5") as f:
        write_outputs(f.create_group("fit"), values, units)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        back, back_units = read_group(f["fit"])
    assert back_units["model"] == "bytes"
    assert from_bytes_array(back["model"]) == blob


def test_reader_takes_bytes_and_files_and_names_the_field(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"abc")
    assert from_bytes_array(b"abc") == b"abc"
    assert from_bytes_array(tmp_path / "m.bin") == b"abc"
    with pytest.raises(InputError, match=r"model_pickle: .*uint8.*got float64"):
        from_bytes_array(np.zeros(3), field="model_pickle")
    with pytest.raises(InputError, match="nope.bin: file not found"):
        from_bytes_array(tmp_path / "nope.bin")


def test_every_stored_model_uses_the_one_unit():
    """Each task output documented as stored bytes has units 'bytes' (there were three units)."""
    found = {}
    for name, t in list_tasks().items():
        ret = typing.get_type_hints(t.func).get("return")
        if not dataclasses.is_dataclass(ret):
            continue
        for f in dataclasses.fields(ret):
            if "uint8" in f.metadata.get("doc", "") and "byte" in f.metadata.get("doc", ""):
                found[f"{name}.{f.name}"] = f.metadata["units"]
    assert {"basis.fit.model_pickle", "electrons.train.model", "dft1d.pinn_train.model"} <= set(found)
    assert set(found.values()) == {BYTES_UNITS}, found
