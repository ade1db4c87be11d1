"""The project store: schema, run records on disk, repair, and two processes writing at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tomoprep.errors import ProjectError
from tomoprep.project import UnitRecord, init_project, open_project, repair_project


def test_init_creates_explicit_schema_and_runs_folder(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p")
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "p" / "project.db").execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"runs", "run_inputs", "artifacts", "events", "units"} <= tables
    assert (tmp_path / "p" / "runs").is_dir()
    project.close()
    with pytest.raises(ProjectError, match="already holds"):
        init_project(tmp_path / "p")


def test_the_index_appears_only_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that polls a project being created (a watch's page, ``status``) must never find a ``project.db``
    without its tables: it would call the index damaged and send the user to repair it. The index is written
    under another name and moved into place; while its tables are written, no ``project.db`` is there."""
    import tomoprep.project.store as store

    db, seen = tmp_path / "p" / "project.db", []
    real_now = store.now
    monkeypatch.setattr(store, "now", lambda: seen.append(db.exists()) or real_now())  # while the index is written
    with init_project(tmp_path / "p"), open_project(tmp_path / "p", read_only=True) as reader:
        assert reader.list_runs() == []
    assert seen == [False]
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["project.db", "runs"]  # nothing left beside it


def test_open_missing_project_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="tomoprep init"):
        open_project(tmp_path)


def test_run_folder_has_record_marker_and_log(tmp_path: Path) -> None:
    with init_project(tmp_path / "p") as project:
        first = project.create_run("import", {"x": 1}, [], "1.0")
        second = project.create_run("motioncorr", {"y": 2.5}, [first.id], "1.0")
        project.log_event(second.id, "hello", unit="TS_01")
        project.set_unit(second.id, UnitRecord("TS_01", "SUCCEEDED"))
        done = project.set_run_status(second.id, "SUCCEEDED")
        folder = project.run_dir(done)
    assert folder.name == "002_motioncorr"
    record = json.loads((folder / "run.json").read_text())
    assert record["params"] == {"y": 2.5}
    assert record["inputs"] == [1]
    assert record["status"] == "SUCCEEDED" and record["finished_at"]
    assert record["units"]["TS_01"]["status"] == "SUCCEEDED"
    assert record["host"] and record["package_version"] == "1.0"
    assert (folder / "SUCCEEDED").is_file() and not (folder / "FAILED").exists()
    assert "[TS_01] hello" in (folder / "log.txt").read_text()


def test_latest_successful_ignores_failed_and_running(tmp_path: Path) -> None:
    with init_project(tmp_path / "p") as project:
        ok = project.create_run("import", {}, [], "1")
        project.set_run_status(ok.id, "SUCCEEDED")
        bad = project.create_run("import", {}, [], "1")
        project.set_run_status(bad.id, "FAILED", error="boom")
        project.create_run("import", {}, [], "1")
        latest = project.latest_successful("import")
        assert latest is not None and latest.id == ok.id
        assert project.get_run("003_import").status == "RUNNING"
        with pytest.raises(ProjectError, match="does not exist"):
            project.get_run(42)


def test_repair_rebuilds_the_index_from_run_folders(tmp_path: Path) -> None:
    with init_project(tmp_path / "p") as project:
        a = project.create_run("import", {"mdoc": "*.mdoc"}, [], "1")
        project.set_unit(a.id, UnitRecord("TS_01", "FAILED", "missing movie"))
        project.set_run_status(a.id, "SUCCEEDED")
        b = project.create_run("motioncorr", {}, [a.id], "1")
        (project.run_dir(a) / "TS_01").mkdir()
        (project.run_dir(a) / "TS_01" / "stack.mrc").write_bytes(b"x")
        project.add_artifact(a.id, project.run_dir(a) / "TS_01" / "stack.mrc", kind="mrc", unit="TS_01")
        before = [project.get_run(1), project.get_run(2)]
    (tmp_path / "p" / "project.db").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / "p" / f"project.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(ProjectError, match="tomoprep repair"):
        init_project(tmp_path / "p")
    report = repair_project(tmp_path / "p")
    assert report.n_runs == 2 and report.set_aside is None and report.missing_inputs == {}
    project = open_project(tmp_path / "p")
    assert [project.get_run(1), project.get_run(2)] == before
    assert project.get_run(b.id).inputs == (a.id,)
    assert project.artifacts(a.id) == [("TS_01", "mrc", "runs/001_import/TS_01/stack.mrc")]
    project.close()


WRITER = textwrap.dedent("""
    import sys
    from tomoprep.project import open_project, UnitRecord
    project = open_project(sys.argv[1])
    for i in range(int(sys.argv[2])):
        run = project.create_run("import", {"writer": sys.argv[3], "i": i}, [], "1")
        project.log_event(run.id, f"writer {sys.argv[3]} run {i}")
        project.set_unit(run.id, UnitRecord("TS_01", "SUCCEEDED"))
        project.set_run_status(run.id, "SUCCEEDED")
""")


def test_two_processes_write_one_project_at_once(tmp_path: Path) -> None:
    init_project(tmp_path / "p").close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    n = 25
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "p"), str(n), tag], stderr=subprocess.PIPE, text=True
        )
        for tag in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with open_project(tmp_path / "p") as project:
        runs = project.list_runs()
        assert len(runs) == 2 * n
        assert len({r.id for r in runs}) == 2 * n
        assert all(r.status == "SUCCEEDED" for r in runs)
        assert sorted(r.params["writer"] for r in runs).count("a") == n
        folders = sorted(p.name for p in (tmp_path / "p" / "runs").iterdir())
        assert folders == sorted(r.label for r in runs)
        assert all(len(project.events(r.id)) == 1 for r in runs)
