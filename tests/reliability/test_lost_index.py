"""A lost project.db: status and init point to repair, repair rebuilds the index from the run folders, and no
new run takes the number of an existing folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from project_faults import flat, run_folders, snapshot, tomoprep

from tomoprep.project import open_project


def _records(project: Path) -> list:
    with open_project(project, read_only=True) as proj:
        return proj.list_runs()


def _lose_index(project: Path) -> None:
    for path in project.glob("project.db*"):
        path.unlink()


def test_status_without_index_advises_repair(two_runs: Path) -> None:
    _lose_index(two_runs)
    before = snapshot(two_runs)
    result = tomoprep("status", "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 2
    assert "project.db is missing" in text and "runs/ holds 2 run folders" in text
    assert f"tomoprep repair -p {two_runs}" in text and "tomoprep init" not in text
    assert snapshot(two_runs) == before


def test_init_refuses_a_folder_that_holds_runs(two_runs: Path) -> None:
    _lose_index(two_runs)
    before = snapshot(two_runs)
    result = tomoprep("init", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 2
    assert str(two_runs) in text and "001_import" in text and "tomoprep repair" in text
    assert snapshot(two_runs) == before and not (two_runs / "project.db").exists()


def test_repair_rebuilds_a_lost_index_and_the_next_run_is_new(two_runs: Path, stack_files: Path) -> None:
    records = _records(two_runs)
    _lose_index(two_runs)
    folders = run_folders(two_runs)
    result = tomoprep("repair", "-p", str(two_runs))
    assert result.exit_code == 0, result.output
    assert "Rebuilt the index from 2 run folders" in result.output
    assert _records(two_runs) == records
    assert run_folders(two_runs) == folders
    stack = str(stack_files / "test_000.mrc")
    again = tomoprep("import", "-p", str(two_runs), "--stack", stack, "--dose-per-tilt-e-per-angstrom2", "2")
    assert again.exit_code == 0, again.output
    assert "003_import" in again.output
    assert {k: v for k, v in run_folders(two_runs).items() if not k.startswith("003_import")} == folders


def test_a_new_run_never_takes_the_number_of_a_folder_the_index_lacks(two_runs: Path, stack_files: Path) -> None:
    # A run folder the index does not know of, e.g. copied in from a backup.
    shutil.copytree(two_runs / "runs" / "001_import", two_runs / "runs" / "005_import")
    folders = run_folders(two_runs)
    stack = str(stack_files / "test_000.mrc")
    result = tomoprep("import", "-p", str(two_runs), "--stack", stack, "--dose-per-tilt-e-per-angstrom2", "2")
    assert result.exit_code == 0, result.output
    assert "006_import" in result.output
    assert [r.label for r in _records(two_runs)] == ["001_import", "002_clean", "006_import"]
    assert {k: v for k, v in run_folders(two_runs).items() if not k.startswith("006_import")} == folders
