"""Paths as a project stores them: relative to the project folder where they lie in it, absolute otherwise, and
read back joined to the folder the project is in now."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tomoprep.io.stored_paths import map_paths, project_path, project_record, stored_path, stored_record

ROOT = Path("/data/project")


def test_a_path_in_the_project_is_stored_relative_to_it_and_any_other_as_it_is() -> None:
    local = ROOT / "runs" / "003_align" / "TS_01_local.star"
    assert stored_path(local, ROOT) == Path("runs/003_align/TS_01_local.star")
    assert stored_path(Path("/data/frames/TS_01_000.tif"), ROOT) == Path("/data/frames/TS_01_000.tif")
    # A folder whose name merely starts like the project's is not in it.
    assert stored_path(Path("/data/project2/x.mrc"), ROOT) == Path("/data/project2/x.mrc")
    assert stored_path(Path("already/relative.mrc"), ROOT) == Path("already/relative.mrc")


def test_a_stored_path_reads_back_in_the_folder_the_project_is_in_now() -> None:
    moved = Path("/elsewhere/renamed")
    assert project_path(Path("runs/003_align/TS_01_local.star"), moved) == moved / "runs/003_align/TS_01_local.star"
    # Absolute paths (raw data, or a project written by an earlier version) read as they are.
    assert project_path(ROOT / "runs" / "x.mrc", moved) == ROOT / "runs" / "x.mrc"


@dataclass(frozen=True)
class _Inner:
    path: Path
    other: Path | None
    number: float


@dataclass(frozen=True)
class _Outer:
    name: str
    inner: _Inner
    items: tuple[_Inner, ...]
    sources: tuple[Path, ...]
    nothing: _Inner | None = None


def test_every_path_of_a_record_is_translated_at_any_depth_and_nothing_else() -> None:
    inner = _Inner(ROOT / "a.mrc", Path("/raw/b.tif"), 2.5)
    record = _Outer("TS_01", inner, (inner, _Inner(ROOT / "c" / "d.mrc", None, 1.0)), (Path("/raw/TS_01.mdoc"),))
    stored = stored_record(record, ROOT)
    assert stored == _Outer(
        "TS_01",
        _Inner(Path("a.mrc"), Path("/raw/b.tif"), 2.5),
        (_Inner(Path("a.mrc"), Path("/raw/b.tif"), 2.5), _Inner(Path("c/d.mrc"), None, 1.0)),
        (Path("/raw/TS_01.mdoc"),),
    )
    moved = Path("/new/place")
    assert project_record(stored, moved) == map_paths(record, lambda p: moved / p.relative_to(ROOT)
                                                      if p.is_relative_to(ROOT) else p)  # fmt: skip
