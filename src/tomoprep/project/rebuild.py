"""What the index rebuild needs: the run folders' records, a health check of ``project.db``, and setting a
damaged index aside.

The run folders are the truth: each holds its ``run.json``; the index only makes them quick to query.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tomoprep.errors import ProjectError
from tomoprep.project.records import MARKERS, MISSING_INPUT, RunRecord
from tomoprep.project.schema import SCHEMA_VERSION

RUN_FOLDER = re.compile(r"^(\d+)_")
INDEX_SIDE_FILES = ("-wal", "-shm")


def numbered_entries(runs_dir: Path) -> dict[int, list[Path]]:
    """Every entry of ``runs_dir`` whose name begins with a run number (``003_align``), by number."""
    found: dict[int, list[Path]] = {}
    if runs_dir.is_dir():
        for entry in runs_dir.iterdir():
            if (match := RUN_FOLDER.match(entry.name)) is not None:
                found.setdefault(int(match.group(1)), []).append(entry)
    return found


def read_run_records(runs_dir: Path) -> list[RunRecord]:
    """The record (``run.json``) of every run folder, in order of run number."""
    records = []
    for run_json in sorted(runs_dir.glob("*/run.json")):
        try:
            records.append(RunRecord.from_json(run_json.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProjectError(
                f"{run_json}: unreadable run record ({exc}). Fix: move its folder out of {runs_dir} and repair again."
            ) from exc
    return sorted(records, key=lambda r: r.id)


def read_only_uri(db_path: Path) -> str:
    """The URI that opens ``db_path`` for reading only.

    In a folder we cannot write to, SQLite cannot make the WAL's shared-memory file: the file is then read as
    it stands (``immutable``).
    """
    mode = "ro" if os.access(db_path.parent, os.W_OK) else "ro&immutable=1"
    return f"{db_path.as_uri()}?mode={mode}"


def index_problem(db_path: Path, *, thorough: bool = True) -> str | None:
    """What is wrong with the index ``db_path``, or ``None`` when it is sound; the file is only read.

    ``thorough`` also checks every page (SQLite's ``quick_check``, which reads the whole file).
    """
    try:
        conn = sqlite3.connect(read_only_uri(db_path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0] if thorough else "ok"
        if check != "ok":
            return f"integrity check: {check}"
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            return f"schema version {row and row[0]} is not {SCHEMA_VERSION}"
        conn.execute("SELECT id FROM runs LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    return None


def set_aside(db_path: Path) -> Path:
    """Rename a damaged index (and its WAL files) to ``project.db.damaged-<UTC time>``; returns the new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.damaged-{stamp}-{n}")
    db_path.rename(target)
    for suffix in INDEX_SIDE_FILES:
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target


def insert_records(db: sqlite3.Connection, root: Path, records: list[RunRecord]) -> dict[int, tuple[int, ...]]:
    """Insert ``records`` (and the files of their folders as artifacts) into an emptied index.

    An input run whose folder is gone cannot be linked; the run is kept, its error saying which input is
    missing. Returns, by run id, the input runs found missing.
    """
    present = {r.id for r in records}
    missing: dict[int, tuple[int, ...]] = {}
    for rec in records:
        gone = tuple(i for i in rec.inputs if i not in present)
        error = rec.error
        if gone:
            missing[rec.id] = gone
            note = f"{MISSING_INPUT} {', '.join(f'{i:03d}' for i in gone)}: its folder is gone from the project."
            error = note if not error else f"{note}\n{error}"
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
                error,
            ),
        )
        db.executemany("INSERT INTO run_inputs VALUES (?, ?)", [(rec.id, i) for i in rec.inputs if i in present])
        db.executemany(
            "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?)",
            [(rec.id, u.name, u.status, u.error, u.started_at, u.finished_at) for u in rec.units.values()],
        )
        db.executemany(
            "INSERT INTO artifacts (run_id, unit, kind, path) VALUES (?, ?, ?, ?)", _artifacts_on_disk(root, rec)
        )
    return missing


def _artifacts_on_disk(root: Path, rec: RunRecord) -> list[tuple[int, str | None, str, str]]:
    """Every output file of a run folder, its unit taken from the first folder or the file stem."""
    folder = root / rec.directory
    own = {"run.json", "log.txt", ".lock", *MARKERS}
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in own):
        relative = path.relative_to(folder)
        candidates = (relative.parts[0], path.stem)
        unit = next((c for c in candidates if c in rec.units), None)
        kind = path.suffix.lstrip(".") or "file"
        rows.append((rec.id, unit, kind, str(path.relative_to(root))))
    return rows
