"""CTF estimates made elsewhere (``--from-files``): which file belongs to which series, and its rows as CTF records."""

from __future__ import annotations

import glob
import math
from dataclasses import replace
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.io.ctf_files import read_ctf_file
from tomoprep.model import TiltCtf, TiltSeries
from tomoprep.steps.unit import WARNING_PREFIX

#: Flag of a tilt the file has no row for (its values are interpolated from its neighbours in acquisition order).
NOT_IN_FILE = "not in file"


def matching_file(pattern: str, name: str) -> Path:
    """The file of ``pattern`` (a path or glob) that belongs to series ``name``: its stem is the name, or the name
    followed by ``_`` or ``.`` (``TS_01.defocus``, ``TS_01_CTF.txt``, ``TS_01.st_ctffind.txt``); the longest such
    name wins when one series' name starts another's."""
    paths = sorted(Path(p) for p in glob.glob(pattern)) or ([Path(pattern)] if Path(pattern).is_file() else [])
    if not paths:
        raise InputError(Path(pattern), "matches no file.", "give a CTF file or a glob that matches some.")
    if len(paths) == 1 and not any(c in pattern for c in "*?["):
        return paths[0]
    for path in paths:
        stem = path.name.split(".")[0] if path.name.startswith(name + ".") else path.stem
        if stem == name or stem.startswith(name + "_") or path.name.startswith(name + "."):
            return path
    raise InputError(
        Path(pattern), f"matches no file named after tilt series {name} ({len(paths)} files: {paths[0].name}, ...).",
        f"name each series' file after it ({name}.defocus, {name}_CTF.txt) or give one file per run.",
    )  # fmt: skip


def _interpolated(records: dict[int, TiltCtf], order: int, sequence: list[int]) -> TiltCtf:
    """A record for the tilt at acquisition ``order`` from the nearest ones before and after it that have one."""
    before = [o for o in sequence if o < order and o in records]
    after = [o for o in sequence if o > order and o in records]
    neighbours = [records[o] for o in (before[-1:] + after[:1])]
    mean = sum(r.defocus_angstrom for r in neighbours) / len(neighbours)
    half = 0.5 * neighbours[0].astigmatism_angstrom
    first = neighbours[0]
    return TiltCtf(mean + half, mean - half, first.astigmatism_angle_deg, first.phase_shift_deg, math.inf, None,
                   NOT_IN_FILE)  # fmt: skip


def series_from_file(ts: TiltSeries, pattern: str) -> tuple[TiltSeries, list[str]]:
    """``ts`` with the CTF of each included tilt from its file (rows by stack section), and notes."""
    path = matching_file(pattern, ts.name)
    ctf_file = read_ctf_file(path)
    by_section = {e.index: e for e in ctf_file.estimates}
    records: dict[int, TiltCtf] = {}
    for tilt in ts.included_tilts:
        estimate = by_section.get(tilt.acquisition.section_index)
        if estimate is not None:
            fom = None if math.isnan(estimate.figure_of_merit) else estimate.figure_of_merit
            resolution = None if math.isnan(estimate.fit_resolution_angstrom) else estimate.fit_resolution_angstrom
            u, v, angle = estimate.defocus_u_angstrom, estimate.defocus_v_angstrom, estimate.astigmatism_angle_deg
            if v > u:  # RELION keeps U ≥ V: swap, and U's direction turns by 90°
                u, v, angle = v, u, angle + 90.0
            records[tilt.acquisition.acquisition_index] = TiltCtf(
                u, v, (angle + 90.0) % 180.0 - 90.0, estimate.phase_shift_deg, resolution, fom
            )
    if not records:
        raise InputError(path, f"has no row for any included tilt of {ts.name} (sections from 1 to "
                         f"{max(t.acquisition.section_index for t in ts.tilts) + 1}).",
                         "give the file estimated on this series' stack.")  # fmt: skip
    sequence = sorted(t.acquisition.acquisition_index for t in ts.included_tilts)
    missing = [o for o in sequence if o not in records]
    for order in missing:
        records[order] = _interpolated(records, order, sequence)
    tilts = tuple(replace(t, ctf=records.get(t.acquisition.acquisition_index)) for t in ts.tilts)
    notes = [f"CTF of {len(sequence) - len(missing)} tilts read from {path} ({ctf_file.program})"]
    if missing:
        notes.append(f"{WARNING_PREFIX} {path} has no row for {len(missing)} included tilts; interpolated and flagged "
                     f"'{NOT_IN_FILE}'")  # fmt: skip
    if ctf_file.hand is not None:
        notes.append(f"{path} gives dfHand {ctf_file.hand:+d} (AreTomo's: -1 means its tilt axis is 180° off); "
                     f"the series' hand {ts.hand:+d} is kept")  # fmt: skip
    # The file's estimates replace any earlier ones, and with them any hand measured from them.
    return replace(ts, tilts=tilts, ctf_hand=None, ctf_sample=None), notes
