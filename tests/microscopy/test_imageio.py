"""The shared micrograph reader: every format round-trips through a minimal writer written here
from the format documentation (DM3/DM4 tag groups, TIA SER, MRC2014, Berkeley and Velox EMD),
with header values computed by hand; bad files are InputErrors naming the file and the byte.

Independent references, each skipped when absent: ncempy (GPLv3: used only from its own venv
/work/refvenvs/ncempy, in a subprocess, never imported here) reads the same DM/SER/MRC/EMD
files, and mrcfile (BSD, same venv) writes an MRC file that we read.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.microscopy.imageio import length_to_angstrom, read_micrograph

REF_PY = Path("/work/refvenvs/ncempy/bin/python")

# ----------------------------------------------------------------------------- DM writer

_DM_ELEM = {"f4": 6, "f8": 7, "i2": 2, "i4": 3, "u2": 4, "u4": 5, "i1": 9, "u1": 10, "i8": 11,
            "u8": 12}
_DM_TYPE = {"f4": 2, "f8": 12, "i2": 1, "i4": 7, "u2": 10, "u4": 11, "i1": 9, "u1": 6}


class _DM:
    """A minimal DM3/DM4 writer: header and tag structure big-endian, values in ``endian``."""

    def __init__(self, version: int, little: bool) -> None:
        self.v4, self.e = version == 4, "<" if little else ">"
        self.version, self.little = version, little
        self.w = ">Q" if self.v4 else ">i"

    def _entry(self, kind: int, label: str, body: bytes) -> bytes:
        lab = label.encode("latin-1")
        size = struct.pack(">Q", len(body)) if self.v4 else b""
        return bytes([kind]) + struct.pack(">H", len(lab)) + lab + size + body

    def data(self, label: str, info: list[int], payload: bytes) -> bytes:
        body = b"%%%%" + struct.pack(self.w, len(info)) + b"".join(struct.pack(self.w, i) for i in info)
        return self._entry(21, label, body + payload)

    def group(self, label: str, entries: list[bytes]) -> bytes:
        return self._entry(20, label, b"\0\0" + struct.pack(self.w, len(entries)) + b"".join(entries))

    def simple(self, label: str, code: int, fmt: str, value: float) -> bytes:
        return self.data(label, [code], np.array(value, self.e + fmt).tobytes())

    def text(self, label: str, s: str) -> bytes:  # DM text: an array of uint16 (code 4)
        return self.data(label, [20, 4, len(s)], np.array([ord(c) for c in s], self.e + "u2").tobytes())

    def array(self, label: str, arr: np.ndarray) -> bytes:
        k = arr.dtype.str[1:]
        return self.data(label, [20, _DM_ELEM[k], arr.size], arr.astype(self.e + k).tobytes())

    def image(self, arr: np.ndarray, scale: float, units: str, exotic: bool = True) -> bytes:
        dims = arr.shape[::-1]  # x first
        cal = [self.group("", [self.simple("Origin", 6, "f4", 0.0),
                               self.simple("Scale", 6, "f4", scale), self.text("Units", units)])
               for _ in dims]
        k = arr.dtype.str[1:]
        idata = self.group("ImageData", [
            self.group("Calibrations", [self.group("Dimension", cal)]),
            self.array("Data", arr.ravel()),
            self.simple("DataType", 3, "i4", _DM_TYPE[k]),
            self.group("Dimensions", [self.simple("", 5, "u4", d) for d in dims]),
            self.simple("PixelDepth", 5, "u4", arr.dtype.itemsize)])
        tags = self.group("ImageTags", [
            self.data("Pair", [15, 0, 2, 0, 3, 0, 7], np.array(7, self.e + "i4").tobytes()
                      + np.array(2.5, self.e + "f8").tobytes()),
            *([self.data("Label", [18, 5], b"hello")] if exotic else []),  # type 18: ncempy (DM4) fails
            self.simple("Count", 11, "i8", -2**40), self.simple("Flag", 8, "u1", 1),
            self.data("Points", [20, 15, 0, 2, 0, 6, 0, 6, 3],
                      np.arange(6, dtype=self.e + "f4").tobytes())])
        return self.group("", [idata, tags, self.text("Name", "test image")])

    def file(self, images: list[bytes], trailer: bool = True) -> bytes:
        root = b"\0\0" + struct.pack(self.w, 2) + self.group("ImageList", images) \
            + self.simple("ApplicationBounds", 3, "i4", 0)
        head = struct.pack(">i", self.version) + struct.pack(self.w, len(root)) \
            + struct.pack(">i", 1 if self.little else 0)
        return head + root + (b"\0" * 8 if trailer else b"")


def _write_dm(p: Path, arr: np.ndarray, *, version: int = 3, little: bool = True, scale: float = 0.05,
              units: str = "nm", thumbnail: bool = True, exotic: bool = True) -> bytes:
    w = _DM(version, little)
    images = [w.image(np.zeros((4, 4), np.uint8), 1.0, "", exotic)] if thumbnail else []
    raw = w.file(images + [w.image(arr, scale, units, exotic)])
    p.write_bytes(raw)
    return raw


@pytest.mark.parametrize("version,little,dtype,shape", [
    (3, True, "f4", (24, 40)), (4, True, "u2", (33, 20)), (3, False, "i2", (3, 16, 24)),
    (4, False, "f8", (20, 12)), (3, True, "i1", (8, 10)), (4, True, "u4", (2, 9, 11))])
def test_dm_round_trip_types_orders_and_stacks(tmp_path, version, little, dtype, shape):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=shape) * 50).astype(dtype)
    p = tmp_path / f"img.dm{version}"
    raw = _write_dm(p, arr, version=version, little=little)
    # hand-computed header: version (>i4), then the byte-order flag after a 4-/8-byte length
    assert struct.unpack(">i", raw[:4])[0] == version
    assert raw[8 if version == 3 else 12:][:4] == (b"\0\0\0\x01" if little else b"\0\0\0\0")
    m = read_micrograph(p)
    assert m.format == f"dm{version}" and m.data.shape == shape and m.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(m.data, arr)
    assert m.pixel_size_A == pytest.approx(0.5, rel=1e-6)  # 0.05 nm (float32 in the file)
    assert m.pixel_size_source.startswith(
        f"DM{version} tag ImageList.1.ImageData.Calibrations.Dimension.0.Scale")
    tags = m.metadata["tags"]
    assert tags["ImageList.1.ImageTags.Pair"] == (7, 2.5)
    assert tags["ImageList.1.ImageTags.Label"] == "hello"
    assert tags["ImageList.1.ImageTags.Count"] == -2**40
    assert tags["ImageList.1.ImageTags.Flag"] is True
    assert tags["ImageList.1.Name"] == "test image"
    assert tags["ImageList.1.ImageData.Dimensions.0"] == shape[-1]  # x (fastest) first
    assert "Points" in str(list(tags))


@pytest.mark.parametrize("units,expected", [("µm", 0.05e4), ("um", 0.05e4), ("Å", 0.05),
                                            ("pm", 0.05e-2), ("m", 0.05e10)])
def test_dm_units_convert_to_angstrom(tmp_path, units, expected):
    p = tmp_path / "u.dm4"
    _write_dm(p, np.ones((8, 8), np.float32), version=4, units=units)
    assert read_micrograph(p).pixel_size_A == pytest.approx(expected, rel=1e-6)


def test_dm_reciprocal_and_uncalibrated_give_no_pixel_size(tmp_path):
    p = tmp_path / "diff.dm3"
    _write_dm(p, np.ones((8, 8), np.float32), units="1/nm", scale=0.02)
    m = read_micrograph(p)
    assert m.pixel_size_A is None and m.pixel_size_source is None
    assert m.metadata["calibration"]["reciprocal_per_A"] == pytest.approx(0.002, rel=1e-6)
    r = tmp_path / "neg.dm3"
    _write_dm(r, np.ones((8, 8), np.float32), scale=-0.25)
    assert read_micrograph(r).pixel_size_A == pytest.approx(2.5)
    q = tmp_path / "raw.dm3"
    _write_dm(q, np.ones((8, 8), np.float32), units="", scale=1.0)
    assert read_micrograph(q).pixel_size_A is None
    m = read_micrograph(q, pixel_size=0.7)
    assert m.pixel_size_A == 0.7 and m.pixel_size_source == "given (pixel_size=0.7 Å)"


def test_dm_truncated_and_corrupt_files_name_the_byte(tmp_path):
    arr = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    p = tmp_path / "t.dm3"
    raw = _write_dm(p, arr)
    cut = len(raw) - 4000  # inside the image Data array
    (tmp_path / "cut.dm3").write_bytes(raw[:cut])
    with pytest.raises(InputError, match=rf"cut.dm3: truncated DM file: array tag "
                                         rf"'ImageList.1.ImageData.Data'.*file ends at byte {cut}"):
        read_micrograph(tmp_path / "cut.dm3")
    (tmp_path / "head.dm4").write_bytes(b"\0\0\0\x04\0\0")
    with pytest.raises(InputError, match="head.dm4: truncated DM file: the root length needs 8 bytes "
                                         "at byte 4, the file ends at byte 6"):
        read_micrograph(tmp_path / "head.dm4")
    # an unknown data type code: patch the DataType tag's type code (i4 = 3 -> 99)
    i = raw.index(b"DataType", raw.index(b"DataType") + 1)  # the big image's
    at = i + 8 + 4 + 4  # label, '%%%%', ninfo
    bad = raw[:at] + struct.pack(">i", 99) + raw[at + 4:]
    (tmp_path / "code.dm3").write_bytes(bad)
    with pytest.raises(InputError, match=rf"code.dm3: unknown DM data type code 99 in tag "
                                         rf"'ImageList.1.ImageData.DataType' at byte {at - 4}"):
        read_micrograph(tmp_path / "code.dm3")
    bad = raw[:i + 8] + b"%%%!" + raw[i + 12:]
    (tmp_path / "delim.dm3").write_bytes(bad)
    with pytest.raises(InputError, match=rf"delim.dm3: tag 'ImageList.1.ImageData.DataType' lacks "
                                         rf"its '%%%%' delimiter at byte {i + 8}"):
        read_micrograph(tmp_path / "delim.dm3")
    (tmp_path / "v5.dm3").write_bytes(b"\0\0\0\x05" + raw[4:])
    with pytest.raises(InputError, match=r"v5.dm3: not a valid \.dm3 file"):
        read_micrograph(tmp_path / "v5.dm3")


def test_dm_complex_image_and_unsupported_type(tmp_path):
    w = _DM(4, True)
    z = (np.arange(6 * 8) + 1j * np.arange(6 * 8)[::-1]).astype(np.complex64).reshape(6, 8)

    def image(code: int) -> bytes:
        return w.group("", [w.group("ImageData", [  # DM stores complex pixels as float pairs
            w.data("Data", [20, 6, 2 * z.size], z.view(np.float32).astype("<f4").tobytes()),
            w.simple("DataType", 3, "i4", code),
            w.group("Dimensions", [w.simple("", 5, "u4", 8), w.simple("", 5, "u4", 6)])])])

    (tmp_path / "z.dm4").write_bytes(w.file([image(3)]))
    m = read_micrograph(tmp_path / "z.dm4")
    assert m.data.dtype == np.complex64
    np.testing.assert_array_equal(m.data, z)
    (tmp_path / "p.dm4").write_bytes(w.file([image(5)]))  # packed complex: not read
    with pytest.raises(InputError, match=r"p.dm4: no image data in the DM ImageList; not read: "
                                         r"ImageList.0 \(DataType 5\)"):
        read_micrograph(tmp_path / "p.dm4")


def test_dm4_skips_an_unknown_type_by_its_tag_size(tmp_path):
    w = _DM(4, True)
    arr = np.arange(48, dtype=np.float32).reshape(6, 8)
    odd = w.data("Future", [20, 99, 3], b"\x01" * 24)  # an array of an unknown type
    img = w.group("", [w.group("ImageData", [
        w.array("Data", arr.ravel()), w.simple("DataType", 3, "i4", 2),
        w.group("Dimensions", [w.simple("", 5, "u4", 8), w.simple("", 5, "u4", 6)])]),
        w.group("ImageTags", [odd, w.simple("After", 3, "i4", 42)])])
    (tmp_path / "f.dm4").write_bytes(w.file([img]))
    m = read_micrograph(tmp_path / "f.dm4")
    np.testing.assert_array_equal(m.data, arr)
    assert m.metadata["tags"]["ImageList.0.ImageTags.Future"] == "<DM type [20, 99, 3] not read>"
    assert m.metadata["tags"]["ImageList.0.ImageTags.After"] == 42


def test_dm_spectrum_is_not_a_micrograph(tmp_path):
    w = _DM(3, True)
    spec = np.arange(100, dtype=np.float32)
    img = w.group("", [w.group("ImageData", [
        w.array("Data", spec), w.simple("DataType", 3, "i4", 2),
        w.group("Dimensions", [w.simple("", 5, "u4", 100)])])])
    (tmp_path / "s.dm3").write_bytes(w.file([img]))
    with pytest.raises(InputError, match=r"s.dm3: not a micrograph: ImageList.0.ImageData holds a "
                                         r"1D spectrum"):
        read_micrograph(tmp_path / "s.dm3")


# ----------------------------------------------------------------------------- SER writer

def _write_ser(p: Path, frames: np.ndarray, *, delta: float = 2.5e-11, version: int = 0x0210,
               code: int = 6) -> bytes:
    off = "<q" if version == 0x0220 else "<i"
    n, ny, nx = frames.shape
    dt = {1: "<u1", 2: "<u2", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8"}[code]
    head_len = 6 + 16 + struct.calcsize(off) + 4
    dim = struct.pack("<iddii", n, 0.0, 1.0, 0, 6) + b"Number" + struct.pack("<i", 0)
    arrays_at = head_len + len(dim)
    first = arrays_at + 2 * n * struct.calcsize(off)
    elem = 50 + ny * nx * np.dtype(dt).itemsize
    data_offsets = [first + k * elem for k in range(n)]
    tag_offsets = [first + n * elem + k * 6 for k in range(n)]
    out = struct.pack("<HHH", 0x4949, 0x0197, version) + struct.pack("<iiii", 0x4122, 0x4152, n, n)
    out += struct.pack(off, arrays_at) + struct.pack("<i", 1) + dim
    out += b"".join(struct.pack(off, o) for o in data_offsets + tag_offsets)
    for fr in frames:
        out += struct.pack("<ddiddihii", 0.0, delta, 0, 0.0, delta, 0, code, nx, ny)
        out += fr.astype(dt).tobytes()
    out += b"".join(struct.pack("<hi", 0x4152, 1_700_000_000 + k) for k in range(n))
    p.write_bytes(out)
    return out


@pytest.mark.parametrize("version,code,n", [(0x0210, 6, 1), (0x0220, 7, 3), (0x0210, 2, 2)])
def test_ser_round_trip(tmp_path, version, code, n):
    rng = np.random.default_rng(1)
    frames = (rng.random((n, 12, 20)) * 1000).astype({6: "i4", 7: "f4", 2: "u2"}[code])
    p = tmp_path / "img.ser"
    raw = _write_ser(p, frames, version=version, code=code)
    assert struct.unpack("<i", raw[14:18])[0] == n  # TotalNumberElements at byte 14
    m = read_micrograph(p)
    assert m.format == "ser" and m.data.shape == ((12, 20) if n == 1 else (n, 12, 20))
    top_down = frames[:, ::-1]  # TIA writes rows bottom-up
    np.testing.assert_array_equal(m.data, top_down[0] if n == 1 else top_down)
    assert m.pixel_size_A == pytest.approx(0.25) and "CalibrationDeltaX" in m.pixel_size_source
    assert m.metadata["ser"]["version"] == f"0x{version:04x}"


def test_ser_bad_files(tmp_path):
    p = tmp_path / "a.ser"
    raw = _write_ser(p, np.ones((1, 8, 8)))
    (tmp_path / "cut.ser").write_bytes(raw[:-20])
    with pytest.raises(InputError, match=r"cut.ser: truncated SER file: the data of element 0"):
        read_micrograph(tmp_path / "cut.ser")
    at = len(raw) - 6 - 8 * 8 * 4 - 10  # the element's DataType (i2) after 40 bytes of calibration
    (tmp_path / "code.ser").write_bytes(raw[:at] + struct.pack("<h", 42) + raw[at + 2:])
    with pytest.raises(InputError, match=rf"code.ser: unknown SER data type code 42 in element 0 at "
                                         rf"byte {at}"):
        read_micrograph(tmp_path / "code.ser")
    spec = bytearray(raw)
    spec[6:10] = struct.pack("<i", 0x4120)
    (tmp_path / "spec.ser").write_bytes(bytes(spec))
    with pytest.raises(InputError, match=r"spec.ser: not a micrograph: the SER file holds 1D spectra"):
        read_micrograph(tmp_path / "spec.ser")


# ----------------------------------------------------------------------------- MRC writer

def _write_mrc(p: Path, arr: np.ndarray, *, px: float = 1.25, mode: int = 2, big: bool = False,
               nsymbt: int = 0, stamp: bool = True) -> bytes:
    e = ">" if big else "<"
    a = arr if arr.ndim == 3 else arr[None]
    nz, ny, nx = a.shape
    h = np.zeros(256, e + "i4")
    fl = h.view(e + "f4")
    h[0:4] = nx, ny, nz, mode
    h[7:10] = nx, ny, nz
    fl[10:13] = nx * px, ny * px, nz * px
    fl[13:16] = 90.0
    h[16:19] = 1, 2, 3
    h[23] = nsymbt
    h[55] = 1
    b = bytearray(h.tobytes())
    if stamp:
        b[208:212] = b"MAP "
        b[212:214] = b"\x11\x11" if big else b"\x44\x44"
    b[224:224 + 10] = b"matterflow"
    dt = {0: "i1", 1: "i2", 2: "f4", 6: "u2"}[mode]
    raw = bytes(b) + b"\0" * nsymbt + a.astype(e + dt).tobytes()
    p.write_bytes(raw)
    return raw


@pytest.mark.parametrize("mode,big,shape,stamp", [(2, False, (16, 24), True), (1, True, (3, 8, 10), True),
                                                  (6, False, (9, 7), False), (0, True, (5, 6), True)])
def test_mrc_round_trip(tmp_path, mode, big, shape, stamp):
    rng = np.random.default_rng(2)
    arr = (rng.random(shape) * 100).astype({0: "i1", 1: "i2", 2: "f4", 6: "u2"}[mode])
    p = tmp_path / "a.mrcs"
    raw = _write_mrc(p, arr, mode=mode, big=big, nsymbt=0 if stamp else 64, stamp=stamp)
    assert struct.unpack((">" if big else "<") + "i", raw[12:16])[0] == mode  # MODE, word 4
    m = read_micrograph(p)
    assert m.format == "mrc" and m.data.shape == shape
    np.testing.assert_array_equal(m.data, arr)
    assert m.pixel_size_A == pytest.approx(1.25) and m.pixel_size_source.startswith("MRC header cella.x / mx")
    assert m.metadata["mrc"]["labels"] == ["matterflow"]


def test_mrc_imod_unsigned_bytes(tmp_path):
    arr = np.arange(200, 240, dtype=np.uint8).reshape(5, 8)
    raw = bytearray(_write_mrc(tmp_path / "a.mrc", arr.view(np.int8), mode=0))
    raw[152:160] = struct.pack("<ii", 1146047817, 0)  # IMOD stamp, flags without 'signed'
    (tmp_path / "imod.mrc").write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_micrograph(tmp_path / "imod.mrc").data, arr)
    assert read_micrograph(tmp_path / "a.mrc").data.dtype == np.int8  # MRC2014: signed


def test_mrc_bad_files(tmp_path):
    raw = _write_mrc(tmp_path / "a.mrc", np.ones((8, 8), np.float32))
    (tmp_path / "cut.mrc").write_bytes(raw[:-4])
    with pytest.raises(InputError, match=r"cut.mrc: truncated MRC file: 8×8×1 values of mode 2 need "
                                         r"256 bytes from byte 1024, the file has 1276"):
        read_micrograph(tmp_path / "cut.mrc")
    b = bytearray(raw)
    b[12:16] = struct.pack("<i", 3)
    (tmp_path / "m3.mrc").write_bytes(bytes(b))
    with pytest.raises(InputError, match=r"m3.mrc: MRC mode 3 is not read"):
        read_micrograph(tmp_path / "m3.mrc")
    (tmp_path / "short.mrc").write_bytes(raw[:100])
    with pytest.raises(InputError, match=r"short.mrc: not a valid \.mrc file"):
        read_micrograph(tmp_path / "short.mrc")


# ----------------------------------------------------------------------------- EMD writers

def _write_berkeley(p: Path, arr: np.ndarray, *, step: float = 0.02, units: str = "[n_m]",
                    frames_axis: int | None = None) -> None:
    import h5py

    with h5py.File(p, "w") as f:
        f.attrs["version_major"], f.attrs["version_minor"] = 0, 2
        g = f.create_group("data/image")
        g.attrs["emd_group_type"] = 1
        g["data"] = arr
        for k, n in enumerate(arr.shape):
            if k == frames_axis:
                d, u, name = np.arange(n, dtype=float), "[s]", "time"
            else:
                d, u, name = np.arange(n) * step, units, "xy"[k % 2]
            ds = g.create_dataset(f"dim{k + 1}", data=d)
            ds.attrs["name"], ds.attrs["units"] = name, u


def _write_velox(p: Path, arr: np.ndarray, width: str = "1.5e-10") -> None:
    import h5py

    a = arr if arr.ndim == 3 else arr[..., None]
    meta = json.dumps({"BinaryResult": {"PixelSize": {"width": width, "height": width},
                                        "PixelUnitX": "m", "PixelUnitY": "m",
                                        "Detector": "HAADF"},
                       "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
                       "Stage": {}, "Optics": {}}).encode()
    with h5py.File(p, "w") as f:
        g = f.create_group("Data/Image/6fdbde41")
        g["Data"] = a
        md = np.zeros((len(meta) + 10, a.shape[-1]), np.uint8)
        md[:len(meta), :] = np.frombuffer(meta, np.uint8)[:, None]
        g["Metadata"] = md
        f.create_group("Data/Image/small")["Data"] = np.zeros((4, 4, 1), np.uint16)


def test_emd_berkeley_and_velox(tmp_path):
    rng = np.random.default_rng(3)
    arr = rng.random((16, 24)).astype(np.float32)
    _write_berkeley(tmp_path / "b.emd", arr)
    m = read_micrograph(tmp_path / "b.emd")
    assert m.format == "emd-berkeley" and m.pixel_size_A == pytest.approx(0.2)
    assert m.pixel_size_source.startswith("Berkeley EMD data/image/dim2 spacing")
    np.testing.assert_array_equal(m.data, arr)
    stack = rng.random((16, 24, 5)).astype(np.float32)
    _write_berkeley(tmp_path / "s.emd", stack, frames_axis=2, units="[A]", step=0.5)
    m = read_micrograph(tmp_path / "s.emd")
    assert m.data.shape == (5, 16, 24) and m.pixel_size_A == pytest.approx(0.5)
    np.testing.assert_array_equal(m.data[2], stack[..., 2])
    vel = (rng.random((3, 20, 12)) * 1000).astype(np.uint16)
    _write_velox(tmp_path / "v.emd", np.moveaxis(vel, 0, -1))
    m = read_micrograph(tmp_path / "v.emd")
    assert m.format == "emd-velox" and m.data.shape == (3, 20, 12)
    np.testing.assert_array_equal(m.data, vel)
    assert m.pixel_size_A == pytest.approx(1.5) and "PixelSize.width" in m.pixel_size_source
    assert m.metadata["velox"]["BinaryResult"]["Detector"] == "HAADF"
    import h5py

    with h5py.File(tmp_path / "none.emd", "w") as f:
        f.create_group("nothing")
    with pytest.raises(InputError, match="none.emd: no image found in the EMD file"):
        read_micrograph(tmp_path / "none.emd")


# ----------------------------------------------------------------------------- TIFF, PNG, NPY

def test_tiff_pixel_size_sources(tmp_path):
    import tifffile

    img = np.arange(64, dtype=np.uint16).reshape(8, 8)
    cases = {
        "ours.tif": ({"description": json.dumps({"pixel_size_A": 0.1})}, 0.1, "JSON pixel_size_A"),
        "fei.tif": ({"extratags": [(34682, "s", 0, "[Scan]\nPixelWidth=2.5e-09\n", True)]}, 25.0,
                    "TIFF FEI_HELIOS tag [Scan] PixelWidth (m)"),
        "sfeg.tif": ({"extratags": [(34680, "s", 0, "[User]\r\nDate=01/01/2020\r\n[Scan]\r\n"
                                     "PixelWidth=1.25e-08\r\n", True)]}, 125.0,
                     "TIFF FEI_SFEG tag [Scan] PixelWidth (m)"),
        "zeiss.tif": ({"extratags": [(34118, "s", 0, "AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = "
                                     "4.2 nm\r\n", True)]}, 42.0, "CZ_SEM tag ap_image_pixel_size"),
        "ij.tif": ({"imagej": True, "resolution": (2.0, 2.0), "metadata": {"unit": "um"}}, 5000.0,
                   "ImageJ unit 'um'"),
        "dpi.tif": ({"resolution": (72.0, 72.0)}, None, None),
    }
    for name, (kw, px, src) in cases.items():
        tifffile.imwrite(tmp_path / name, img, **kw)
        m = read_micrograph(tmp_path / name)
        np.testing.assert_array_equal(m.data, img)
        assert m.format == "tiff"
        if px is None:
            assert m.pixel_size_A is None, name
        else:
            assert m.pixel_size_A == pytest.approx(px), name
            assert src in m.pixel_size_source, (name, m.pixel_size_source)
    stack = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # not RGB planes
    assert read_micrograph(tmp_path / "stack.tif").data.shape == (3, 8, 8)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 30
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    m = read_micrograph(tmp_path / "rgb.tif")
    assert m.data.shape == (8, 8) and np.allclose(m.data, 10.0)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="bad.tif: cannot read the tiff file"):
        read_micrograph(tmp_path / "bad.tif")


def test_png_jpeg_npy_and_pickles(tmp_path):
    from PIL import Image

    img = (np.arange(12 * 16) % 251).astype(np.uint8).reshape(12, 16)
    Image.fromarray(img).save(tmp_path / "a.png")
    m = read_micrograph(tmp_path / "a.png")
    assert m.format == "png" and m.pixel_size_A is None
    np.testing.assert_array_equal(m.data, img)
    deep = (np.arange(12 * 16, dtype=np.uint16) * 300).reshape(12, 16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    m = read_micrograph(tmp_path / "deep.png")
    assert m.data.dtype == np.uint16
    np.testing.assert_array_equal(m.data, deep)
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[..., 1] = 90
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.allclose(read_micrograph(tmp_path / "rgb.png").data, 30.0)
    Image.fromarray(np.full((12, 16), 100, np.uint8)).save(tmp_path / "a.jpg", quality=95)
    m = read_micrograph(tmp_path / "a.jpg")
    assert m.format == "jpeg" and m.data.shape == (12, 16) and abs(int(m.data[5, 5]) - 100) <= 2
    np.save(tmp_path / "a.npy", img.astype(np.float64))
    assert read_micrograph(tmp_path / "a.npy", pixel_size=0.3).pixel_size_A == 0.3
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy: the .npy file holds Python objects; pickled"):
        read_micrograph(tmp_path / "obj.npy")
    np.save(tmp_path / "v.npy", np.ones(5))
    with pytest.raises(InputError, match=r"v.npy: not a micrograph: data of shape \(5,\)"):
        read_micrograph(tmp_path / "v.npy")
    (tmp_path / "x.bmp").write_bytes(b"BM\0\0")
    with pytest.raises(InputError, match=r"x.bmp: unknown micrograph format .*accepted: \.tif"):
        read_micrograph(tmp_path / "x.bmp")
    with pytest.raises(InputError, match="missing.dm4: image file not found"):
        read_micrograph(tmp_path / "missing.dm4")
    with pytest.raises(InputError, match="positive number of Å; got -1"):
        read_micrograph(tmp_path / "a.npy", pixel_size=-1)
    # the content decides, not the suffix
    np.save(tmp_path / "n.npy", img)
    (tmp_path / "n.npy").rename(tmp_path / "n.tif")
    m = read_micrograph(tmp_path / "n.tif")
    assert m.format == "npy" and "suffix_mismatch" in m.metadata


def test_length_units():
    assert length_to_angstrom(1, "nm") == 10.0 and length_to_angstrom(1, "[n_m]") == 10.0
    assert length_to_angstrom(2, "micron") == 2e4 and length_to_angstrom(1, "\u212b") == 1.0
    assert length_to_angstrom(1, "1/nm") is None and length_to_angstrom(1, "") is None


def test_module_main_prints_a_summary(tmp_path, capsys):
    from matterflow.microscopy.imageio import _main

    _write_dm(tmp_path / "a.dm4", np.ones((8, 8), np.float32), version=4)
    assert _main([str(tmp_path / "a.dm4")]) == 0
    out = capsys.readouterr().out
    assert "dm4, 8×8 float32" in out and "0.5 Å from DM4 tag" in out
    assert _main([str(tmp_path / "none.dm4")]) == 2


# ----------------------------------------------------------------------------- references

_needs_ref = pytest.mark.skipif(not REF_PY.exists(), reason="reference venv /work/refvenvs/ncempy absent")
_REF_CASES = [("dm3", 1), ("dm4", 1), ("dm4", 3), ("ser", 1), ("ser", 3), ("mrc", 1), ("mrc", 3),
              ("emd", 1), ("velox", 3)]


def _ref_case(d: Path, kind: str, n: int) -> tuple[Path, np.ndarray]:
    arr = (np.random.default_rng(4).random((n, 24, 40)) * 1000).astype(np.float32)
    p = d / f"{kind}{n}.{'emd' if kind == 'velox' else kind}"
    if kind.startswith("dm"):
        _write_dm(p, arr if n > 1 else arr[0], version=int(kind[2]), exotic=False)
    elif kind == "ser":
        _write_ser(p, arr, code=7)
    elif kind == "mrc":
        _write_mrc(p, arr)
    elif kind == "velox":
        _write_velox(p, np.moveaxis(arr, 0, -1))
    else:
        _write_berkeley(p, arr[0])
    return p, arr


@pytest.fixture(scope="module")
def ncempy_reads(tmp_path_factory):
    """ncempy's reading of every reference case, in one subprocess: {path: (data, info)}."""
    d = tmp_path_factory.mktemp("ref")
    paths = [_ref_case(d, k, n)[0] for k, n in _REF_CASES]
    code = ("import sys, json, numpy as np, ncempy.io as nio\n"
            "for f in sys.argv[1:]:\n"
            "    r = nio.read(f)\n"
            "    np.save(f + '.npy', np.asarray(r['data']))\n"
            "    print(json.dumps({'file': f, 'pixelSize': [float(x) for x in r['pixelSize']], "
            "'pixelUnit': [str(u) for u in r['pixelUnit']]}))\n")
    r = subprocess.run([str(REF_PY), "-c", code, *map(str, paths)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    infos = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return {Path(i["file"]).name: (np.load(i["file"] + ".npy", allow_pickle=False), i, Path(i["file"]))
            for i in infos}


@_needs_ref
@pytest.mark.parametrize("kind,n", _REF_CASES)
def test_ncempy_reads_the_same_files(ncempy_reads, kind, n):
    """ncempy (no big-endian DM) gives the same pixels, orientation and pixel size."""
    ref, info, p = ncempy_reads[f"{kind}{n}.{'emd' if kind == 'velox' else kind}"]
    m = read_micrograph(p)
    if kind == "velox":  # ncempy keeps Velox's (h, w, frames)
        ref = np.moveaxis(ref, -1, 0)
    if kind == "mrc" and n == 1:  # ncempy keeps the section axis of a single image
        ref = ref[0]
    assert ref.shape == m.data.shape
    np.testing.assert_array_equal(ref, m.data)
    ref_px = length_to_angstrom(info["pixelSize"][-1], info["pixelUnit"][-1])
    if kind == "ser":  # ncempy gives TIA's SI metres
        ref_px = info["pixelSize"][-1] * 1e10
    assert ref_px == pytest.approx(m.pixel_size_A, rel=1e-6), info


@_needs_ref
def test_mrcfile_written_file(tmp_path):
    arr = np.arange(2 * 10 * 14, dtype=np.int16).reshape(2, 10, 14)
    code = ("import sys, numpy as np, mrcfile\n"
            "a = np.arange(2 * 10 * 14, dtype=np.int16).reshape(2, 10, 14)\n"
            "with mrcfile.new(sys.argv[1]) as m:\n"
            "    m.set_data(a); m.voxel_size = 0.8\n")
    p = tmp_path / "ref.mrc"
    r = subprocess.run([str(REF_PY), "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    if r.returncode and "No module named 'mrcfile'" in r.stderr:
        pytest.skip("mrcfile not in the reference venv")
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_micrograph(p)
    np.testing.assert_array_equal(m.data, arr)
    assert m.pixel_size_A == pytest.approx(0.8)


# ----------------------------------------------------------------------------- hrtem and sem use it

def test_hrtem_read_image_and_match_take_dm_ser_mrc(tmp_path):
    from typer.testing import CliRunner

    from matterflow.microscopy.hrtem.cli import app, read_image

    img = np.random.default_rng(5).random((200, 200)).astype(np.float32)
    _write_dm(tmp_path / "a.dm4", img, version=4, scale=0.01)  # 0.01 nm = 0.1 Å
    got, px = read_image(tmp_path / "a.dm4", None)
    np.testing.assert_array_equal(got, img)
    assert px == pytest.approx(0.1)
    assert read_image(tmp_path / "a.dm4", 0.2)[1] == 0.2  # --pixel-size overrides the file's
    _write_ser(tmp_path / "s.ser", np.stack([img, img]))
    with pytest.raises(InputError, match=r"s.ser: a stack of 2 frames .*`hrtem` matches one image"):
        read_image(tmp_path / "s.ser", None)
    _write_mrc(tmp_path / "c.mrc", img, px=0.125)
    assert read_image(tmp_path / "c.mrc", None)[1] == pytest.approx(0.125)
    _write_dm(tmp_path / "raw.dm3", img, units="")  # uncalibrated: the CLI reads it, then asks
    r = CliRunner().invoke(app, ["match", str(tmp_path / "raw.dm3"), "--budget", "8"])
    assert r.exit_code == 2 and "pixel size unknown" in r.output, r.output
    r = CliRunner().invoke(app, ["match", str(tmp_path / "missing.emd"), "--budget", "8"])
    assert r.exit_code == 2 and "missing.emd: image file not found" in r.output


@pytest.mark.parametrize("kind", ["dm3", "ser", "mrc", "emd"])
def test_sem_read_image_gives_nm(tmp_path, kind):
    from matterflow.microscopy.sem.io import read_image

    arr = np.random.default_rng(6).random((16, 16)).astype(np.float32) + 1
    p = tmp_path / f"scan.{kind}"
    if kind == "dm3":
        _write_dm(p, arr, scale=2.5, units="nm")
    elif kind == "ser":
        _write_ser(p, arr[None], code=7, delta=2.5e-9)
    elif kind == "mrc":
        _write_mrc(p, arr, px=25.0)
    else:
        _write_velox(p, arr, width="2.5e-9")
    img, size = read_image(p)
    assert img.shape == (16, 16) and size == pytest.approx(2.5)
    assert np.percentile(img, 99.5) == pytest.approx(0.8, rel=1e-5)
    assert read_image(p, pixel_size_nm=3.0)[1] == 3.0


def test_sem_upscale_cli_reads_a_dm4_scan(tmp_path):
    from typer.testing import CliRunner

    from matterflow.cli import app
    from matterflow.core.store import read_results
    from matterflow.microscopy.sem.models import TrainConfig, save_checkpoint, train
    from matterflow.microscopy.sem.synthetic import synthetic_set

    tr = synthetic_set(["grains"], 1, (64, 64), seed=1)
    m, _ = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=2, channels=4, patch_lr=8))
    save_checkpoint(tmp_path / "m.pt", m)
    _write_dm(tmp_path / "fast.dm4", tr.fast[0].astype(np.float32), version=4, scale=4.0)
    res = CliRunner().invoke(app, ["sem", "upscale", str(tmp_path / "fast.dm4"), "--model",
                                   str(tmp_path / "m.pt"), "-o", str(tmp_path / "u"), "-q"])
    assert res.exit_code == 0, res.output
    r = read_results(tmp_path / "u" / "results.h5")
    assert r["upscale"]["sr"].shape == (1, 64, 64)


def test_damaged_files_give_our_errors_only(tmp_path):
    """Truncations and flipped bytes of DM3/DM4/SER/MRC files: each read either succeeds or
    raises an InputError from the format's own checks (no library error, no huge allocation)."""
    rng = np.random.default_rng(7)
    arr = (rng.random((3, 16, 12)) * 100).astype(np.float32)
    raws = {"dm3": _write_dm(tmp_path / "a.dm3", arr[0]),
            "dm4": _write_dm(tmp_path / "a.dm4", arr, version=4, little=False),
            "ser": _write_ser(tmp_path / "a.ser", arr, version=0x0220, code=7),
            "mrc": _write_mrc(tmp_path / "a.mrc", arr)}
    generic = []
    for kind, raw in raws.items():
        cuts = [(raw[:n], f"cut {n}") for n in rng.integers(1, len(raw), 25)]
        flips = []
        for _ in range(60):
            b = bytearray(raw)
            i = int(rng.integers(0, min(len(raw), 1500)))
            b[i] = int(rng.integers(0, 256))
            flips.append((bytes(b), f"byte {i}"))
        for data, what in cuts + flips:
            p = tmp_path / f"x.{kind}"
            p.write_bytes(data)
            try:
                read_micrograph(p)
            except InputError as exc:
                assert "x." + kind in str(exc)
                if "cannot read the" in str(exc):
                    generic.append((kind, what, str(exc)))
    assert not generic, "\n".join(f"{k} {w}: {e.split(chr(47))[-1]}" for k, w, e in generic[:8])


@_needs_ref
def test_ncempy_written_berkeley_emd(tmp_path):
    """A Berkeley EMD written by ncempy (its own writer, not ours) reads with its pixel size."""
    code = ("import sys, numpy as np, ncempy.io.emd as emd\n"
            "a = np.arange(12 * 20, dtype=np.float32).reshape(12, 20)\n"
            "dims = emd.defaultDims(a, pixel_size=(0.04, 0.04), pixel_unit=('nm', 'nm'))\n"
            "with emd.fileEMD(sys.argv[1], readonly=False) as f:\n"
            "    f.put_emdgroup('img', a, dims)\n")
    p = tmp_path / "ref.emd"
    r = subprocess.run([str(REF_PY), "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_micrograph(p)
    assert m.format == "emd-berkeley"
    np.testing.assert_array_equal(m.data, np.arange(12 * 20, dtype=np.float32).reshape(12, 20))
    assert m.pixel_size_A == pytest.approx(0.4)
