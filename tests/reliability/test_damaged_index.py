"""A damaged project.db (garbage, empty, truncated): every command names it and says to repair; repair keeps it
aside and rebuilds from the run folders; a run whose input folder was deleted is kept and marked."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from project_faults import flat, run_folders, snapshot, tomoprep

from tomoprep.project import open_project


def _checkpoint(project: Path) -> None:
    """Fold the WAL into project.db, so that damaging the file damages the whole index."""
    conn = sqlite3.connect(project / "project.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for side in ("-wal", "-shm"):
        (project / f"project.db{side}").unlink(missing_ok=True)


def _damage(project: Path, kind: str) -> None:
    _checkpoint(project)
    db = project / "project.db"
    if kind == "garbage":
        db.write_bytes(b"this is not an index\n" * 50)
    elif kind == "empty":
        db.write_bytes(b"")
    else:  # cut short, as by a full disk or a copy stopped half-way
        db.write_bytes(db.read_bytes()[: 2 * 4096 + 100])


DAMAGES = ("garbage", "empty", "truncated")
#: SQLite's own side files, which a reader may leave beside the index; they hold nothing of the project.
SIDE_FILES = ("project.db-wal", "project.db-shm")


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("command", ["status", "motioncorr"])
def test_commands_on_a_damaged_index_say_to_repair(two_runs: Path, kind: str, command: str) -> None:
    _damage(two_runs, kind)
    before = snapshot(two_runs, skip=SIDE_FILES)
    result = tomoprep(command, "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 2, result.output
    assert f"{two_runs / 'project.db'}: the project index is damaged" in text
    assert f"tomoprep repair -p {two_runs}" in text and "Traceback" not in text
    assert snapshot(two_runs, skip=SIDE_FILES) == before


@pytest.mark.parametrize("kind", DAMAGES)
def test_repair_sets_a_damaged_index_aside_and_rebuilds(two_runs: Path, kind: str) -> None:
    with open_project(two_runs, read_only=True) as project:
        records = project.list_runs()
    _damage(two_runs, kind)
    damaged = (two_runs / "project.db").read_bytes()
    folders = run_folders(two_runs)
    result = tomoprep("repair", "-p", str(two_runs))
    assert result.exit_code == 0, result.output
    kept = [p for p in two_runs.glob("project.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert str(kept[0]) in flat(result.output)
    with open_project(two_runs, read_only=True) as project:
        assert project.list_runs() == records
    assert run_folders(two_runs) == folders
    assert tomoprep("status", "-p", str(two_runs)).exit_code == 0


def test_repair_keeps_a_run_whose_input_folder_was_deleted(two_runs: Path) -> None:
    shutil.rmtree(two_runs / "runs" / "001_import")
    folders = run_folders(two_runs)
    result = tomoprep("repair", "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 0, result.output
    assert "run 002 took as input run(s) 001, whose folder is gone" in text
    with open_project(two_runs, read_only=True) as project:
        (run,) = project.list_runs()
    assert run.label == "002_clean" and run.status == "SUCCEEDED" and run.inputs == ()
    assert (run.error or "").startswith("missing input run 001")
    status = flat(tomoprep("status", "-p", str(two_runs)).output)
    assert "warning: run 002_clean: missing input run 001" in status
    resumed = tomoprep("run", "--resume", "2", "-p", str(two_runs))
    assert resumed.exit_code == 2 and "002_clean cannot be resumed: missing input run 001" in flat(resumed.output)
    assert run_folders(two_runs) == folders
