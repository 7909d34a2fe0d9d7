"""The shared command-line helpers of clitools: KEY=VALUE, figures, result files, bounds."""

from typing import Annotated

import h5py
import matplotlib
import pytest
import typer
from pydantic import Field, ValidationError
from typer.testing import CliRunner

matplotlib.use("Agg")

from matterflow.clitools import (  # noqa: E402
    FIGURE_DPI,
    param_option,
    parse_key_values,
    save_figures,
    write_result_file,
)
from matterflow.core.errors import InputError  # noqa: E402
from matterflow.core.registry import Params  # noqa: E402
from matterflow.core.store import Results  # noqa: E402


def test_key_values_repeated_and_comma_separated():
    assert parse_key_values(["a = x", "b=y=z"], "--map") == {"a": "x", "b": "y=z"}
    assert parse_key_values("Al=0.5, Cu=0.7,", "--radius", convert=float, commas=True) == {
        "Al": 0.5, "Cu": 0.7}
    assert parse_key_values(None, "--map") == {}
    with pytest.raises(InputError, match=r"--offset 'DL0': expected NAME=TARGET, e\.g\. X=Y"):
        parse_key_values(["DL0"], "--offset", key="NAME", value="TARGET", example="X=Y")
    with pytest.raises(InputError, match=r"--radius 'Al=big': expected SPECIES=VALUE pairs"):
        parse_key_values("Al=big", "--radius", key="SPECIES", convert=float, commas=True)
    with pytest.raises(InputError, match="--map '=x'"):
        parse_key_values(["=x"], "--map")


def _figs(n):
    import matplotlib.pyplot as plt

    out = {}
    for i in range(n):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], [i, 1])
        out[f"Figure {i}: a/b"] = fig
    return out


def test_one_naming_rule_and_dpi(tmp_path):
    paths = save_figures(_figs(2), tmp_path / "figs")
    assert [p.name for p in paths] == ["00_Figure_0__a_b.png", "01_Figure_1__a_b.png"]
    paths = save_figures(_figs(3), stem=tmp_path / "chain")
    assert [p.name for p in paths] == ["chain.png", "chain-1.png", "chain-2.png"]
    from PIL import Image

    with Image.open(paths[0]) as im:     # 2 x 1 inches at FIGURE_DPI
        assert im.size == (2 * FIGURE_DPI, FIGURE_DPI)
    with pytest.raises(TypeError):
        save_figures(_figs(1), tmp_path, stem=tmp_path / "x")


def test_result_file_has_units_and_provenance(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("abc")
    path = write_result_file(tmp_path / "out" / "r.h5", ({"t": [1.0, 2.0]}, {"t": "K"}),
                             inputs={"data": src}, parameters={"n": 3}, model="m.pt")
    with h5py.File(path, "r") as f:
        assert f["t"].attrs["units"] == "K"
    prov = Results(path).provenance
    # sha256 of b"abc", computed by hand (FIPS 180-2 example)
    assert prov["input_checksums"] == {
        "data": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert prov["parameters"] == {"n": 3} and prov["model"] == "m.pt"
    assert prov["status"] == "complete" and "matterflow_version" in prov


class _P(Params):
    frac: float = Field(0.9, gt=0.5, lt=1.0, description="a fraction")
    count: int = Field(5, ge=2, le=20, description="a count", json_schema_extra={"units": "s"})


@pytest.mark.parametrize("value", ["0.5", "0.50001", "0.99", "0.995", "1.0", "2"])
def test_strict_bounds_match_the_params(value):
    app = typer.Typer()

    @app.command()
    def cmd(frac: Annotated[float, param_option(_P, "frac")] = 0.9) -> None:
        print("ok", frac)

    r = CliRunner().invoke(app, ["--frac", value])
    try:
        _P(frac=float(value))
        accepted = True
    except ValidationError:
        accepted = False
    assert (r.exit_code == 0) is accepted, r.output
    if not accepted:
        assert r.exit_code == 2 and "0.5<x<1.0" in r.output


@pytest.mark.parametrize("value", ["1", "2", "20", "21"])
def test_inclusive_bounds_match_the_params(value):
    app = typer.Typer()

    @app.command()
    def cmd(count: Annotated[int, param_option(_P, "count")] = 5) -> None:
        print("ok", count)

    r = CliRunner().invoke(app, ["--count", value])
    accepted = 2 <= int(value) <= 20
    assert (r.exit_code == 0) is accepted and (r.exit_code in (0, 2))
    help_text = CliRunner().invoke(app, ["--help"]).output
    assert "a count (s)." in help_text


def test_basis_evaluate_coverage_is_the_tasks_range():
    """The issue's example: `basis evaluate --coverage` accepted [0.5, 0.99], the task (0.5, 1)."""
    from matterflow.basis.params import EvaluateParams
    from matterflow.cli import app

    r = CliRunner().invoke(app, ["basis", "evaluate", "--coverage", "0.5"])
    assert r.exit_code == 2 and "0.5<x<1.0" in r.output
    with pytest.raises(ValidationError):
        EvaluateParams(coverage=0.5)
    EvaluateParams(coverage=0.995)                   # the CLI refused this one before
    cmd = typer.main.get_command(app).commands["basis"].commands["evaluate"]
    opt = next(p for p in cmd.params if p.name == "coverage")
    assert opt.process_value(typer.Context(cmd), 0.995) == 0.995
