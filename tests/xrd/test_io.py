"""Frame sources: NeXus/bitshuffle, Eiger masters with external links, fabio series, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.diffraction.xrd import open_frames
from matterflow.diffraction.xrd._io import FrameError
from matterflow.diffraction.xrd.sample_data import write_eiger_master, write_frames_h5


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(1)
    return rng.poisson(50, size=(10, 32, 48)).astype(np.uint32)


def test_nexus_bitshuffle_range_stride(tmp_path, stack):
    p = write_frames_h5(tmp_path / "f.h5", stack, compression="bitshuffle")
    with h5py.File(p) as f:  # really compressed with the bitshuffle filter (id 32008)
        assert 32008 in f["entry/data/data"]._filters or "32008" in f["entry/data/data"]._filters
    src = open_frames(p, first=1, last=9, stride=3)
    assert len(src) == 3 and src.shape == (32, 48)
    for k, i in enumerate((1, 4, 7)):
        assert np.array_equal(src[k], stack[i].astype(np.float32))


@pytest.mark.parametrize("dtype", ["<u4", ">i4", "<u2", "<f4"])
def test_bitshuffle_chunks_decompressed_outside_hdf5_equal_hdf5s_read(tmp_path, stack, dtype,
                                                                      monkeypatch):
    """Eiger-style frames (one bitshuffle/LZ4 chunk each): raw chunk + bitshuffle package, the
    same values as HDF5's own filter; without the package, HDF5 reads them; a corrupt chunk
    fails alone."""
    from matterflow.diffraction.xrd import _io

    pytest.importorskip("bitshuffle")
    frames = stack.astype(dtype)
    p = write_frames_h5(tmp_path / "b.h5", frames, compression="bitshuffle")
    with h5py.File(p) as f:
        reference = f["entry/data/data"][()]
    src = open_frames(p)
    got = np.stack([src[i] for i in range(len(src))])
    assert [fast for _h, fast in src._handles.values()] == [True]   # the raw-chunk path was used
    assert got.dtype == reference.dtype and np.array_equal(got, reference)
    monkeypatch.setattr(_io, "_bitshuffle", lambda: None)
    plain = open_frames(p)
    assert np.array_equal(plain[3], reference[3])
    assert [fast for _h, fast in plain._handles.values()] == [False]
    monkeypatch.undo()
    with h5py.File(p) as f:
        info = f["entry/data/data"].id.get_chunk_info(4)
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset + 12)
        fh.write(b"\xff" * (info.size - 12))
    src = open_frames(p)
    assert np.array_equal(src[3], reference[3])
    with pytest.raises(FrameError, match="frame 4 cannot be read"):
        src[4]


def test_eiger_master_external_links(tmp_path, stack):
    master = write_eiger_master(tmp_path, stack, per_file=4)
    assert len(list(tmp_path.glob("scan_data_*.h5"))) == 3
    src = open_frames(master)
    assert len(src) == 10
    assert np.array_equal(src[5], stack[5].astype(np.float32))   # in the second data file
    assert src.describe(9).startswith("scan_data_000003.h5")
    (tmp_path / "scan_data_000002.h5").unlink()
    with pytest.raises(InputError, match="data_000002 points to a missing data file"):
        open_frames(master)


def test_fabio_series_formats(tmp_path, stack):
    import fabio.cbfimage
    import fabio.edfimage
    import fabio.tifimage

    for i in range(4):
        fabio.edfimage.EdfImage(data=stack[i].astype(np.float32)).write(str(tmp_path / f"s_{i:03d}.edf"))
    fabio.tifimage.TifImage(data=stack[0].astype(np.int32)).write(str(tmp_path / "one.tif"))
    fabio.cbfimage.CbfImage(data=stack[1].astype(np.int32)).write(str(tmp_path / "one.cbf"))
    src = open_frames(tmp_path / "s_*.edf", stride=2)
    assert len(src) == 2 and np.array_equal(src[1], stack[2].astype(np.float32))
    folder = open_frames(tmp_path, pattern="s_*.edf", first=3)
    assert len(folder) == 1 and np.array_equal(folder[0], stack[3].astype(np.float32))
    assert np.array_equal(open_frames(tmp_path / "one.tif")[0], stack[0].astype(np.float32))
    assert np.array_equal(open_frames(tmp_path / "one.cbf")[0], stack[1].astype(np.float32))


def test_truncated_file_fails_alone(tmp_path, stack):
    import fabio.edfimage

    for i in range(3):
        fabio.edfimage.EdfImage(data=stack[i].astype(np.float32)).write(str(tmp_path / f"s_{i}.edf"))
    bad = tmp_path / "s_1.edf"
    bad.write_bytes(bad.read_bytes()[:2000])
    src = open_frames(tmp_path / "s_*.edf")
    assert np.array_equal(src[2], stack[2].astype(np.float32))
    with pytest.raises(FrameError, match="s_1.edf: frame 0 cannot be read"):
        src[1]


def test_corrupt_hdf5_chunk_fails_alone(tmp_path, stack):
    p = write_frames_h5(tmp_path / "c.h5", stack, compression="gzip")
    with h5py.File(p) as f:
        info = f["entry/data/data"].id.get_chunk_info(4)
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    src = open_frames(p)
    assert np.array_equal(src[3], stack[3].astype(np.float32))
    with pytest.raises(FrameError, match="frame 4 cannot be read"):
        src[4]


def test_bad_inputs(tmp_path, stack):
    p = write_frames_h5(tmp_path / "f.h5", stack, compression="none")
    with pytest.raises(InputError, match=r"dataset '/entry/data/nope' does not exist; .*/entry/data/data"):
        open_frames(p, dataset="/entry/data/nope")
    with pytest.raises(InputError, match="no such file"):
        open_frames(tmp_path / "missing.h5")
    with pytest.raises(InputError, match="selects no frame out of 10"):
        open_frames(p, first=20)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        open_frames(tmp_path / "junk.h5")
    with pytest.raises(InputError, match="no file matches"):
        open_frames(tmp_path / "nothing_*.cbf")
