"""What a session folder holds while the microscope writes it: its tilt series, and which of them are complete.

Discovery is the import's own (:func:`tomoprep.io.mdoc.read_mdocs` over the mdoc glob, movies matched to each
section's ``SubFramePath`` as the import matches them), so a series the watch takes is a series the import
imports. A series is complete when every movie its mdoc files name is there and none of its files (mdocs and
movies) has changed in size or time for the settle time: SerialEM adds a section to the mdoc per tilt and the
movies arrive after their sections, so a series whose files stop changing has stopped growing. A series whose
mdoc names a movie that never comes waits; with a time limit for missing movies it is taken anyway once nothing
of it has changed for that long (the import then fails it, or excludes the tilt with ``on_bad_movie =
"exclude"``).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from tomoprep.errors import InputError, MdocError
from tomoprep.io.mdoc import MdocSeries, read_mdocs
from tomoprep.steps.import_.movies import index_movies, match_movie

#: A file's state: its path, size in bytes and modification time in ns (a rewrite of equal size shows in the time).
FileState = tuple[str, int, int]


@dataclass(frozen=True)
class SeriesFiles:
    """One tilt series as the session folder holds it now.

    ``files`` are its mdocs and the movies found, with their sizes and times; ``missing`` the movie names its
    mdocs give that no file answers yet; ``error`` why its mdoc cannot be read (a file being written, or a bad
    one: the import will say which once it has settled)."""

    name: str
    files: tuple[FileState, ...]
    missing: tuple[str, ...] = ()
    error: str | None = None


def _state(path: Path) -> FileState | None:
    try:
        stat = path.stat()
    except OSError:  # gone between listing and looking: seen again at the next scan
        return None
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _states(paths: list[Path]) -> tuple[FileState, ...]:
    return tuple(sorted(s for s in map(_state, paths) if s is not None))


class MdocCache:
    """The series of the last set of mdoc files read, kept while none of the files changes: a session of a hundred
    series is parsed again only when one of its mdocs changes, not at every look."""

    def __init__(self) -> None:
        self._key: tuple[FileState, ...] | None = None
        self._read: tuple[list[MdocSeries], list[MdocError]] = ([], [])

    def read(self, paths: list[Path]) -> tuple[list[MdocSeries], list[MdocError]]:
        """:func:`tomoprep.io.mdoc.read_mdocs` of ``paths``, from the last call where no file changed since."""
        key = _states(paths)
        if key != self._key:
            self._key, self._read = key, read_mdocs(paths)
        return self._read


def scan_session(mdoc_glob: str, movies_dir: Path | None, cache: MdocCache | None = None) -> list[SeriesFiles]:
    """The tilt series the mdoc files of ``mdoc_glob`` describe now, sorted by name.

    Parameters
    ----------
    mdoc_glob
        Glob of the session's mdoc files (absolute), as the import's ``--mdoc``.
    movies_dir
        Folder of the movies, as the import's ``--movies``; ``None``: each series' mdoc folder.
    cache
        Where the mdocs read at the last call are kept (a watch passes the same one each time); ``None``: read all.
    """
    from tomoprep.steps.import_.movies import series_name_of

    paths = sorted(Path(p).resolve() for p in glob.glob(mdoc_glob, recursive=True))
    paths = [p for p in paths if p.is_file()]
    series, errors = (cache or MdocCache()).read(paths)
    found = []
    folders: dict[Path, dict[str, Path]] = {}
    for item in series:
        folder = (movies_dir or item.sources[0].parent).resolve()
        if folder not in folders:
            try:
                folders[folder] = index_movies(folder)
            except InputError:  # the movie folder is not there yet
                folders[folder] = {}
        movies, missing = [], []
        for tilt in item.tilts:
            if not tilt.movie_name:
                continue
            movie = match_movie(tilt.movie_name, folders[folder])
            (movies.append(movie) if movie is not None else missing.append(tilt.movie_name))
        found.append(SeriesFiles(item.name, _states([*item.sources, *movies]), tuple(missing)))
    for error in errors:
        path = error.path if error.path is not None else Path(mdoc_glob)
        name = series_name_of(path)
        if name not in {s.name for s in found}:
            found.append(SeriesFiles(name, _states([path]), error=str(error)))
    return sorted(found, key=lambda s: s.name)


@dataclass
class _Seen:
    files: tuple[FileState, ...]
    since_s: float


@dataclass
class CompletenessTracker:
    """Which series are complete, from successive scans (:func:`scan_session`) and the time of each.

    Parameters
    ----------
    settle_s
        How long (s) a series' files must stay unchanged, every movie present, before it is taken.
    missing_timeout_s
        How long (s) a series with movies still missing must stay unchanged before it is taken anyway;
        ``None``: it waits for them.
    """

    settle_s: float
    missing_timeout_s: float | None = None
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def update(self, scan: list[SeriesFiles], now_s: float) -> set[str]:
        """Take a scan made at ``now_s`` (a monotonic clock, s); return the series whose files changed since the
        last (all of them at the first)."""
        changed = set()
        for series in scan:
            seen = self._seen.get(series.name)
            if seen is None or seen.files != series.files:
                self._seen[series.name] = _Seen(series.files, now_s)
                changed.add(series.name)
        return changed

    def is_complete(self, series: SeriesFiles, now_s: float) -> bool:
        """Whether ``series`` (as in the last scan) is to be taken now."""
        seen = self._seen.get(series.name)
        if seen is None:
            return False
        quiet_s = now_s - seen.since_s
        if series.missing:
            return self.missing_timeout_s is not None and quiet_s >= self.missing_timeout_s
        return quiet_s >= self.settle_s

    def quiet_since_s(self) -> float | None:
        """The time of the newest change of any series seen, or ``None`` before the first."""
        return max((seen.since_s for seen in self._seen.values()), default=None)


def describe_wait(series: SeriesFiles) -> str:
    """Why ``series`` is not taken yet, in a few words."""
    if series.missing:
        first = series.missing[0]
        more = f" and {len(series.missing) - 1} more" if len(series.missing) > 1 else ""
        return f"waiting for {first}{more}"
    if series.error is not None:
        return "its mdoc cannot be read yet"
    return "files still changing"


def mdoc_glob_of(session_dir: Path, pattern: str) -> str:
    """The absolute glob of the session's mdoc files: ``pattern`` relative to ``session_dir``."""
    return os.path.join(glob.escape(str(session_dir.resolve())), pattern)
