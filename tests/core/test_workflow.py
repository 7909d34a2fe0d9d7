"""Workflow files: every kind of bad input exits 2 with file, line, step and field."""

import re

import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.core.workflow import load_workflow, parse_workflow

GOOD = """\
name: ok
steps:
  - id: walks
    task: core.random_walks
    params: {n_walkers: 4, n_steps: 10}
  - id: msd
    task: core.mean_squared_displacement
    inputs: {walk: walks.positions_nm}
    params: {max_lag: 3}
"""

BAD = {
    "malformed YAML": ("steps:\n  - id: a\n    task: [unclosed\n", 4, "not valid YAML"),
    "not a mapping": ("- just\n- a list\n", 1, "must be a mapping"),
    "unknown task": (GOOD.replace("core.mean_squared_displacement", "core.mean_squared_displacment"),
                     7, "did you mean 'core.mean_squared_displacement'"),
    "missing field": ("steps:\n  - id: a\n    params: {}\n", 2, "steps[0] (id 'a').task: field required"),
    "wrong type": (GOOD.replace("n_walkers: 4", "n_walkers: four"), 5,
                   "steps[0] (id 'walks').params.n_walkers: input should be a valid integer"),
    "out of range": (GOOD.replace("n_walkers: 4", "n_walkers: -4"), 5,
                     "params.n_walkers: input should be greater than or equal to 1; got -4"),
    "unknown parameter": (GOOD.replace("max_lag: 3", "max_lagg: 3"), 9,
                          "params.max_lagg: unknown parameter; accepted: max_lag, dt_ps"),
    "missing step": (GOOD.replace("walks.positions_nm", "walk.positions_nm"), 8,
                     "'walk.positions_nm' is neither an output of a step"),
    "missing output": (GOOD.replace("walks.positions_nm", "walks.position"), 8,
                       "step 'walks' (core.random_walks) has no output 'position'"),
    "missing input": (GOOD.replace("    inputs: {walk: walks.positions_nm}\n", ""), 6,
                      "needs input 'walk'"),
    "unknown input": (GOOD.replace("{walk: walks.positions_nm}", "{walk: walks.positions_nm, x: walks.time_ps}"),
                      8, "has no input 'x'; accepted: walk"),
    "duplicate id": (GOOD.replace("id: msd", "id: walks"), 6, "duplicate step id 'walks'"),
    "missing file": (GOOD.replace("walks.positions_nm", "data/frames.h5"), 8,
                     "input file 'data/frames.h5' not found"),
    "cycle": ("steps:\n  - id: a\n    task: core.fit_diffusion\n    inputs: {msd: b.msd_nm2, lag: b.lag_ps}\n"
              "  - id: b\n    task: core.mean_squared_displacement\n    inputs: {walk: a.lag_ps}\n",
              4, "steps form a cycle"),
    "batch_size on unmapped task": (GOOD.replace("    params: {n_walkers: 4, n_steps: 10}",
                                                 "    params: {n_walkers: 4, n_steps: 10}\n    batch_size: 3"),
                                    6, "does not map over items"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_workflow_names_file_line_and_field(case, tmp_path):
    text, line, message = BAD[case]
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_workflow(path)
    msg = str(info.value)
    assert f"flow.yaml:{line}:" in msg, msg
    assert message in msg, msg


@pytest.mark.parametrize("case", ["malformed YAML", "unknown task", "cycle", "missing step"])
def test_cli_exits_2_without_traceback(case, tmp_path):
    text, line, message = BAD[case]
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    out = result.output + (result.stderr if hasattr(result, "stderr") else "")
    assert re.search(rf"flow.yaml:{line}:", out) and "Traceback" not in out
    assert not (tmp_path / "o" / "results.h5").exists()  # nothing ran


def test_good_workflow_is_ordered_by_dependencies(tmp_path):
    text = GOOD.replace("steps:\n", "steps:\n  - id: fit\n    task: core.fit_diffusion\n"
                        "    inputs: {msd: msd.msd_nm2, lag: msd.lag_ps}\n")
    wf = parse_workflow(text, base_dir=tmp_path)
    assert [s.id for s in wf.steps] == ["walks", "msd", "fit"]
    assert wf.step("msd").params.max_lag == 3
    assert wf.step("fit").depends_on == {"msd"}
