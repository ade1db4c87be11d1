"""The text layer of ``.mdoc`` files: bytes to text, lines to sections, raw values to numbers and dates.

An mdoc is an IMOD autodoc: global ``key = value`` lines, ``[T = ...]`` titles, then the sections
``[ZValue = N]`` per image of a stack, ``[FrameSet = N]`` per movie, ``[MontSection = N]`` per montage. It is
parsed here, not with ``mdocfile``, which keeps a section cut mid-value (a truncated ``TiltAngle = 30.0008``
reads 30.0), fails on global lines holding two ``=``, and converts values, losing the raw text that
:attr:`tomoprep.io.mdoc.MdocTilt.extra` keeps; the tests check that both agree on the real files.
What the sections mean (tilts, flavours, the tilt axis, series) is :mod:`tomoprep.io.mdoc`'s business.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tomoprep.errors import MdocError

_SECTION = re.compile(r"^\[\s*(ZValue|FrameSet|MontSection)\s*=\s*(-?\d+)\s*\]$")
_TITLE = re.compile(r"^\[?\s*T\s*=(.*?)\]?$")
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{2}|\d{4}) (\d{1,2}):(\d{2}):(\d{2})$")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
AGAIN = "Copy the file again from the acquisition computer, or correct the line named."


@dataclass
class Section:
    """One ``[kind = number]`` section: its header's line number and its ``key = value`` lines, raw."""

    kind: str
    number: int
    line: int
    values: dict[str, str]


@dataclass
class ParsedMdoc:
    """An mdoc as lines: the global ``key = value`` lines, the title texts and the sections, in file order."""

    header: dict[str, str]
    titles: list[str]
    sections: list[Section]


@dataclass
class Fields:
    """Pops typed values out of one raw ``key = value`` dict; errors name the file and the section."""

    path: Path
    where: str
    values: dict[str, str]
    fallback: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def text(self, key: str) -> str | None:
        return self.values.pop(key, None) or self.fallback.get(key) or None

    def number(self, key: str) -> float | None:
        raw = self.text(key)
        if raw is None or raw.lower() == "nan":  # Tomo5 writes NaN for what it does not know
            return None
        try:
            return float(raw)
        except ValueError:
            raise self.error(key, raw, "a number") from None

    def integers(self, key: str, count: int) -> tuple[int, ...] | None:
        raw = self.text(key)
        if raw is None:
            return None
        parts = raw.split()
        if len(parts) != count or not all(re.fullmatch(r"[-+]?\d+(\.0*)?", part) for part in parts):
            raise self.error(key, raw, f"{count} whole number(s)")
        return tuple(int(float(part)) for part in parts)

    def frame_doses(self) -> tuple[tuple[float, int], ...] | None:
        """``FrameDosesAndNumber = 0.023687 3  0.035531 7``: (e/Å² per frame, number of frames) pairs."""
        raw = self.text("FrameDosesAndNumber")
        if raw is None:
            return None
        parts = raw.split()
        try:
            return tuple((float(d), int(n)) for d, n in zip(parts[0::2], parts[1::2], strict=True))
        except ValueError:
            raise self.error("FrameDosesAndNumber", raw, "pairs of dose and frame count") from None

    def date_time(self) -> datetime | None:
        """``30-Nov-15  15:21:38`` (SerialEM) or ``30-Sep-2025  14:55:42`` (SerialEM 4.1+, Tomo5)."""
        raw = self.text("DateTime")
        if raw is None:
            return None
        match = _DATE.match(" ".join(raw.split()))
        month = match.group(2).lower() if match else ""
        if match is None or month not in _MONTHS:
            raise self.error("DateTime", raw, "'dd-Mon-yy HH:MM:SS' or 'dd-Mon-yyyy HH:MM:SS'")
        day, year, hour, minute, second = (int(match.group(i)) for i in (1, 3, 4, 5, 6))
        year += 2000 if year < 100 else 0  # SerialEM's two-digit years are all in this century
        try:
            return datetime(year, _MONTHS.index(month) + 1, day, hour, minute, second)
        except ValueError:
            raise self.error("DateTime", raw, "a valid date") from None

    def error(self, key: str, raw: str, expected: str) -> MdocError:
        return MdocError(self.path, f"{self.where}: {key} = '{raw}' is not {expected}.", AGAIN)


def read_text(path: Path) -> str:
    """The text of an mdoc: UTF-16 with its byte-order mark (an mdoc saved again by a Windows editor), UTF-8 (with
    or without BOM), else cp1252; raise if unreadable, empty or binary."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise MdocError(path, f"cannot be read ({error.strerror}).", "Check the path and rights.") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise MdocError(path, "starts as UTF-16 but is not.", "Save it again as UTF-8 text.") from None
    if not raw.strip() or b"\x00" in raw:
        raise MdocError(path, "is empty or binary, not an mdoc.", "Pass the .mdoc SerialEM or Tomo5 wrote.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # paths typed on a Windows acquisition PC


def parse_text(path: Path, text: str) -> ParsedMdoc:
    """Split an mdoc's text into global lines, titles and sections; raise on a malformed or repeated line."""
    parsed = ParsedMdoc({}, [], [])
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        title = _TITLE.match(line)
        if not line or line == "]" or line.startswith("#"):  # "]": a title's bracket wrapped to the next line
            continue
        if title and (line.startswith("[") or not parsed.sections):  # unbracketed "T = ..." heads frame sets
            parsed.titles.append(title.group(1).strip())
        elif section := _SECTION.match(line):
            parsed.sections.append(Section(section.group(1), int(section.group(2)), number, {}))
        else:
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or not key or line.startswith("["):
                raise MdocError(
                    path,
                    f"line {number} ('{line[:60]}') is neither 'key = value' nor a section "
                    "header: the file is truncated, edited or not an mdoc.",
                    AGAIN,
                )
            target = parsed.sections[-1].values if parsed.sections else parsed.header
            if target.setdefault(key, value) != value:
                raise MdocError(
                    path,
                    f"line {number}: {key} is given twice in one section ('{target[key]}', '{value}').",
                    "Delete the stale line.",
                )
    return parsed


def check_complete(path: Path, parsed: ParsedMdoc) -> None:
    """Raise if the file was cut while being written or copied: its last section lacks keys all others have.

    A missing final line break alone is no proof of a cut (some writers omit it), so it is not checked.
    """
    by_kind: dict[str, list[Section]] = defaultdict(list)
    for section in parsed.sections:
        by_kind[section.kind].append(section)
    for kind, (*others, last) in by_kind.items():
        missing = set.intersection(*(set(s.values) for s in others)) - set(last.values) if others else set()
        if missing:
            raise MdocError(
                path,
                f"its last section [{kind} = {last.number}] (line {last.line}) lacks "
                f"{', '.join(sorted(missing))}, which all others have: the file is truncated.",
                "Copy it again; if it is complete, add the missing lines to that section.",
            )
