"""Tilts excluded or re-included by hand: the ``--exclude``/``--include`` lists and the exclusion file.

Tilts are named by tilt series and acquisition index (0-based, ``tpAcquisitionIndex``, the ``003`` of
``TS_01_003_12.0.eer``). Lists read ``TS_01:3,5;TS_02:0-2`` (ranges inclusive); the file has one line per
series, ``TS_01 3 5`` (ranges ``0-2`` allowed), ``#`` starting a comment. Everything is checked against the
input before a run starts: unknown series, numbers outside a series and tilts both excluded and included are
errors that name what is wrong and what exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.model import TiltSeries

#: Reasons a cleaning writes, so that a later cleaning knows which exclusions are its own.
AUTO_PREFIX = "auto:"
MANUAL_REASON = "manual"
SYNTAX = "write SERIES:N,N;SERIES:N-M, e.g. TS_01:3,5;TS_02:0-2 (acquisition indices, from 0)"

TiltSets = dict[str, set[int]]


def is_cleaning_reason(reason: str) -> bool:
    """Whether an exclusion reason was written by a cleaning (automatic or by hand)."""
    return reason.startswith(AUTO_PREFIX) or reason == MANUAL_REASON


def _numbers(words: Iterable[str], *, where: Path | None, what: str) -> set[int]:
    numbers: set[int] = set()
    for word in words:
        low, dash, high = word.strip().partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())):
            raise InputError(where, f"{what}: {word.strip()!r} is not a tilt number or range.", SYNTAX)
        stop = int(high) if dash else int(low)
        if stop < int(low):
            raise InputError(where, f"{what}: the range {word.strip()!r} runs backwards.", SYNTAX)
        numbers.update(range(int(low), stop + 1))
    return numbers


def parse_tilt_list(text: str | None, *, option: str) -> TiltSets:
    """``TS_01:3,5;TS_02:0-2`` as ``{"TS_01": {3, 5}, "TS_02": {0, 1, 2}}`` (``None`` or empty: nothing).

    Raises
    ------
    InputError
        If a part has no ``:``, no series name, or a word that is not a number or range.
    """
    sets: TiltSets = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        name, colon, numbers = part.partition(":")
        if not colon or not name.strip():
            raise InputError(None, f"{option} {text!r}: {part.strip()!r} names no tilt series.", SYNTAX)
        what = f"{option} {name.strip()}"
        words = [w for w in numbers.split(",") if w.strip()]
        sets.setdefault(name.strip(), set()).update(_numbers(words, where=None, what=what))
    return sets


def read_exclusion_file(path: Path) -> TiltSets:
    """The tilts an exclusion file names (module notes).

    Raises
    ------
    InputError
        If the file cannot be read, or a line has a word that is not a number or range (naming the line).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc}).", "give a text file: 'TS_01 3 5' per line.") from exc
    sets: TiltSets = {}
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].replace(",", " ").split()
        if words:
            sets.setdefault(words[0], set()).update(_numbers(words[1:], where=path, what=f"line {number}"))
    return sets


def merged(*sets: Mapping[str, set[int]]) -> TiltSets:
    """The union of several tilt sets."""
    out: TiltSets = {}
    for tilt_sets in sets:
        for name, numbers in tilt_sets.items():
            out.setdefault(name, set()).update(numbers)
    return out


def check_tilt_sets(sets: Mapping[str, set[int]], series: Sequence[TiltSeries], *, option: str) -> None:
    """Every named series is in the input and every number one of its tilts.

    Raises
    ------
    InputError
        Naming the unknown series and the known ones, or the series, its wrong numbers and its valid range.
    """
    known = {ts.name: ts for ts in series}
    unknown = sorted(set(sets) - set(known))
    if unknown:
        raise InputError(
            None,
            f"{option} names tilt series not in the input: {', '.join(unknown)}.",
            f"use the names of the input: {', '.join(sorted(known)) or '(none)'}.",
        )
    for name, numbers in sets.items():
        n = known[name].n_tilts
        wrong = sorted(k for k in numbers if k >= n)
        if wrong:
            raise InputError(
                None,
                f"{option}: tilt series {name} has no tilt {', '.join(map(str, wrong))}; its tilts are 0-{n - 1} "
                "(acquisition indices).",
                "give acquisition indices of that series (tpAcquisitionIndex, as in its movie names).",
            )


def check_inclusions(
    include: Mapping[str, set[int]], exclude: Mapping[str, set[int]], series: Sequence[TiltSeries]
) -> None:
    """Nothing is both excluded and included, and only a cleaning's own exclusions are undone.

    Raises
    ------
    InputError
        For a tilt both excluded and included, or one excluded by another step (its reason named).
    """
    known = {ts.name: ts for ts in series}
    for name, numbers in include.items():
        both = sorted(numbers & exclude.get(name, set()))
        if both:
            raise InputError(None, f"tilt series {name}: tilts {both} are both excluded and included.",
                             "name each tilt in one of --exclude/--exclusion-file and --include.")  # fmt: skip
        for tilt in known[name].tilts:
            exclusion = tilt.exclusion
            if tilt.acquisition.acquisition_index in numbers and exclusion and not is_cleaning_reason(exclusion.reason):
                raise InputError(
                    None,
                    f"--include: tilt {tilt.acquisition.acquisition_index} of {name} was excluded before cleaning "
                    f"({exclusion.reason or 'no reason given'}); cleaning cannot bring it back.",
                    "redo the step that excluded it, or leave it out of --include.",
                )
