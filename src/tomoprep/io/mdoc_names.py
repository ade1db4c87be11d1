"""Which tilt series the mdoc of one movie belongs to: its name read the way acquisition programs build frame
names, cross-checked with the tilt angle, the navigator item and the time the mdoc records.

SerialEM saves ``<movie>.mdoc`` beside each movie (``[FrameSet = 0]``) and names the movie from the options of
its Frame File Options dialog (``CameraController::ComposeFramePathAndName``), in this order, joined by ``_``:
root name, open-file name, magnification, navigator label (the series part); a frame number of 3 to 5 digits;
the tilt angle (``%.1f``); the date (``Oct08``) and time (``07.39.05``), or with the date-prefix option
``2021-10-08_07.39.05_`` before everything; a hole/position suffix. Its numbers restart only when the series
part changes, so one root name for several series gives one name part with numbers running on. Thermo's Tomo
names frames ``Position_1_2_001_-3.00_20240101_120000_fractions`` or ``Position_1_001[-3.00]_fractions``.

So a name is read as: leading date/time stamps (skipped), the **series part**, then the anchor: the tilt angle
(a number with a decimal point, or in brackets, that agrees with the mdoc's ``TiltAngle``), else the first
date/time stamp, else the end; the digits just before the anchor are the frame number (at least three digits
unless an angle follows). What comes after the anchor (time, ``_fractions``, ``_EER``) is ignored. A name with
no series part, or with neither angle, stamp nor frame number, cannot be grouped.

Names alone can mislead, so the groups are checked against the mdocs: mdocs with different ``NavigatorLabel``
values are different series; within one name and one label, a tilt angle seen before (not just retaken by the
previous movie) starts a new series, as when numbers run on across series.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Suffixes of movie files, taken off a movie name before it is read.
MOVIE_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff", ".eer", ".st")
#: Largest difference between the angle in a name and the mdoc's ``TiltAngle`` (a ``%.1f`` of the stage tilt
#: before the shot, against the stage reading during it), degrees.
NAME_ANGLE_TOLERANCE_DEG = 1.0
#: Two tilts of one series are at the same angle when they differ by less than this, degrees.
SAME_ANGLE_DEG = 0.3

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DATE = re.compile(
    rf"(?:{_MONTHS})\d{{2}}"  # SerialEM: Oct08
    r"|\d{4}-\d{2}-\d{2}"  # SerialEM's date prefix: 2021-10-08
    r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])",  # Tomo: 20240101
    re.IGNORECASE,
)
_TIME_DOTS = re.compile(r"\d{2}\.\d{2}\.\d{2}")
_TIME_DIGITS = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d[0-5]\d")
_ANGLE = re.compile(r"\[([-+]?\d+(?:\.\d+)?)\]|([-+]?\d+\.\d+)")


@dataclass(frozen=True)
class MovieName:
    """What the name of a movie says: its series part, frame number and tilt angle (``None`` where absent)."""

    series: str
    index: int | None
    angle_deg: float | None


@dataclass(frozen=True)
class MovieRecord:
    """What grouping needs of one movie's mdoc: its name, angle, time and navigator item."""

    key: Any  # the caller's handle (its parsed mdoc)
    source: str
    name: MovieName
    tilt_angle_deg: float
    date_time: datetime | None
    navigator_label: str | None


def movie_stem(name: str) -> str:
    """``TS_019_0000_8.0.mrc.mdoc`` -> ``TS_019_0000_8.0``."""
    stem = name[:-5] if name.lower().endswith(".mdoc") else name
    suffix = next((s for s in MOVIE_SUFFIXES if stem.lower().endswith(s)), "")
    return stem[: len(stem) - len(suffix)]


def _is_stamp(tokens: Sequence[str], k: int) -> bool:
    token = tokens[k]
    if _DATE.fullmatch(token) or _TIME_DOTS.fullmatch(token):
        return True
    # Six digits are a time only right after a date (Tomo's 20240101_120000), never a frame number alone.
    return bool(_TIME_DIGITS.fullmatch(token)) and k > 0 and bool(_DATE.fullmatch(tokens[k - 1]))


def _angle_anchor(tokens: Sequence[str], start: int, tilt_angle_deg: float) -> tuple[int, float] | None:
    for k in range(start + 1, len(tokens)):
        match = _ANGLE.fullmatch(tokens[k])
        if match and abs(float(match.group(1) or match.group(2)) - tilt_angle_deg) <= NAME_ANGLE_TOLERANCE_DEG:
            return k, float(match.group(1) or match.group(2))
    return None


def parse_movie_name(stem: str, *, tilt_angle_deg: float) -> MovieName | None:
    """Read a movie name (without suffixes) as module notes say; ``None`` when it cannot be grouped."""
    tokens = [t for t in re.split(r"_|(?=\[)|(?<=\])", stem) if t]
    start = 0
    while start < len(tokens) and _is_stamp(tokens, start):  # SerialEM's date-prefix option
        start += 1
    angle = _angle_anchor(tokens, start, tilt_angle_deg)
    if angle is not None:
        anchor, min_digits = angle[0], 1
    else:
        anchor = next((k for k in range(start + 1, len(tokens)) if _is_stamp(tokens, k)), len(tokens))
        min_digits = 3
    before = tokens[anchor - 1] if anchor - 1 >= start else ""
    index = int(before) if before.isdigit() and len(before) >= min_digits else None
    series = tokens[start : anchor - 1 if index is not None else anchor]
    if not series or (angle is None and index is None and anchor == len(tokens)):
        return None
    return MovieName("_".join(series), index, None if angle is None else angle[1])


def _split_by_label(records: Sequence[MovieRecord]) -> list[list[MovieRecord]]:
    labels: dict[str | None, list[MovieRecord]] = defaultdict(list)
    for record in records:
        labels[record.navigator_label].append(record)
    return list(labels.values())


def _in_acquisition_order(records: Sequence[MovieRecord]) -> list[MovieRecord]:
    if all(r.date_time is not None for r in records):
        return sorted(records, key=lambda r: (r.date_time, r.name.index or 0, r.source))
    return sorted(records, key=lambda r: (r.name.index is None, r.name.index or 0, r.source))


def _split_at_repeated_angles(records: Sequence[MovieRecord]) -> tuple[list[list[MovieRecord]], list[str]]:
    """Cut acquisition-ordered ``records`` where an angle already seen comes back, except a retake of the last."""
    parts: list[list[MovieRecord]] = [[]]
    notes = []
    for record in records:
        current = parts[-1]
        seen = [r for r in current if abs(r.tilt_angle_deg - record.tilt_angle_deg) < SAME_ANGLE_DEG]
        if seen and seen[-1] is current[-1]:
            notes.append(f"{record.source} retakes the tilt of {current[-1].source} ({record.tilt_angle_deg:.2f}°)")
        elif seen:
            parts.append([])
        parts[-1].append(record)
    return parts, notes


@dataclass(frozen=True)
class MovieGroup:
    """One tilt series of movies: its name, its movies in acquisition order, and what the cross-checks found."""

    name: str
    records: tuple[MovieRecord, ...]
    warnings: tuple[str, ...]


def group_movies(records: Sequence[MovieRecord]) -> list[MovieGroup]:
    """Movies grouped into tilt series (module notes), each with the warnings its cross-checks gave."""
    by_name: dict[str, list[MovieRecord]] = defaultdict(list)
    for record in records:
        by_name[record.name.series].append(record)
    groups = []
    for name, members in by_name.items():
        by_label = _split_by_label(members)
        for labelled in by_label:
            base = name if len(by_label) == 1 else f"{name}_{labelled[0].navigator_label}"
            split = [] if len(by_label) == 1 else [f"movies named '{name}_...' hold several NavigatorLabel values"]
            parts, retakes = _split_at_repeated_angles(_in_acquisition_order(labelled))
            if len(parts) > 1:
                split.append(f"movies named '{base}_...' record the same tilt angles {len(parts)} times over")
            for k, part in enumerate(parts):
                series = base if len(parts) == 1 else f"{base}_{k + 1}"
                notes = [
                    f"{m}: tilt series '{series}' is the {len(part)} tilts from {part[0].source} on" for m in split
                ]
                groups.append(MovieGroup(series, tuple(part), tuple(notes + retakes + _order_notes(part))))
    return groups


def _order_notes(records: Sequence[MovieRecord]) -> list[str]:
    """A warning when the frame numbers in the names do not follow the acquisition times."""
    indices = [r.name.index for r in records]
    if any(i is None for i in indices) or any(r.date_time is None for r in records):
        return []
    if indices == sorted(indices):  # type: ignore[type-var]
        return []
    return ["the frame numbers in the movie names do not follow their DateTime; DateTime orders the tilts"]
