"""Reading and writing the tilt-series set of a run folder, and the step hooks that do it by default.

``<run>/tilt_series.star`` holds ``data_global`` (one row per tilt series, RELION 5 labels);
``<run>/tilt_series/<name>.star`` holds ``data_<name>`` (one row per tilt). The per-series path in the set
table is relative to the project root, as RELION stores it relative to its project directory. This module knows
where the files of a run folder are; what their labels mean is :mod:`tomoprep.io.tilt_series_star`'s.

pandas and starfile are imported where a table is read or written, not with this module, which every command
loads (``tomoprep --help`` needs neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomoprep.errors import InputError
from tomoprep.io.tilt_series_star import NAME_LABEL, STAR_FILE_LABEL
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


def _relative_to_project(run_dir: Path, path: Path) -> str:
    project_root = run_dir.resolve().parent.parent
    try:
        return str(path.resolve().relative_to(project_root))
    except ValueError:
        return str(path.resolve())


def save_tilt_series(ts: TiltSeries, run_dir: Path) -> Path:
    """Write the per-series STAR of ``ts`` and put its row into the set table (both atomically).

    The set table is kept current after every unit, so a run stopped half-way still has a readable set.
    """
    import pandas as pd

    from tomoprep.io.star import write_star
    from tomoprep.io.tilt_series_star import set_row, tilt_series_table

    path = series_star_path(run_dir, ts.name)
    write_star(path, {ts.name: tilt_series_table(ts)})
    row = set_row(ts, tilt_series_star_file=_relative_to_project(run_dir, path))
    current = _read_set_table(run_dir)
    if current is not None:
        current = current[current[NAME_LABEL].astype(str) != ts.name]
        table = pd.concat([current, pd.DataFrame([row])], ignore_index=True)
    else:
        table = pd.DataFrame([row])
    write_star(run_dir / SET_FILE, {"global": table})
    return path


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
    """Keep only the rows of ``names`` in the set table, in that order (an empty table when none)."""
    import pandas as pd

    from tomoprep.io.star import write_star

    table = _read_set_table(run_dir)
    path = run_dir / SET_FILE
    if table is None:
        table = pd.DataFrame(columns=[NAME_LABEL, STAR_FILE_LABEL])
    order = {name: i for i, name in enumerate(names)}
    table = table[table[NAME_LABEL].astype(str).isin(order)]
    table = table.sort_values(NAME_LABEL, key=lambda col: col.astype(str).map(order))
    write_star(path, {"global": table.reset_index(drop=True)})
    return path


def load_tilt_series(run_dir: Path, name: str) -> TiltSeries:
    """Read one tilt series of a run folder back (set row + per-series table)."""
    for ts in load_tilt_series_set(run_dir):
        if ts.name == name:
            return ts
    raise InputError(run_dir / SET_FILE, f"has no tilt series named {name!r}.")


def _resolve(run_dir: Path, stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else run_dir.resolve().parent.parent / path


def load_tilt_series_set(run_dir: Path) -> list[TiltSeries]:
    """Every tilt series of a run folder, in the order of its set table."""
    from tomoprep.io.star import read_star
    from tomoprep.io.tilt_series_star import tilt_series_from_tables

    set_path = run_dir / SET_FILE
    table = _read_set_table(run_dir)
    if table is None:
        raise InputError(set_path, "does not exist.", "run the step that writes it first.")
    series = []
    for _, row in table.iterrows():
        name = str(row[NAME_LABEL])
        star = _resolve(run_dir, str(row[STAR_FILE_LABEL]))
        per_series = read_star(star)
        if name not in per_series:
            raise InputError(set_path, f"the STAR file of {name!r} has no data_{name} table.")
        series.append(tilt_series_from_tables(row, per_series[name], source=star))
    return series
