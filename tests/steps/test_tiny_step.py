"""The tiny step of docs/steps.md, its code read from that page, joins as an installed plugin and runs through the
real runner on a real project: it takes its input by the kinds of data it needs, and says so in its --help."""

from __future__ import annotations

import re
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from tomoprep.cli.main import build_app
from tomoprep.errors import StepError
from tomoprep.execution import run_step
from tomoprep.project import init_project
from tomoprep.steps import get_step

STEPS_DOC = Path(__file__).parents[2] / "docs" / "steps.md"
ANGLES_DEG = (-6.0, -3.0, 0.0, 3.0, 6.0)


def _example_code() -> str:
    """The first Python block after the heading of the worked example."""
    text = STEPS_DOC.read_text(encoding="utf-8")
    example = text[text.index("## A worked example") :]
    match = re.search(r"```python\n(.*?)```", example, re.DOTALL)
    assert match is not None, f"{STEPS_DOC} has no Python block in its worked example"
    return match.group(1)


def _stack(folder: Path) -> Path:
    """A small MRC tilt stack with its .rawtlt, of noise (a cleaning draws it)."""
    folder.mkdir()
    stack = folder / "TS_A.mrc"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(10.0, 1.0, (len(ANGLES_DEG), 32, 32)).astype(np.float32))
        mrc.voxel_size = 2.5
    (folder / "TS_A.rawtlt").write_text("".join(f"{a}\n" for a in ANGLES_DEG))
    return stack


def test_the_documented_tiny_step_takes_the_newest_run_holding_what_it_needs(
    tmp_path: Path, install_plugin_steps
) -> None:
    install_plugin_steps({"tlt": "tomoprep_tlt_step:STEP"}, {"tomoprep_tlt_step.py": _example_code()})
    tlt = get_step("tlt")
    stack = _stack(tmp_path / "stacks")
    imported_params = {"stack": str(stack), "tilt_axis_angle_deg": 85.0, "dose_per_tilt_e_per_angstrom2": 3.0}
    with init_project(tmp_path / "project") as project:
        with pytest.raises(
            StepError, match=r"no successful run holds tilt-series metadata, exclusions \(there is none"
        ):
            run_step(project, tlt)
        assert run_step(project, get_step("import"), imported_params).status == "SUCCEEDED"
        cleaned = run_step(project, get_step("clean"), {"auto": False, "exclude": "TS_A:1"})
        assert cleaned.status == "SUCCEEDED", cleaned.error
        newer = run_step(project, get_step("import"), imported_params)  # newer, but holds no exclusions
        written = run_step(project, tlt, {"decimals": 1})
        assert written.status == "SUCCEEDED", written.error
        assert written.inputs == (cleaned.id,)
        tlt_file = project.run_dir(written) / "TS_A" / "TS_A.tlt"
        assert tlt_file.read_text() == "-6.0\n0.0\n3.0\n6.0\n"  # tilt 1 (-3°) excluded by the cleaning
        with pytest.raises(StepError) as refused:
            run_step(project, tlt, input_run=newer.id)
        assert "run 003_import holds tilt-series metadata, tilt images, but not exclusions, which step 'tlt' needs" in (
            str(refused.value)
        )
        assert "give a run that holds them (the newest: 004_tlt)" in str(refused.value)


def test_the_tiny_step_has_its_command_and_help(install_plugin_steps) -> None:
    install_plugin_steps({"tlt": "tomoprep_tlt_step:STEP"}, {"tomoprep_tlt_step.py": _example_code()})
    result = CliRunner().invoke(build_app("tlt"), ["tlt", "--help"], catch_exceptions=False)
    text = " ".join(result.output.replace("│", " ").split())  # the text without rich's box
    assert result.exit_code == 0, result.output
    assert "--decimals" in text and "Write the tilt angles of the included tilts" in text
    assert "default: the newest successful run that holds tilt-series metadata, exclusions" in text
