"""The command line: generated step options, project commands, resume, and error output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from tomoprep.cli.docs import step_reference
from tomoprep.cli.main import build_app
from tomoprep.cli.params import option_name
from tomoprep.project import open_project
from tomoprep.steps import BUILTIN_STEP_MODULES, get_step
from tomoprep.steps.import_.params import ImportParams

DOCS = Path(__file__).parents[2] / "docs" / "reference"


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


def test_every_import_parameter_is_an_option_with_its_description() -> None:
    result = CliRunner().invoke(build_app(), ["import", "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0
    flat = " ".join(result.output.replace("│", " ").split())
    for name, field in ImportParams.model_fields.items():
        assert option_name(name) in flat, name
        assert " ".join((field.description or "").split())[:40] in flat, name


def test_invalid_choice_is_refused_before_anything_runs(tmp_path: Path) -> None:
    invoke("init", str(tmp_path / "p"))
    result = CliRunner().invoke(
        build_app(), ["import", "-p", str(tmp_path / "p"), "--stack", "x.st", "--gain-rotation-deg", "45"]
    )
    assert result.exit_code != 0 and "45" in result.output
    with open_project(tmp_path / "p") as project:
        assert project.list_runs() == []


def test_stack_import_and_status_through_the_cli(tmp_path: Path, real_data: Path) -> None:
    stack = tmp_path / "test_000.mrc"
    shutil.copy(real_data / "nist-etspy" / "test_000.mrc", stack)
    shutil.copy(real_data / "nist-etspy" / "test_000.mrc.mdoc", tmp_path / "test_000.mrc.mdoc")
    assert invoke("init", str(tmp_path / "p")).exit_code == 0
    result = invoke(
        "import",
        "-p",
        str(tmp_path / "p"),
        "--stack",
        str(stack),
        "--dose-per-tilt-e-per-angstrom2",
        "2",
        "--gain-rotation-deg",
        "90",
    )
    assert result.exit_code == 0, result.output
    assert "001_import" in result.output and "SUCCEEDED" in result.output
    status = invoke("status", "-p", str(tmp_path / "p"))
    assert "001_import" in status.output and "test_000" in status.output
    with open_project(tmp_path / "p") as project:
        run = project.get_run(1)
    assert run.params["gain_rotation_deg"] == 90 and run.params["dose_per_tilt_e_per_angstrom2"] == 2.0


def test_resume_retries_failed_units_once_the_input_is_fixed(tmp_path: Path, real_data: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ("TS_A", "TS_B"):  # plain MRC stacks: no extended header with tilt angles
        with mrcfile.new(stacks / f"{name}.mrc") as mrc:
            mrc.set_data(np.zeros((2, 16, 16), dtype=np.float32))
            mrc.voxel_size = 2.5
    (stacks / "TS_A.rawtlt").write_text("-3\n3\n")
    invoke("init", str(tmp_path / "p"))
    first = CliRunner().invoke(
        build_app(),
        [
            "import",
            "-p",
            str(tmp_path / "p"),
            "--stack",
            str(stacks / "*.mrc"),
            "--tilt-axis-angle-deg",
            "85",
            "--dose-per-tilt-e-per-angstrom2",
            "3",
        ],
    )
    assert "TS_B failed" in first.output and "--tilt-angles" in first.output
    (stacks / "TS_B.rawtlt").write_text("-3\n3\n")
    resumed = invoke("run", "--resume", "1", "-p", str(tmp_path / "p"))
    assert resumed.exit_code == 0, resumed.output
    with open_project(tmp_path / "p") as project:
        run = project.get_run(1)
    assert run.status == "SUCCEEDED" and run.error is None
    assert {u.status for u in run.units.values()} == {"SUCCEEDED"}


def test_console_script_prints_one_clear_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tomoprep.cli", "status", "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "is not a tomoprep project" in done.stdout and "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("step_name", list(BUILTIN_STEP_MODULES))
def test_reference_docs_match_the_params(step_name: str) -> None:
    """docs/reference is generated: `python -m tomoprep.cli.docs docs/reference` refreshes it."""
    assert (DOCS / f"{step_name}.md").read_text(encoding="utf-8") == step_reference(get_step(step_name))


def test_a_command_loads_only_the_step_it_runs() -> None:
    """``tomoprep import`` loads only the import step's record, ``status`` no step, and the console script with no
    command every step's record; none of them loads the work of a step (torch)."""
    probe = (
        "import sys; from tomoprep.cli.main import build_app; build_app({!r}); "
        "print(sorted(m for m in ('torch', 'tomoprep.steps.align.series', 'tomoprep.steps.align', "
        "'tomoprep.steps.import_') if m in sys.modules))"
    )
    loaded = {
        command: subprocess.run(
            [sys.executable, "-c", probe.format(command)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for command in ("import", "status", None)
    }
    assert loaded["import"] == "['tomoprep.steps.import_']"
    assert loaded["status"] == "[]"
    assert loaded[None] == "['tomoprep.steps.align', 'tomoprep.steps.import_']"
    listing = subprocess.run(
        [sys.executable, "-m", "tomoprep.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert all(name in listing for name in ("import", "motioncorr", "clean", "align", "simulate", "demo"))
