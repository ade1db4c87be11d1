"""Read SerialEM and Thermo Fisher Tomo5 ``.mdoc`` files into plain frozen dataclasses.

The text of a file (lines, sections, raw values) is read by :mod:`tomoprep.io.mdoc_text`; here its sections
become tilts, its titles a flavour and a tilt axis, and files become tilt series.

The tilts of one file are in stack order (``section_index``, the ZValue). That is the acquisition order only
until SerialEM sorts a dose-symmetric stack by tilt angle (``017.mdoc``), so ``date_time`` is what orders
acquisition; tilts merged from several files are put in ``DateTime`` order. For a bidirectional series,
SerialEM renames the first half to ``<stack>-half1`` (mdoc ``<stack>-half1.mdoc``), copies it inverted into a
new ``<stack>``, appends the second half with continuing ZValues, and deletes the ``-half1`` files once the
copy is done (``SetupBidirFileCopy`` in ``MultiTSTasks.cpp``; ``-unsorted`` when it sorts a dose-symmetric
stack). If the copy is interrupted both files remain, and :func:`read_mdocs` merges them.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from tomoprep.conventions import (
    normalise_angle_deg,
    tilt_axis_from_serialem_rotation_angle,
    tilt_axis_from_tomo5_rotation_angle,
    tilt_axis_from_tomo5_title_angle,
)
from tomoprep.errors import MdocError
from tomoprep.io.mdoc_names import MovieGroup, MovieRecord, group_movies, movie_stem, parse_movie_name
from tomoprep.io.mdoc_text import AGAIN, Fields, ParsedMdoc, Section, check_complete, parse_text, read_text

MdocFlavour = Literal["auto", "serialem", "tomo5"]
_T = TypeVar("_T")

# SerialEM: "Tilt axis angle = 85.3, binning = 4 ..."; Tomo5: "TiltAxisAngle = -175.84  Binning = 2 ...".
_TITLE_AXIS = re.compile(r"tilt\s*axis\s*angle\s*=\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)", re.IGNORECASE)
# Tomo5's first title: "Tomography: TITAN52337740 ..." (to 5.23), "Tomography_5.24.0.10938: TITAN..." (5.24).
_TOMO5_PROGRAM = re.compile(r"^\s*Tomography(?:[\s_:]|$)")
_STACK_SUFFIXES = (".mrc", ".mrcs", ".st", ".tif", ".tiff", ".eer", ".ali", ".hdf")
_COPY_SUFFIXES = ("-half1", "-unsorted")  # SerialEM's names for a stack it is copying into final order
#: The largest |tilt angle| there is (degrees): at 90° the beam runs along the grid.
MAX_TILT_ANGLE_DEG = 90.0


@dataclass(frozen=True)
class MdocTilt:
    """One tilt image (a ``[ZValue]`` or ``[FrameSet]`` section), values as written, units in the names.

    Defocus is in µm as the microscope gives it (``TargetDefocus`` negative for underfocus), doses in e⁻/Å²,
    ``DoseRate`` in electrons per unbinned camera pixel per second (SerialEM's definition). Pixel spacing,
    voltage and image size fall back to the file's global values. ``frame_sections`` are the per-frame
    ``[ZValue]`` blocks SerialEM writes after the ``[FrameSet]`` of a frame tilt series
    (``FrameTSStartEndFrames`` ...); ``extra`` holds every other key; both raw.
    """

    section_index: int
    source: Path
    tilt_angle_deg: float
    sub_frame_path: str | None
    movie_name: str | None
    num_sub_frames: int | None
    exposure_dose_e_per_angstrom2: float | None
    prior_record_dose_e_per_angstrom2: float | None
    frame_doses_and_number: tuple[tuple[float, int], ...] | None
    exposure_time_s: float | None
    dose_rate_e_per_unbinned_pixel_per_s: float | None
    pixel_spacing_angstrom: float | None
    defocus_um: float | None
    target_defocus_um: float | None
    rotation_angle_deg: float | None
    date_time: datetime | None
    voltage_kv: float | None
    gain_reference: str | None
    magnification: float | None
    binning: float | None
    image_size: tuple[int, int] | None
    extra: Mapping[str, str]
    frame_sections: tuple[Mapping[str, str], ...] = ()

    @property
    def target_defocus_angstrom(self) -> float | None:
        """``TargetDefocus`` in the model's units: Å, positive for underfocus (the mdoc's µm are negative)."""
        return None if self.target_defocus_um is None else -self.target_defocus_um * 1e4


@dataclass(frozen=True)
class MdocSeries:
    """One tilt series: from one mdoc, from the mdocs of its movies, or from the two files of a copy.

    ``tilts`` are in stack order for one file, in acquisition (``DateTime``) order when merged from several;
    ``tilt_axis_angle_deg`` is CCW from the image Y axis (``None`` when the files say nothing),
    ``tilt_axis_source`` says where it came from, ``headers`` holds each source's global lines, raw, and
    ``warnings`` what grouping the movies' mdocs found doubtful (:mod:`tomoprep.io.mdoc_names`).
    """

    name: str
    sources: tuple[Path, ...]
    flavour: Literal["serialem", "tomo5"]
    tilts: tuple[MdocTilt, ...]
    pixel_spacing_angstrom: float | None
    voltage_kv: float | None
    image_size: tuple[int, int] | None
    tilt_axis_angle_deg: float | None
    tilt_axis_source: str
    title_lines: tuple[str, ...]
    headers: tuple[Mapping[str, str], ...] = ()
    warnings: tuple[str, ...] = ()


def _tilt_blocks(path: Path, parsed: ParsedMdoc) -> list[tuple[Section, list[dict[str, str]]]]:
    """Each tilt section with the per-frame ``[ZValue]`` blocks that follow it in a frame-set mdoc."""
    kind = "FrameSet" if any(s.kind == "FrameSet" for s in parsed.sections) else "ZValue"
    blocks: list[tuple[Section, list[dict[str, str]]]] = []
    for section in parsed.sections:
        if section.kind == kind:
            blocks.append((section, []))
        elif section.kind == "ZValue" and blocks:
            blocks[-1][1].append(dict(section.values))
        elif section.kind == "ZValue":
            raise MdocError(
                path,
                f"[ZValue = {section.number}] (line {section.line}) comes before any [FrameSet].",
                "Pass the frame-set mdoc as SerialEM wrote it.",
            )
    # [MontSection] blocks only summarise a montage; its pieces are checked here.
    pieces = Counter(s.values["PieceCoordinates"].split()[-1] for s, _ in blocks if s.values.get("PieceCoordinates"))
    if (pieces and max(pieces.values()) > 1) or (not blocks and parsed.sections):
        raise MdocError(
            path,
            "is a montage, not a tilt series of single images.",
            "Blend the montage first (IMOD blendmont), or pass the mdoc of a tilt series.",
        )
    if not blocks:
        raise MdocError(
            path,
            "has no [ZValue] or [FrameSet] sections: no tilt images.",
            "Pass the mdoc of a tilt series or of its movies.",
        )
    repeated = [n for n, c in Counter(s.number for s, _ in blocks).items() if c > 1]
    if repeated:
        raise MdocError(
            path,
            f"[{kind} = {repeated[0]}] appears more than once.",
            "Delete the stale section (left by an edit or an aborted acquisition).",
        )
    return blocks


def _to_tilt(path: Path, section: Section, header: dict[str, str], frames: list[dict[str, str]]) -> MdocTilt:
    where = f"section [{section.kind} = {section.number}] (line {section.line})"
    f = Fields(path, where, dict(section.values), header)
    tilt_angle = f.number("TiltAngle")
    if tilt_angle is None:
        raise MdocError(path, f"{where} has no TiltAngle.", AGAIN)
    if not -MAX_TILT_ANGLE_DEG <= tilt_angle <= MAX_TILT_ANGLE_DEG:  # also catches inf
        raise MdocError(
            path,
            f"{where} has TiltAngle = {tilt_angle:g}, outside ±{MAX_TILT_ANGLE_DEG:g}°.",
            AGAIN,
        )
    sub_frame_path = f.values.pop("SubFramePath", None) or None
    num_sub_frames, image_size = f.integers("NumSubFrames", 1), f.integers("ImageSize", 2)
    return MdocTilt(
        section_index=section.number,
        source=path,
        tilt_angle_deg=tilt_angle,
        sub_frame_path=sub_frame_path,
        movie_name=re.split(r"[\\/]", sub_frame_path)[-1] if sub_frame_path else None,
        num_sub_frames=num_sub_frames[0] if num_sub_frames else None,
        exposure_dose_e_per_angstrom2=f.number("ExposureDose"),
        prior_record_dose_e_per_angstrom2=f.number("PriorRecordDose"),
        frame_doses_and_number=f.frame_doses(),
        exposure_time_s=f.number("ExposureTime"),
        dose_rate_e_per_unbinned_pixel_per_s=f.number("DoseRate"),
        pixel_spacing_angstrom=f.number("PixelSpacing"),
        defocus_um=f.number("Defocus"),
        target_defocus_um=f.number("TargetDefocus"),
        rotation_angle_deg=f.number("RotationAngle"),
        date_time=f.date_time(),
        voltage_kv=f.number("Voltage"),
        gain_reference=f.values.pop("GainReference", None) or None,
        magnification=f.number("Magnification"),
        binning=f.number("Binning"),
        image_size=(image_size[0], image_size[1]) if image_size else None,
        extra=dict(f.values),
        frame_sections=tuple(dict(block) for block in frames),
    )


def _flavour_of(parsed: ParsedMdoc) -> Literal["serialem", "tomo5"]:
    # Tomo5 names itself in its first title and spells the axis "TiltAxisAngle"; SerialEM (with or without a
    # Version line) writes "SerialEM: ..." and "Tilt axis angle", and anything else is read the SerialEM way.
    tomo5 = any(_TOMO5_PROGRAM.match(t) or "TiltAxisAngle" in t for t in parsed.titles)
    return "tomo5" if tomo5 else "serialem"


def _tilt_axis(flavour: str, titles: Sequence[str], tilts: Sequence[MdocTilt]) -> tuple[float | None, str]:
    """Tilt-axis angle CCW from Y (degrees) and its source: a title line first, else ``RotationAngle``."""
    for title in titles:
        if match := _TITLE_AXIS.search(title):
            value, text = float(match.group(1)), f"title line '{match.group(0)}'"
            if flavour == "tomo5":
                return tilt_axis_from_tomo5_title_angle(value), f"{text} (Tomo5, -θ-90)"
            return normalise_angle_deg(value), text
    rotation = next((t.rotation_angle_deg for t in tilts if t.rotation_angle_deg is not None), None)
    if rotation is None:
        return None, "none"
    if flavour == "tomo5":
        return tilt_axis_from_tomo5_rotation_angle(rotation), f"RotationAngle {rotation:g} (Tomo5, as is)"
    return tilt_axis_from_serialem_rotation_angle(rotation), f"RotationAngle {rotation:g} (SerialEM, -90)"


#: Largest difference (degrees) between a tilt's ``RotationAngle`` axis and the series' before import warns.
AXIS_AGREEMENT_DEG = 1.0


def axis_disagreement(series: MdocSeries) -> str | None:
    """A warning when the tilts' ``RotationAngle`` give tilt axes off the series' angle by over 1°, else ``None``.

    The series keeps one nominal axis (its title line, else the first ``RotationAngle``); a tilt whose own value
    disagrees is named, as a sign of a mis-set microscope or a mixed-up file.
    """
    convert = (
        tilt_axis_from_tomo5_rotation_angle if series.flavour == "tomo5" else tilt_axis_from_serialem_rotation_angle
    )
    axis = series.tilt_axis_angle_deg
    off = [
        (t, convert(t.rotation_angle_deg))
        for t in series.tilts
        if t.rotation_angle_deg is not None and axis is not None
        and abs(normalise_angle_deg(convert(t.rotation_angle_deg) - axis)) > AXIS_AGREEMENT_DEG
    ]  # fmt: skip
    if not off:
        return None
    worst, value = max(off, key=lambda pair: abs(normalise_angle_deg(pair[1] - (axis or 0.0))))
    return (
        f"{len(off)} of {len(series.tilts)} tilts' RotationAngle give another tilt axis than the series' "
        f"{axis:.2f}° ({series.tilt_axis_source}), up to {value:.2f}° (section {worst.section_index} of "
        f"{worst.source.name}); the series keeps {axis:.2f}°: pass --tilt-axis-angle-deg if that is wrong"
    )


def _common(values: Sequence[_T | None]) -> _T | None:
    """The value all entries share, or ``None`` when they differ or are missing."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _acquisition_order(tilts: Sequence[MdocTilt]) -> tuple[MdocTilt, ...]:
    if all(t.date_time is not None for t in tilts):
        return tuple(sorted(tilts, key=lambda t: t.date_time or datetime.min))  # stable: ties keep file order
    return tuple(tilts)


def _series_name(path: Path) -> str:
    """``TS_01.mrc.mdoc``, ``TS_01.mrc-half1.mdoc`` -> ``TS_01``; ``Position_1.mdoc`` -> ``Position_1``."""
    name = path.name[:-5] if path.name.lower().endswith(".mdoc") else path.name
    for suffix in _COPY_SUFFIXES:
        name = name.removesuffix(suffix)
    suffix = next((s for s in _STACK_SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)]


def _load(path: Path, flavour: MdocFlavour) -> tuple[MdocSeries, bool]:
    """Read one file; the flag is true for the mdoc of one movie (``[FrameSet]`` sections)."""
    text = read_text(path)
    parsed = parse_text(path, text)
    check_complete(path, parsed)
    blocks = _tilt_blocks(path, parsed)
    kind = _flavour_of(parsed) if flavour == "auto" else flavour
    blocks.sort(key=lambda block: block[0].number)  # stack order, whatever order the sections were written in
    tilts = [_to_tilt(path, section, parsed.header, frames) for section, frames in blocks]
    frame_set = blocks[0][0].kind == "FrameSet"
    header = Fields(path, "global values", dict(parsed.header))
    axis, axis_source = _tilt_axis(kind, parsed.titles, tilts)
    image_size = header.integers("ImageSize", 2)
    pixel = header.number("PixelSpacing")
    series = MdocSeries(
        name=_series_name(path),
        sources=(path,),
        flavour=kind,
        tilts=tuple(tilts),
        pixel_spacing_angstrom=pixel or _common([t.pixel_spacing_angstrom for t in tilts]),
        voltage_kv=header.number("Voltage") or _common([t.voltage_kv for t in tilts]),
        image_size=(image_size[0], image_size[1]) if image_size else _common([t.image_size for t in tilts]),
        tilt_axis_angle_deg=axis,
        tilt_axis_source=axis_source,
        title_lines=tuple(parsed.titles),
        headers=(dict(parsed.header),),
    )
    return series, frame_set


def detect_flavour(path: Path) -> Literal["serialem", "tomo5"]:
    """Which program wrote an mdoc: ``"tomo5"`` (Thermo Fisher Tomography 5) or ``"serialem"``.

    Tomo5 is recognised by its titles: ``[T = Tomography: TITAN... ]`` (``Tomography_5.24...:`` from 5.24 on)
    and ``[T = TiltAxisAngle = -175.84  Binning = 2 ...]``; any other mdoc is read as SerialEM's.

    Raises
    ------
    MdocError
        If the file cannot be read or is not an mdoc.
    """
    path = Path(path)
    return _flavour_of(parse_text(path, read_text(path)))


def read_mdoc(path: Path, *, flavour: MdocFlavour = "auto") -> MdocSeries:
    """Read one mdoc: a tilt series (``[ZValue]`` sections) or one movie (``[FrameSet]``).

    Parameters
    ----------
    path
        The ``.mdoc`` file.
    flavour
        ``"auto"`` (from the titles), ``"serialem"`` or ``"tomo5"``: which convention the tilt axis follows.

    Raises
    ------
    MdocError
        If the file is unreadable, truncated, a montage (several pieces per tilt), or holds a malformed line
        or value.
    """
    return _load(Path(path), flavour)[0]


def _combine(name: str, parts: Sequence[MdocSeries], tilts: Sequence[MdocTilt]) -> MdocSeries:
    for what, values in (
        ("flavour", {p.flavour for p in parts}),
        ("tilt axis", {round(p.tilt_axis_angle_deg or 0, 2) for p in parts if p.tilt_axis_angle_deg is not None}),
    ):
        if len(values) > 1:
            raise MdocError(
                parts[0].sources[0],
                f"the files of tilt series '{name}' disagree on the {what} ({sorted(map(str, values))}).",
                "Pass only the files of one tilt series.",
            )
    with_axis = next((p for p in parts if p.tilt_axis_angle_deg is not None), parts[0])
    return dataclasses.replace(
        parts[0],
        name=name,
        sources=tuple(s for p in parts for s in p.sources),
        tilts=tuple(tilts),
        pixel_spacing_angstrom=_common([p.pixel_spacing_angstrom for p in parts]),
        voltage_kv=_common([p.voltage_kv for p in parts]),
        image_size=_common([p.image_size for p in parts]),
        tilt_axis_angle_deg=with_axis.tilt_axis_angle_deg,
        tilt_axis_source=with_axis.tilt_axis_source,
        title_lines=tuple(dict.fromkeys(t for p in parts for t in p.title_lines)),
        headers=tuple(h for p in parts for h in p.headers),
    )


def _merge_copies(name: str, group: Sequence[MdocSeries]) -> MdocSeries:
    """One series from a stack's mdoc and the ``-half1``/``-unsorted`` mdoc of SerialEM's interrupted copy."""
    is_copy = [s.sources[0].name.lower().removesuffix(".mdoc").endswith(_COPY_SUFFIXES) for s in group]
    copies = [s for s, copy in zip(group, is_copy, strict=True) if copy]
    mains = [s for s, copy in zip(group, is_copy, strict=True) if not copy]
    if len(mains) > 1:
        files = ", ".join(str(s.sources[0]) for s in mains)
        raise MdocError(
            mains[0].sources[0],
            f"{len(mains)} mdoc files map to tilt series '{name}': {files}.",
            "Pass only one of them, or rename one so that the names differ.",
        )
    if len(group) == 1:
        return group[0]  # one file: keep its stack order
    # The copy was interrupted part-way, so some first-half tilts are in both files: the stack's copy wins.
    main_tilts = [t for m in mains for t in m.tilts]
    in_main = {(t.tilt_angle_deg, t.date_time, t.sub_frame_path) for t in main_tilts}
    tilts = [t for c in copies for t in c.tilts if (t.tilt_angle_deg, t.date_time, t.sub_frame_path) not in in_main]
    return _combine(name, copies + mains, _acquisition_order(tilts + main_tilts))


def _movie_records(frame_sets: Sequence[MdocSeries]) -> tuple[list[MovieRecord], list[MdocError]]:
    """Each movie's mdoc with its name read (its file name, else its movie's); unreadable names are errors."""
    records, errors = [], []
    for series in frame_sets:
        path, tilt = series.sources[0], series.tilts[0]
        names = [path.name] + ([tilt.movie_name] if tilt.movie_name else [])
        parsed = (parse_movie_name(movie_stem(n), tilt_angle_deg=tilt.tilt_angle_deg) for n in names)
        name = next((p for p in parsed if p is not None), None)
        if name is None:
            errors.append(
                MdocError(
                    path,
                    f"the name '{path.name}' (movie '{tilt.movie_name}') shows no series name followed by a frame "
                    f"number, a tilt angle that agrees with its TiltAngle {tilt.tilt_angle_deg:.2f}°, or a date or "
                    "time, so its tilt series is unknown.",
                    "Keep the names SerialEM gave the movies and their mdocs (<series>_<number>_<angle>...), "
                    "or pass the tilt-series mdoc.",
                )
            )
            continue
        label = tilt.extra.get("NavigatorLabel")
        records.append(MovieRecord(series, path.name, name, tilt.tilt_angle_deg, tilt.date_time, label))
    return records, errors


def _merge_frame_sets(group: MovieGroup) -> MdocSeries:
    """One series from the mdocs of its movies, in acquisition order, numbered by the frame numbers in their
    names when these are unique, else by their order."""
    parts: list[MdocSeries] = [record.key for record in group.records]
    tilts = [(t, record.name.index) for record, part in zip(group.records, parts, strict=True) for t in part.tilts]
    indices = [i for _, i in tilts]
    unique = None not in indices and len(set(indices)) == len(indices)
    numbered = [
        dataclasses.replace(t, section_index=k if not unique or i is None else i) for k, (t, i) in enumerate(tilts)
    ]
    return dataclasses.replace(_combine(group.name, parts, numbered), warnings=group.warnings)


def read_mdocs(paths: Sequence[Path], *, flavour: MdocFlavour = "auto") -> tuple[list[MdocSeries], list[MdocError]]:
    """Read many mdocs into one series per tilt-series name; a bad file does not stop the others.

    The mdocs of one movie each (``TS_019_0000_8.0.mrc.mdoc``, ``Position_1_001[-3.00]_fractions.tiff.mdoc``)
    are grouped by the series part of their names, checked against their tilt angles, navigator labels and
    times (:mod:`tomoprep.io.mdoc_names`; doubts end up in :attr:`MdocSeries.warnings`, a name that cannot be
    read is an error); the ``-half1``/``-unsorted`` mdoc that an interrupted SerialEM copy leaves is merged
    with the mdoc of the same stack (tilts in both are kept once).

    Parameters
    ----------
    paths
        The ``.mdoc`` files, in any order.
    flavour
        As for :func:`read_mdoc`, for every file.

    Returns
    -------
    series, errors
        The series sorted by name, and one :class:`MdocError` per file or group that could not be read.
    """
    errors: list[MdocError] = []
    stacks: dict[str, list[MdocSeries]] = defaultdict(list)
    frame_sets: list[MdocSeries] = []
    for path in paths:
        try:
            series, frame_set = _load(Path(path), flavour)
            if frame_set:
                frame_sets.append(series)
            else:
                stacks[series.name].append(series)
        except MdocError as error:
            errors.append(error)
    result: list[MdocSeries] = []
    for name, group in stacks.items():
        try:
            result.append(_merge_copies(name, group))
        except MdocError as error:
            errors.append(error)
    records, name_errors = _movie_records(frame_sets)
    errors += name_errors
    for movies in group_movies(records):
        if movies.name in stacks:
            errors.append(
                MdocError(
                    movies.records[0].key.sources[0],
                    f"{len(movies.records)} movie mdocs belong to tilt series '{movies.name}', which also has a "
                    "tilt-series mdoc; they were not used.",
                    "Pass either the tilt-series mdoc or the movie mdocs.",
                )
            )
            continue
        try:
            result.append(_merge_frame_sets(movies))
        except MdocError as error:
            errors.append(error)
    return sorted(result, key=lambda s: s.name), errors
