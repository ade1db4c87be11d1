"""The SQLite schema of the project index, stated explicitly and versioned."""

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY,
    step            TEXT NOT NULL,
    directory       TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    params_json     TEXT NOT NULL,
    package_version TEXT NOT NULL,
    host            TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    error           TEXT
);
CREATE TABLE IF NOT EXISTS run_inputs (
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    input_run_id INTEGER NOT NULL REFERENCES runs(id),
    PRIMARY KEY (run_id, input_run_id)
);
CREATE TABLE IF NOT EXISTS units (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    error       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
    id     INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    unit   TEXT,
    kind   TEXT NOT NULL,
    path   TEXT NOT NULL,
    UNIQUE (run_id, path)
);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER REFERENCES runs(id),
    unit    TEXT,
    time    TEXT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_step ON runs (step, status);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id);
"""
