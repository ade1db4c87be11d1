"""Reading and writing the tilt-series set of a run folder, and the step hooks that do it by default.

``<run>/tilt_series.star`` holds ``data_global`` (one row per tilt series, RELION 5 labels);
``<run>/tilt_series/<name>.star`` holds ``data_<name>`` (one row per tilt); where a step made tomograms, the set
file also holds ``data_tp_tomograms`` (one row per tomogram, :mod:`tomoprep.io.tomogram_star`). Every path these
files hold that lies in the project (the per-series STAR, micrographs, power spectra, tomograms, the alignment's
files) is written relative to the project folder, as RELION writes its paths relative to its project directory,
and read back joined to it (:mod:`tomoprep.io.stored_paths`); absolute paths, as earlier versions wrote them, read
as they are.
This module knows where the files of a run folder are; what their labels mean is
:mod:`tomoprep.io.tilt_series_star`'s.

pandas and starfile are imported where a table is read or written, not with this module, which every command
loads (``tomoprep --help`` needs neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomoprep.errors import InputError
from tomoprep.io.tilt_series_star import NAME_LABEL, STAR_FILE_LABEL
from tomoprep.io.tomogram_star import TOMOGRAM_TABLE
from tomoprep.model import TiltSeries
from tomoprep.steps.unit import Unit, UnitOutput

if TYPE_CHECKING:
    import pandas as pd

SET_FILE = "tilt_series.star"
SERIES_DIR = "tilt_series"


def plan_per_tilt_series(params: Any, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """The usual plan: one unit per input tilt series, its payload the tilt series itself."""
    return [Unit(name=ts.name, payload=ts) for ts in inputs]


def save_unit_tilt_series(output: UnitOutput, run_dir: Path) -> list[Path]:
    """The usual saver: the unit's tilt series into the run's tilt-series set."""
    return [save_tilt_series(output.tilt_series, run_dir)]


def summarize_tilt_series(outputs: Sequence[TiltSeries]) -> str:
    """The usual one-line summary of a run: how many tilt series and tilts."""
    n_tilts = sum(ts.n_tilts for ts in outputs)
    return f"{len(outputs)} tilt series, {n_tilts} tilts"


def series_star_path(run_dir: Path, name: str) -> Path:
    """Where the per-series STAR of ``name`` lives in ``run_dir``."""
    return run_dir / SERIES_DIR / f"{name}.star"


def project_root(run_dir: Path) -> Path:
    """The project folder of the run folder ``run_dir`` (``<project>/runs/<run>``), resolved."""
    return run_dir.resolve().parent.parent


def save_tilt_series(ts: TiltSeries, run_dir: Path) -> Path:
    """Write the per-series STAR of ``ts`` and put its row into the set table (both atomically), and its tomograms'
    rows into the set's table of tomograms (:mod:`tomoprep.io.tomogram_star`).

    The set table is kept current after every unit, so a run stopped half-way still has a readable set.
    """
    import pandas as pd

    from tomoprep.io.star import write_star
    from tomoprep.io.stored_paths import stored_path, stored_record
    from tomoprep.io.tilt_series_star import set_row, tilt_series_table
    from tomoprep.io.tomogram_star import tomogram_rows

    root = project_root(run_dir)
    path = series_star_path(run_dir, ts.name)
    ts = stored_record(ts, root)
    write_star(path, {ts.name: tilt_series_table(ts)})
    row = set_row(ts, tilt_series_star_file=str(stored_path(path.resolve(), root)))
    tables = {"global": pd.DataFrame([row]), TOMOGRAM_TABLE: pd.DataFrame(tomogram_rows(ts))}
    for block, current in _read_set_blocks(run_dir).items():
        if block in tables:
            kept = current[current[NAME_LABEL].astype(str) != ts.name]
            tables[block] = pd.concat([kept, tables[block]], ignore_index=True)
    write_star(run_dir / SET_FILE, {block: table for block, table in tables.items() if block == "global" or len(table)})
    return path


def _read_set_blocks(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The set file's tables (``global`` and, where a step made tomograms, :data:`TOMOGRAM_TABLE`); none without
    a file."""
    if _read_set_table(run_dir) is None:
        return {}
    from tomoprep.io.star import read_star

    blocks = read_star(run_dir / SET_FILE)
    return {name: blocks[name] for name in ("global", TOMOGRAM_TABLE) if name in blocks}


def _read_set_table(run_dir: Path) -> pd.DataFrame | None:
    from tomoprep.io.star import read_star

    set_path = run_dir / SET_FILE
    if not set_path.is_file():
        return None
    table = read_star(set_path).get("global")
    if table is None:
        raise InputError(set_path, "has no data_global table.", "re-run the step that wrote it.")
    return table


def is_tilt_series_saved(run_dir: Path, name: str) -> bool:
    """Whether ``name`` has its per-series STAR and its row in the set table."""
    table = _read_set_table(run_dir)
    return (
        series_star_path(run_dir, name).is_file() and table is not None and name in set(table[NAME_LABEL].astype(str))
    )


def finalize_tilt_series_set(run_dir: Path, names: Sequence[str]) -> Path:
    """Keep only the rows of ``names`` in the set table (and its table of tomograms), in that order (an empty
    table when none)."""
    import pandas as pd

    from tomoprep.io.star import write_star

    path = run_dir / SET_FILE
    blocks = _read_set_blocks(run_dir) or {"global": pd.DataFrame(columns=[NAME_LABEL, STAR_FILE_LABEL])}
    order = {name: i for i, name in enumerate(names)}
    for block, table in blocks.items():
        table = table[table[NAME_LABEL].astype(str).isin(order)]
        blocks[block] = table.sort_values(NAME_LABEL, key=lambda col: col.astype(str).map(order), kind="stable")
    write_star(path, {b: t.reset_index(drop=True) for b, t in blocks.items() if b == "global" or len(t)})
    return path


def load_tilt_series(run_dir: Path, name: str) -> TiltSeries:
    """Read one tilt series of a run folder back (set row + per-series table)."""
    for ts in load_tilt_series_set(run_dir):
        if ts.name == name:
            return ts
    raise InputError(run_dir / SET_FILE, f"has no tilt series named {name!r}.")


def load_tilt_series_set(run_dir: Path) -> list[TiltSeries]:
    """Every tilt series of a run folder, in the order of its set table."""
    from tomoprep.io.star import read_star
    from tomoprep.io.stored_paths import project_path, project_record
    from tomoprep.io.tilt_series_star import tilt_series_from_tables

    root = project_root(run_dir)
    set_path = run_dir / SET_FILE
    table = _read_set_table(run_dir)
    if table is None:
        raise InputError(set_path, "does not exist.", "run the step that writes it first.")
    tomograms = _read_set_blocks(run_dir).get(TOMOGRAM_TABLE)
    series = []
    for _, row in table.iterrows():
        name = str(row[NAME_LABEL])
        star = project_path(Path(str(row[STAR_FILE_LABEL])), root)
        per_series = read_star(star)
        if name not in per_series:
            raise InputError(set_path, f"the STAR file of {name!r} has no data_{name} table.")
        ts = tilt_series_from_tables(row, per_series[name], source=star, tomograms=tomograms)
        series.append(project_record(ts, root))
    return series
