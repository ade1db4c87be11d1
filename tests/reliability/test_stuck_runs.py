"""Runs that cannot start leave no RUNNING record, a run left without its folder resumes, a partly failed run
shows as PARTIAL and its command fails with a summary, and status reads a project it cannot write to."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from project_faults import flat, import_plain_stacks, run_folders, snapshot, tomoprep

from tomoprep import __version__
from tomoprep.project import open_project


def test_a_run_that_cannot_make_its_folder_leaves_no_record(tmp_path: Path, stack_files: Path) -> None:
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    # Root may write anywhere, so the fault is a file where the runs folder should be.
    (project / "runs").rmdir()
    (project / "runs").write_text("not a folder\n")
    before = snapshot(project, skip=("project.db-wal", "project.db-shm"))
    stack = str(stack_files / "test_000.mrc")
    result = tomoprep("import", "-p", str(project), "--stack", stack, "--dose-per-tilt-e-per-angstrom2", "2")
    text = flat(result.output)
    assert result.exit_code == 2, result.output
    assert f"{project / 'runs' / '001_import'}: cannot create the run folder" in text
    assert f"make {project / 'runs'} a folder you can write to" in text
    with open_project(project, read_only=True) as proj:
        assert proj.list_runs() == []
    assert snapshot(project, skip=("project.db-wal", "project.db-shm")) == before


def test_resume_remakes_the_folder_of_a_run_left_running_without_one(two_runs: Path) -> None:
    with open_project(two_runs) as project:
        cleaned = project.get_run(2)
        stuck = project.create_run("clean", cleaned.params, [1], __version__)
    shutil.rmtree(two_runs / stuck.directory)  # as a run that could not make its folder once left it
    folders = run_folders(two_runs)
    result = tomoprep("run", "--resume", str(stuck.id), "-p", str(two_runs))
    assert result.exit_code == 0, result.output
    assert "003_clean" in result.output and "SUCCEEDED" in result.output
    with open_project(two_runs, read_only=True) as project:
        assert project.get_run(3).status == "SUCCEEDED"
    assert {k: v for k, v in run_folders(two_runs).items() if not k.startswith("003_")} == folders


def test_a_partly_failed_run_shows_partial_and_fails_the_command(tmp_path: Path) -> None:
    project, result = import_plain_stacks(tmp_path, "*.mrc")
    text = flat(result.output)
    assert result.exit_code == 1
    assert "Run 001_import: PARTIAL" in text
    assert "1 of 2 tilt series failed (TS_B)" in text and f"{project / 'runs' / '001_import' / 'log.txt'}" in text
    assert "TS_B failed:" in text and "tomoprep run --resume 1" in text
    status = flat(tomoprep("status", "-p", str(project)).output)
    assert "PARTIAL" in status and "1/1/2" in status and "SUCCEEDED" not in status
    with open_project(project, read_only=True) as proj:
        assert proj.get_run(1).status == "SUCCEEDED"  # the next step still takes TS_A


def test_status_changes_nothing_in_a_project(two_runs: Path) -> None:
    before = snapshot(two_runs)
    result = tomoprep("status", "-p", str(two_runs))
    assert result.exit_code == 0 and "002_clean" in result.output
    assert snapshot(two_runs, skip=("project.db-wal", "project.db-shm")) == before


def _make_read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_status_reads_a_read_only_project(two_runs: Path) -> None:
    before = snapshot(two_runs)
    _make_read_only(two_runs)
    try:
        if os.access(two_runs, os.W_OK):
            pytest.skip("this user (root) may write to a read-only folder, so the folder cannot be made read-only")
        result = tomoprep("status", "-p", str(two_runs))
        assert result.exit_code == 0, result.output
        assert "001_import" in result.output and "002_clean" in result.output
        assert snapshot(two_runs) == before
    finally:
        for path in [two_runs, *two_runs.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
