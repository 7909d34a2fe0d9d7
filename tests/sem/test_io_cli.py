"""sem input files and commands: clear errors naming the file or field, the CLI chain."""

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.core.errors import InputError
from matterflow.microscopy.sem.io import read_image

runner = CliRunner()


def _cli():
    from matterflow.cli import app

    return app


def test_corrupt_tiff_and_missing_pixel_size_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="corrupt.tif"):
        read_image(bad)
    good = tmp_path / "scan.npy"
    np.save(good, np.ones((8, 8)))
    with pytest.raises(InputError, match="scan.npy.*--pixel-size"):
        read_image(good, need_pixel_size=True)
    assert read_image(good, pixel_size_nm=3.0, need_pixel_size=True)[1] == 3.0


@pytest.mark.parametrize("name,content,match", [
    ("scan.dm3", b"\x00\x00\x00\x03", r"scan.dm3: truncated DM file: the root length needs 4 bytes "
                                       r"at byte 4"),
    ("scan.jpg", b"\xff\xd8", r"scan.jpg: not a valid \.jpg file"),
    ("scan.bmp", b"BM\0\0", r"scan.bmp: unknown micrograph format .*accepted: \.tif"),
    ("missing.tif", None, r"missing.tif: image file not found"),
])
def test_unsupported_or_missing_files(tmp_path, name, content, match):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_image(p)


def test_wrong_shapes_name_the_file(tmp_path):
    p = tmp_path / "cube.npy"
    np.save(p, np.ones((2, 3, 8, 8)))
    with pytest.raises(InputError, match=r"cube.npy: not a micrograph: data of shape \(2, 3, 8, 8\)"):
        read_image(p, stack=True)
    p2 = tmp_path / "frames.npy"
    np.save(p2, np.ones((3, 16, 16)))
    with pytest.raises(InputError, match="frames.npy: expected one 2D grey image; got 3 frames"):
        read_image(p2)
    assert read_image(p2, stack=True)[0].shape == (3, 16, 16)
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, np.ones((4, 4)))
    with pytest.raises(InputError, match="tiny.npy.*too small"):
        read_image(tiny)


def test_tiff_pixel_size_from_fei_and_zeiss_tags(tmp_path):
    import tifffile

    p = tmp_path / "fei.tif"
    tifffile.imwrite(p, np.ones((8, 8), np.uint8),
                     extratags=[(34682, "s", 0, "[Scan]\nPixelWidth=2.5e-09\n", True)])
    assert read_image(p)[1] == pytest.approx(2.5)
    z = tmp_path / "zeiss.tif"
    tifffile.imwrite(z, np.ones((8, 8), np.uint8),
                     extratags=[(34118, "s", 0, "AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 4.2 nm\r\n",
                                 True)])
    assert read_image(z)[1] == pytest.approx(4.2)


def test_velox_emd_image_and_pixel_size(tmp_path):
    import json

    import h5py

    p = tmp_path / "scan.emd"
    meta = json.dumps({"BinaryResult": {"PixelSize": {"width": "1.5e-9", "height": "1.5e-9"}}})
    with h5py.File(p, "w") as f:
        g = f.create_group("Data/Image/abc")
        g["Data"] = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16, 1)
        g["Metadata"] = np.frombuffer(meta.encode(), np.uint8)[:, None]
    img, size = read_image(p)
    assert img.shape == (16, 16) and size == pytest.approx(1.5)
    empty = tmp_path / "empty.emd"
    with h5py.File(empty, "w") as f:
        f.create_group("nothing")
    with pytest.raises(InputError, match="empty.emd: no image found"):
        read_image(empty)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from matterflow.microscopy.sem.models import TrainConfig, save_checkpoint, train
    from matterflow.microscopy.sem.synthetic import synthetic_set

    d = tmp_path_factory.mktemp("model")
    tr = synthetic_set(["grains"], 1, (64, 64), seed=1)
    m, _ = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=2, channels=4, patch_lr=8))
    save_checkpoint(d / "m.pt", m)
    np.save(d / "fast.npy", tr.fast[0])
    np.save(d / "fast2.npy", np.roll(tr.fast[0], 1, axis=1))
    return d


def test_upscale_cli_checks_scale_and_writes_results(tiny_model, tmp_path):
    from matterflow.core.store import read_results

    d = tiny_model
    res = runner.invoke(_cli(), ["sem", "upscale", str(d / "fast.npy"), "--model", str(d / "m.pt"),
                                 "--scale", "2", "-o", str(tmp_path / "u")])
    assert res.exit_code == 2 and "trained for ×4, not for --scale 2" in res.output
    res = runner.invoke(_cli(), ["sem", "upscale", str(d / "fast.npy"), "--model", str(d / "m.pt"),
                                 "-o", str(tmp_path / "u"), "-q"])
    assert res.exit_code == 0, res.output
    r = read_results(tmp_path / "u" / "results.h5")
    assert r["upscale"]["sr"].shape == (1, 64, 64)
    assert (tmp_path / "u" / "upscale.png").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    res = runner.invoke(_cli(), ["sem", "upscale", str(d / "fast.npy"), "--model", str(bad)])
    assert res.exit_code == 2 and "bad.pt: not a matterflow sem model" in res.output


def test_series_cli_empty_mismatched_and_run(tiny_model, tmp_path):
    d = tiny_model
    res = runner.invoke(_cli(), ["sem", "series", "--model", str(d / "m.pt")])
    assert res.exit_code == 2 and "series is empty" in res.output
    other = tmp_path / "other.npy"
    np.save(other, np.ones((32, 32)))
    res = runner.invoke(_cli(), ["sem", "series", str(d / "fast.npy"), str(other),
                                 "--model", str(d / "m.pt"), "-o", str(tmp_path / "s")])
    assert res.exit_code == 2 and "other.npy: frame of shape (32, 32)" in res.output
    res = runner.invoke(_cli(), ["sem", "series", str(d / "fast.npy"), str(d / "fast2.npy"),
                                 "--model", str(d / "m.pt"), "-o", str(tmp_path / "s"), "-q"])
    assert res.exit_code == 0, res.output
    from matterflow.core.store import read_results

    r = read_results(tmp_path / "s" / "results.h5")
    assert np.allclose(r["register"]["shifts_px"][1], [0, 1], atol=0.2)
    assert r["upscale"]["sr"].shape == (2, 64, 64)


def test_reference_pixel_size_mismatch_names_both(tiny_model):
    from matterflow.microscopy.sem.tasks import _check_reference

    class M:
        kind, scale = "ref", 4
    with pytest.raises(InputError, match="reference pixel size 5 nm must be the image's 10 nm / 4"):
        _check_reference(M(), np.zeros((8, 8)), 10.0, 5.0)
    with pytest.raises(InputError, match="needs input 'reference'"):
        _check_reference(M(), None, 10.0, None)


def test_simulate_bounds_come_from_params():
    res = runner.invoke(_cli(), ["sem", "simulate", "--n-images", "0"])
    assert res.exit_code == 2 and "n-images" in res.output
    res = runner.invoke(_cli(), ["sem", "simulate", "--family", "ferrite"])
    assert res.exit_code == 2 and "--family must be one of" in res.output


def test_plan_command_runs_the_demo_chain():
    import yaml

    from matterflow.core.domain import get_domain
    from matterflow.core.workflow import Workflow
    from matterflow.microscopy.sem.cli import demo_steps

    demo = yaml.safe_load(get_domain("sem").demo_paths()[0].read_text())
    steps = demo_steps()
    Workflow.from_steps(steps, name="sem-plan")  # validates
    assert [(s["id"], s["task"], s.get("params", {}), s.get("inputs", {})) for s in steps] == \
        [(s["id"], s["task"], s.get("params", {}), s.get("inputs", {})) for s in demo["steps"]]
