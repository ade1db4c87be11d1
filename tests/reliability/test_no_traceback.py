"""No Python traceback reaches a user: bad input gets a clear message, and an error tomoprep did not foresee
is shown as one message, its traceback written to a crash log that the message names."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from project_faults import flat, import_plain_stacks, run_folders, snapshot, tomoprep
from typer.testing import CliRunner

from tomoprep.cli.main import CRASH_EXIT_CODE, _clear_errors, step_command
from tomoprep.project import open_project
from tomoprep.steps.base import Params, Step, Unit, UnitOutput


def test_init_on_a_regular_file_says_it_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    result = tomoprep("init", str(target))
    text = flat(result.output)
    assert result.exit_code == 2
    assert f"{target} is a file, not a folder" in text and "Fix: give the name of a new folder" in text
    assert target.read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_input_naming_a_failed_run_says_it_failed_and_why(tmp_path: Path) -> None:
    project, failed = import_plain_stacks(tmp_path, "TS_B.mrc")
    assert failed.exit_code == 1 and "FAILED" in failed.output
    before = snapshot(project, skip=("project.db-wal", "project.db-shm"))
    result = tomoprep("motioncorr", "-p", str(project), "--input", "1")
    text = flat(result.output)
    assert result.exit_code == 2
    assert "run 001_import failed (1 of 1 units failed; TS_B: " in text and "has no tilt angles" in text
    assert f"{project / 'runs' / '001_import' / 'log.txt'}" in text and "tomoprep run --resume 1" in text
    with open_project(project, read_only=True) as proj:
        assert [r.label for r in proj.list_runs()] == ["001_import"]
    assert snapshot(project, skip=("project.db-wal", "project.db-shm")) == before


def test_a_run_number_beyond_any_integer_is_no_run(two_runs: Path) -> None:
    before = snapshot(two_runs)
    result = tomoprep("status", "99999999999999999999999", "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 2
    assert f"run 99999999999999999999999 does not exist in {two_runs}" in text and "tomoprep status" in text
    assert snapshot(two_runs, skip=("project.db-wal", "project.db-shm")) == before


def test_repair_names_an_unreadable_run_record(two_runs: Path) -> None:
    record = two_runs / "runs" / "002_clean" / "run.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps(data | {"units": []}))  # a hand edit gone wrong
    before = snapshot(two_runs)
    result = tomoprep("repair", "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 2
    assert f"{record}: unreadable run record" in text and "Fix: move its folder out of" in text
    assert snapshot(two_runs) == before


class BuggyParams(Params):
    pass


def _buggy_plan(params: BuggyParams, inputs: Sequence[object]) -> list[Unit]:
    names = ["TS_01"]
    return [Unit(name=names[i + 1], payload=None) for i in range(len(names))]  # off by one: an IndexError


def _never(payload: object, params: BuggyParams, output_dir: Path) -> UnitOutput:
    raise AssertionError("never reached: planning fails first")


BUGGY = Step(name="buggy", title="A plugin step with a bug in its planning.", params=BuggyParams, run=_never,
             plan=_buggy_plan)  # fmt: skip


def test_an_unforeseen_error_shows_a_message_and_the_crash_log(tmp_path: Path, crash_logs: Path) -> None:
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    app = typer.Typer()
    app.command("buggy")(_clear_errors(step_command(BUGGY)))
    app.command("other")(lambda: None)  # two commands, so the step is called by name
    result = CliRunner().invoke(app, ["buggy", "-p", str(project)], catch_exceptions=False)
    text = flat(result.output)
    assert result.exit_code == CRASH_EXIT_CODE
    assert "Traceback" not in result.output
    assert "tomoprep stopped on an unexpected error: IndexError: list index out of range" in text
    (log,) = crash_logs.glob("crash-*.log")
    assert f"The details (traceback, versions, command line) are in {log}" in text and "please report it" in text
    assert "Traceback (most recent call last)" in log.read_text() and "_buggy_plan" in log.read_text()
    assert run_folders(project) == {}


def test_the_console_script_shows_no_traceback_on_a_damaged_index(two_runs: Path, tmp_path: Path) -> None:
    (two_runs / "project.db").write_bytes(b"\0" * 1000)
    for side in ("-wal", "-shm"):
        (two_runs / f"project.db{side}").unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "tomoprep.cli", "status", "-p", str(two_runs)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "the project index is damaged" in flat(done.stdout) and "tomoprep repair" in done.stdout
