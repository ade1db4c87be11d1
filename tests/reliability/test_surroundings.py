"""Faults of the surroundings during a run: a full device (ENOSPC) ends the run FAILED with one line naming
the path and how to resume; a run folder that turns unwritable does not hide the error that came first; reading
a read-only project leaves no side files behind; an error outside any command ends in one message and a log."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from project_faults import flat, snapshot, tomoprep

from tomoprep.project import open_project

FULL = "no space left on the device: free space and run `tomoprep run --resume 1`"


def _full_device(path: Path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def _import(project: Path, stack_files: Path):
    assert tomoprep("init", str(project)).exit_code == 0
    return tomoprep("import", "-p", str(project), "--stack", str(stack_files / "test_000.mrc"),
                    "--dose-per-tilt-e-per-angstrom2", "2")  # fmt: skip


def _status(project: Path) -> str:
    with open_project(project, read_only=True) as proj:
        return proj.get_run(1).status


def test_a_full_device_while_a_unit_writes_fails_the_run_with_the_path_and_resume(
    tmp_path: Path, stack_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(ts, run_dir: Path) -> Path:
        raise _full_device(run_dir / "tilt_series" / f"{ts.name}.star")

    monkeypatch.setattr("tomoprep.steps.tilt_series_set.save_tilt_series", full)
    project = tmp_path / "p"
    result = _import(project, stack_files)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    assert f"{project / 'runs' / '001_import' / 'tilt_series' / 'test_000.star'}: {FULL}" in text
    assert "Traceback" not in result.output and _status(project) == "FAILED"
    monkeypatch.undo()
    resumed = tomoprep("run", "-p", str(project), "--resume", "1")
    assert resumed.exit_code == 0, resumed.output
    assert _status(project) == "SUCCEEDED"


def test_a_full_device_while_the_run_is_closed_fails_it_with_one_line(
    tmp_path: Path, stack_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tomoprep.io import star

    write = star.write_star

    def full_for_the_set(path: Path, *args, **kwargs):
        if Path(path).name == "tilt_series.star":
            raise _full_device(path)
        return write(path, *args, **kwargs)

    monkeypatch.setattr(star, "write_star", full_for_the_set)
    project = tmp_path / "p"
    result = _import(project, stack_files)
    text = flat(result.output)
    assert result.exit_code != 0 and "Traceback" not in result.output, text
    assert f"run 001_import FAILED: {project / 'runs' / '001_import' / 'tilt_series.star'}: {FULL}" in text
    assert "unexpected error" not in text and _status(project) == "FAILED"


def test_a_run_folder_turned_unwritable_keeps_the_first_error_and_the_index_says_failed(
    tmp_path: Path, stack_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "p" / "runs" / "001_import"))

    from tomoprep.project.store import Project

    write_record = Project._write_run_json

    def denied_once_running(self, record) -> None:
        if record.status != "RUNNING":  # the folder turned read-only after the run started
            denied()
        write_record(self, record)

    monkeypatch.setattr("tomoprep.steps.tilt_series_set.save_tilt_series", denied)
    monkeypatch.setattr(Project, "_write_run_json", denied_once_running)
    project = tmp_path / "p"
    result = _import(project, stack_files)
    text = flat(result.output)
    assert result.exit_code != 0 and "Traceback" not in result.output, text
    assert "test_000: PermissionError: [Errno 13] Permission denied" in text  # the unit's error, first
    assert "Then PermissionError: [Errno 13]" in text and "The index says FAILED where it could be written" in text
    assert _status(project) == "FAILED"


SIDE_FILES = ("project.db-wal", "project.db-shm")


def test_status_on_an_idle_project_leaves_it_byte_for_byte_as_it_was(two_runs: Path) -> None:
    assert not any((two_runs / name).exists() for name in SIDE_FILES)  # the commands that wrote it closed it
    before = snapshot(two_runs)
    result = tomoprep("status", "-p", str(two_runs))
    assert result.exit_code == 0, result.output
    assert snapshot(two_runs) == before  # no side file made, the index not written


def test_status_beside_an_open_writer_leaves_the_writers_side_files(two_runs: Path) -> None:
    with open_project(two_runs) as writer:
        writer.log_event(None, "a writer is at work")
        assert all((two_runs / name).exists() for name in SIDE_FILES)
        assert tomoprep("status", "-p", str(two_runs)).exit_code == 0
        assert all((two_runs / name).exists() for name in SIDE_FILES)  # still the writer's
        writer.log_event(None, "and goes on writing")
    assert not any((two_runs / name).exists() for name in SIDE_FILES)


def test_an_unforeseen_error_before_any_command_ends_in_one_message_a_log_and_status_3(
    crash_logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug met while the command line is being built (before any command runs; a broken plugin is only a
    warning, tests/steps/test_plugins.py) reaches the console script's last resort: one message and the crash
    log, status 3. The fault is injected where the command line is built."""
    import tomoprep.cli.main as cli_main

    def broken_build(command: str | None) -> None:
        raise KeyError("an option table that lost a column")

    monkeypatch.setattr(cli_main, "build_app", broken_build)
    monkeypatch.setattr("sys.argv", ["tomoprep", "--help"])
    with pytest.raises(SystemExit) as stopped:
        cli_main.main()
    out, err = capsys.readouterr()
    assert stopped.value.code == cli_main.CRASH_EXIT_CODE
    assert "Traceback" not in out + err
    text = flat(out)
    assert "tomoprep stopped on an unexpected error: KeyError: 'an option table that lost a column'" in text
    (log,) = crash_logs.glob("crash-*.log")
    assert f"are in {log}" in text and "broken_build" in log.read_text()
