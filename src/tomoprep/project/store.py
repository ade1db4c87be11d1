"""The project store: a folder with a SQLite index (``project.db``) and one folder per run.

The run folders are the truth (``run.json``, a ``SUCCEEDED``/``FAILED`` marker, ``log.txt``); the index makes
them quick to query and can be rebuilt from them (:meth:`Project.repair`). Several processes may use one project
at once: the index is in WAL mode and every write takes SQLite's single writer lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tomoprep.errors import ProjectError
from tomoprep.project.records import MARKERS, RunRecord, Status, UnitRecord, now, write_text_atomic
from tomoprep.project.schema import SCHEMA, SCHEMA_VERSION

DB_NAME = "project.db"
RUNS_DIR = "runs"
BUSY_TIMEOUT_S = 120.0


def _connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def init_project(path: Path | str) -> Project:
    """Create a project in ``path`` (created if missing, must not hold a project already)."""
    root = Path(path).resolve()
    if (root / DB_NAME).exists():
        raise ProjectError(f"{root} already holds a tomoprep project ({DB_NAME} exists).")
    root.mkdir(parents=True, exist_ok=True)
    (root / RUNS_DIR).mkdir(exist_ok=True)
    conn = _connect(root / DB_NAME)
    conn.executescript(SCHEMA)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (now(),))
    return Project(root, conn)


def open_project(path: Path | str) -> Project:
    """Open the project in ``path``."""
    root = Path(path).resolve()
    db = root / DB_NAME
    if not db.is_file():
        raise ProjectError(f"{root} is not a tomoprep project (no {DB_NAME}). Create one with `tomoprep init {root}`.")
    conn = _connect(db)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row["value"]) != SCHEMA_VERSION:
        raise ProjectError(f"{db}: schema version {row and row['value']} is not {SCHEMA_VERSION}.")
    return Project(root, conn)


class Project:
    """An open project. Create with :func:`init_project` or :func:`open_project`."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self._conn = conn

    def close(self) -> None:
        """Close the index connection."""
        self._conn.close()

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
        """Record a new RUNNING run, create its folder and write its ``run.json``."""
        host, started = socket.gethostname(), now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (step, directory, status, params_json, package_version, host, started_at)"
                " VALUES (?, '', 'RUNNING', ?, ?, ?, ?)",
                (step, json.dumps(params, sort_keys=True, default=str), package_version, host, started),
            )
            run_id = int(cursor.lastrowid or 0)
            directory = f"{RUNS_DIR}/{run_id:03d}_{step}"
            db.execute("UPDATE runs SET directory = ? WHERE id = ?", (directory, run_id))
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
        (self.root / directory).mkdir(parents=True, exist_ok=True)
        self._write_run_json(record)
        return record

    def _write_run_json(self, record: RunRecord) -> None:
        write_text_atomic(self.run_dir(record) / "run.json", record.to_json() + "\n")

    def get_run(self, ref: int | str) -> RunRecord:
        """The run with id ``ref`` (an int, ``"3"`` or a folder name such as ``"003_import"``)."""
        text = str(ref).strip()
        number = text.split("_", 1)[0]
        if not number.isdigit():
            raise ProjectError(f"{text!r} is not a run; give its number (see `tomoprep status`).")
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (int(number),)).fetchone()
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
        """Rebuild the index from the run folders; returns the number of runs.

        Runs, inputs and units come from each ``run.json``, artifacts from the files in the folder; events are
        not rebuilt (each run's ``log.txt`` keeps them).
        """
        records = []
        for run_json in sorted((self.root / RUNS_DIR).glob("*/run.json")):
            try:
                records.append(RunRecord.from_json(run_json.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                raise ProjectError(f"{run_json}: unreadable run record ({exc}); move it aside and repair.") from exc
        with self._write() as db:
            for table in ("units", "run_inputs", "artifacts", "events", "runs"):
                db.execute(f"DELETE FROM {table}")
            for rec in records:
                self._insert_record(db, rec)
                db.executemany(
                    "INSERT INTO artifacts (run_id, unit, kind, path) VALUES (?, ?, ?, ?)",
                    self._artifacts_on_disk(rec),
                )
        return len(records)

    def _artifacts_on_disk(self, rec: RunRecord) -> list[tuple[int, str | None, str, str]]:
        """Every output file of a run folder, its unit taken from the first folder or the file stem."""
        folder = self.root / rec.directory
        own = {"run.json", "log.txt", ".lock", *MARKERS}
        rows = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in own):
            relative = path.relative_to(folder)
            candidates = (relative.parts[0], path.stem)
            unit = next((c for c in candidates if c in rec.units), None)
            kind = path.suffix.lstrip(".") or "file"
            rows.append((rec.id, unit, kind, str(path.relative_to(self.root))))
        return rows

    @staticmethod
    def _insert_record(db: sqlite3.Connection, rec: RunRecord) -> None:
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.id,
                rec.step,
                rec.directory,
                rec.status,
                json.dumps(rec.params, sort_keys=True, default=str),
                rec.package_version,
                rec.host,
                rec.started_at,
                rec.finished_at,
                rec.error,
            ),
        )
        db.executemany("INSERT INTO run_inputs VALUES (?, ?)", [(rec.id, i) for i in rec.inputs])
        db.executemany(
            "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?)",
            [(rec.id, u.name, u.status, u.error, u.started_at, u.finished_at) for u in rec.units.values()],
        )
