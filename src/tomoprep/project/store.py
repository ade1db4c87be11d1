"""The project store: a folder with a SQLite index (``project.db``) and one folder per run.

The run folders are the truth (``run.json``, a ``SUCCEEDED``/``FAILED`` marker, ``log.txt``); the index makes
them quick to query and can be rebuilt from them (:func:`repair_project`), so a command never
re-initialises or renumbers over run folders. Several processes may use one project
at once: the index is in WAL mode and every write takes SQLite's single writer lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomoprep.errors import ProjectError
from tomoprep.project.rebuild import (
    index_problem,
    insert_records,
    numbered_entries,
    read_only_uri,
    read_run_records,
    set_aside,
)
from tomoprep.project.records import MARKERS, RunRecord, Status, UnitRecord, now, write_text_atomic
from tomoprep.project.schema import SCHEMA, SCHEMA_VERSION

DB_NAME = "project.db"
RUNS_DIR = "runs"
BUSY_TIMEOUT_S = 120.0


def _connect(db_path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(read_only_uri(db_path), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _new_index(root: Path) -> sqlite3.Connection:
    """A new, empty index in ``root``. Its tables are made in a file of another name, moved into place in one
    step: another process that finds ``project.db`` meanwhile (a ``status``, a watch's page) finds it whole, not a
    file without tables that it would call damaged and send the user to repair."""
    partial = root / f".{DB_NAME}.{os.getpid()}.new"
    partial.unlink(missing_ok=True)
    conn = _connect(partial)
    try:
        conn.executescript(SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (now(),))
        conn.close()  # the only connection: closing it writes the WAL into the file and removes the side files
        os.replace(partial, root / DB_NAME)
    except BaseException:
        conn.close()
        partial.unlink(missing_ok=True)
        raise
    return _connect(root / DB_NAME)


#: SQLite's side files of an index in WAL mode.
WAL_SIDE_FILES = ("-wal", "-shm")


def _remove_side_files(db: Path) -> None:
    """Remove the empty ``-wal`` and the ``-shm`` that a read-only connection made beside ``db`` (none were there).

    A read-only connection cannot remove them; the last connection to close can, and SQLite knows whether it is
    the last: a connection that reads and closes removes them only when no other holds the index open (a writer
    that started meanwhile keeps them). Only an empty ``-wal`` is left to it, so closing it checkpoints nothing
    and the index file is not written. Best effort: where the file cannot be opened for writing they stay.
    """
    wal = Path(f"{db}-wal")
    try:
        if not wal.exists() or wal.stat().st_size != 0:
            return
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, OSError):
        return


def _run_folders(root: Path) -> list[Path]:
    return sorted(p for paths in numbered_entries(root / RUNS_DIR).values() for p in paths if p.is_dir())


def init_project(path: Path | str) -> Project:
    """Create a project in ``path`` (created if missing; must not hold a project or run folders already)."""
    root = Path(path).resolve()
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} is a file, not a folder. Fix: give the name of a new folder for the project.")
    if (root / DB_NAME).exists():
        raise ProjectError(f"{root} already holds a tomoprep project ({DB_NAME} exists).")
    if folders := _run_folders(root):
        raise ProjectError(
            f"{root} holds {len(folders)} run folders ({folders[0].name}, ...) but no index ({DB_NAME}); a new "
            f"project there would number its runs anew over them. Fix: `tomoprep repair -p {root}` rebuilds "
            "the index from the run folders."
        )
    (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    return Project(root, _new_index(root))


def _no_index_message(root: Path) -> str:
    if root.exists() and not root.is_dir():
        return f"{root} is a file, not a project folder. Fix: give the project folder with --project."
    if folders := _run_folders(root):
        return (
            f"{root}: the project index {DB_NAME} is missing, but {RUNS_DIR}/ holds {len(folders)} run folders. "
            f"Fix: `tomoprep repair -p {root}` rebuilds the index from them."
        )
    return f"{root} is not a tomoprep project (no {DB_NAME}). Create one with `tomoprep init {root}`."


def damaged_index_message(db_path: Path, problem: object) -> str:
    """The message for an index that cannot be read: what SQLite said, and that repair rebuilds it."""
    return (
        f"{db_path}: the project index is damaged ({problem}). Fix: `tomoprep repair -p {db_path.parent}` "
        "rebuilds it from the run folders and keeps the damaged file beside it."
    )


def open_project(path: Path | str, *, read_only: bool = False) -> Project:
    """Open the project in ``path``; ``read_only`` opens its index for reading only (writes then fail)."""
    root = Path(path).resolve()
    db = root / DB_NAME
    if not db.is_file():
        raise ProjectError(_no_index_message(root))
    # A reader in a writable folder makes SQLite's side files if they are not there; it cannot remove them.
    tidy = read_only and not any(Path(f"{db}{side}").exists() for side in WAL_SIDE_FILES)
    # Checked through a read-only connection first: opening a damaged file for writing may change it (an
    # empty file becomes an empty database).
    if (problem := index_problem(db, thorough=False)) is not None:
        raise ProjectError(damaged_index_message(db, problem))
    return Project(root, _connect(db, read_only=read_only), tidy_side_files=tidy)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_project` did: runs indexed, where a damaged index went, inputs found missing."""

    n_runs: int
    set_aside: Path | None
    missing_inputs: dict[int, tuple[int, ...]]


def repair_project(path: Path | str) -> RepairReport:
    """Rebuild the index of the project in ``path`` from its run folders.

    A missing index is created; a damaged one (unreadable, truncated, not SQLite, wrong schema) is renamed to
    ``project.db.damaged-<UTC time>`` and a new one built. The run folders are only read.
    """
    root = Path(path).resolve()
    if not (root / RUNS_DIR).is_dir():
        raise ProjectError(
            f"{root} has no {RUNS_DIR}/ folder, so there is nothing to rebuild the index from. "
            f"Fix: give the project folder with --project, or create a project with `tomoprep init {root}`."
        )
    records = read_run_records(root / RUNS_DIR)
    db = root / DB_NAME
    aside = None
    if db.exists() and index_problem(db) is not None:
        aside = set_aside(db)
    project = open_project(root) if db.exists() else Project(root, _new_index(root))
    with project:
        missing = project._rebuild(records)
    return RepairReport(len(records), aside, missing)


class Project:
    """An open project. Create with :func:`init_project` or :func:`open_project`."""

    def __init__(self, root: Path, conn: sqlite3.Connection, *, tidy_side_files: bool = False) -> None:
        self.root = root
        self._conn = conn
        self._tidy_side_files = tidy_side_files

    def close(self) -> None:
        """Close the index connection (and remove the side files a read-only reading made, see
        :func:`_remove_side_files`)."""
        self._conn.close()
        if self._tidy_side_files:
            _remove_side_files(self.root / DB_NAME)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def run_dir(self, run: RunRecord) -> Path:
        """Absolute folder of ``run``."""
        return self.root / run.directory

    # -- runs -------------------------------------------------------------------------------------------
    def create_run(self, step: str, params: dict[str, Any], inputs: Sequence[int], package_version: str) -> RunRecord:
        """Record a new RUNNING run, create its folder and write its ``run.json``.

        The run takes a number no run folder has (even one the index lacks). Its folder is made before the
        record is committed, so a run that cannot start leaves no record behind.
        """
        host, started = socket.gethostname(), now()
        with self._write() as db:
            taken = max(numbered_entries(self.root / RUNS_DIR), default=0)
            run_id = max(int(db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]), taken) + 1
            directory = f"{RUNS_DIR}/{run_id:03d}_{step}"
            db.execute(
                "INSERT INTO runs (id, step, directory, status, params_json, package_version, host, started_at)"
                " VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?)",
                (
                    run_id,
                    step,
                    directory,
                    json.dumps(params, sort_keys=True, default=str),
                    package_version,
                    host,
                    started,
                ),
            )
            db.executemany("INSERT INTO run_inputs VALUES (?, ?)", [(run_id, int(i)) for i in sorted(set(inputs))])
            record = RunRecord(
                id=run_id,
                step=step,
                directory=directory,
                status="RUNNING",
                params=params,
                inputs=tuple(sorted(set(inputs))),
                package_version=package_version,
                host=host,
                started_at=started,
            )
            self.make_run_folder(record, new=True)
        return record

    def make_run_folder(self, record: RunRecord, *, new: bool = False) -> None:
        """Create the folder of ``record`` (which must not exist when ``new``) and write its ``run.json``."""
        folder = self.run_dir(record)
        try:
            folder.mkdir(exist_ok=not new)
            self._write_run_json(record)
        except OSError as exc:
            if new and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            raise ProjectError(
                f"{folder}: cannot create the run folder ({exc.strerror or exc}). Fix: make {folder.parent} a "
                "folder you can write to (its permissions, free space), then run the command again."
            ) from exc

    def _write_run_json(self, record: RunRecord) -> None:
        write_text_atomic(self.run_dir(record) / "run.json", record.to_json() + "\n")

    def get_run(self, ref: int | str) -> RunRecord:
        """The run with id ``ref`` (an int, ``"3"`` or a folder name such as ``"003_import"``)."""
        text = str(ref).strip()
        number = text.split("_", 1)[0]
        if not number.isdigit():
            raise ProjectError(f"{text!r} is not a run; give its number (see `tomoprep status`).")
        # A number beyond SQLite's 64-bit integers names no run either (and would not bind).
        row = (
            None
            if int(number) >= 2**63
            else self._conn.execute("SELECT * FROM runs WHERE id = ?", (int(number),)).fetchone()
        )
        if row is None:
            raise ProjectError(f"run {text} does not exist in {self.root}; `tomoprep status` lists the runs.")
        return self._record(row)

    def _record(self, row: sqlite3.Row) -> RunRecord:
        inputs = self._conn.execute(
            "SELECT input_run_id FROM run_inputs WHERE run_id = ? ORDER BY input_run_id", (row["id"],)
        ).fetchall()
        units = self._conn.execute("SELECT * FROM units WHERE run_id = ? ORDER BY name", (row["id"],)).fetchall()
        return RunRecord(
            id=row["id"],
            step=row["step"],
            directory=row["directory"],
            status=row["status"],
            params=json.loads(row["params_json"]),
            inputs=tuple(r[0] for r in inputs),
            package_version=row["package_version"],
            host=row["host"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            units={
                u["name"]: UnitRecord(u["name"], u["status"], u["error"], u["started_at"], u["finished_at"])
                for u in units
            },
        )

    def list_runs(self, *, step: str | None = None, status: Status | None = None) -> list[RunRecord]:
        """Runs in order of creation, optionally only of one step and/or one status."""
        sql, args = "SELECT * FROM runs WHERE 1=1", list[str]()
        if step is not None:
            sql, args = sql + " AND step = ?", [*args, step]
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        return [self._record(r) for r in self._conn.execute(sql + " ORDER BY id", args).fetchall()]

    def latest_successful(self, step: str) -> RunRecord | None:
        """The newest SUCCEEDED run of ``step``, or ``None``."""
        runs = self.list_runs(step=step, status="SUCCEEDED")
        return runs[-1] if runs else None

    def set_unit(self, run_id: int, unit: UnitRecord) -> None:
        """Record the state of one unit and mirror it into ``run.json``."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, unit.name, unit.status, unit.error, unit.started_at, unit.finished_at),
            )
        self._write_run_json(self.get_run(run_id))

    def set_run_status(self, run_id: int, status: Status, *, error: str | None = None) -> RunRecord:
        """Set a run's status; a final status writes its marker file and end time."""
        finished = None if status == "RUNNING" else now()
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (status, finished, error, run_id),
            )
        record = self.get_run(run_id)
        folder = self.run_dir(record)
        for marker in MARKERS:
            (folder / marker).unlink(missing_ok=True)
        if status in MARKERS:
            (folder / status).write_text(f"{finished}\n")
        self._write_run_json(record)
        return record

    # -- artifacts and events ---------------------------------------------------------------------------
    def add_artifact(self, run_id: int, path: Path, *, kind: str, unit: str | None = None) -> None:
        """Record a file a run produced (``path`` absolute or relative to the project root)."""
        relative = Path(path).resolve().relative_to(self.root) if Path(path).is_absolute() else Path(path)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, unit, kind, path) VALUES (?, ?, ?, ?)",
                (run_id, unit, kind, str(relative)),
            )

    def artifacts(self, run_id: int) -> list[tuple[str | None, str, str]]:
        """``(unit, kind, path)`` of every artifact of a run."""
        rows = self._conn.execute(
            "SELECT unit, kind, path FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [(r["unit"], r["kind"], r["path"]) for r in rows]

    def log_event(self, run_id: int | None, message: str, *, level: str = "INFO", unit: str | None = None) -> None:
        """Append an event to the index (and to the run's ``log.txt``)."""
        stamp = now()
        with self._write() as db:
            db.execute(
                "INSERT INTO events (run_id, unit, time, level, message) VALUES (?, ?, ?, ?, ?)",
                (run_id, unit, stamp, level, message),
            )
        if run_id is not None:
            run = self.get_run(run_id)
            prefix = f"[{unit}] " if unit else ""
            with open(self.run_dir(run) / "log.txt", "a", encoding="utf-8") as log:
                log.write(f"{stamp} {level:7s} {prefix}{message}\n")

    def events(self, run_id: int) -> list[tuple[str, str, str | None, str]]:
        """``(time, level, unit, message)`` of every event of a run."""
        rows = self._conn.execute(
            "SELECT time, level, unit, message FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [(r["time"], r["level"], r["unit"], r["message"]) for r in rows]

    # -- repair -----------------------------------------------------------------------------------------
    def repair(self) -> int:
        """Rebuild the index from the run folders; returns the number of runs (see :func:`repair_project`)."""
        records = read_run_records(self.root / RUNS_DIR)
        self._rebuild(records)
        return len(records)

    def _rebuild(self, records: list[RunRecord]) -> dict[int, tuple[int, ...]]:
        """Replace the index's contents by ``records``; events are not rebuilt (each ``log.txt`` keeps them)."""
        with self._write() as db:
            for table in ("units", "run_inputs", "artifacts", "events", "runs"):
                db.execute(f"DELETE FROM {table}")
            return insert_records(db, self.root, records)
