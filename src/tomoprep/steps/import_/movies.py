"""Import of tilt-series movies described by mdoc files: one unit per tilt series."""

from __future__ import annotations

import glob
import math
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tomoprep.conventions import normalise_angle_deg
from tomoprep.errors import ImageFileError, InputError, MdocError
from tomoprep.io.mdoc import MdocSeries, MdocTilt, axis_disagreement, read_mdocs
from tomoprep.io.movies import MovieHeader, read_movie_header
from tomoprep.model import GainReference, Optics, TiltAcquisition, TiltExclusion, TiltImage, TiltSeries
from tomoprep.steps.base import Unit, UnitOutput
from tomoprep.steps.import_.dose import DoseRecord, acquisition_order, pre_exposures
from tomoprep.steps.import_.params import ImportParams

MOVIE_SUFFIXES = (".eer", ".tif", ".tiff", ".mrc", ".mrcs")
GAIN_SUFFIXES = (".mrc", ".tif", ".tiff", ".gain")
DEFAULT_VOLTAGE_KV = 300.0
PIXEL_SPACING_TOLERANCE = 0.02


@dataclass(frozen=True)
class _MovieFacts:
    movie_path: Path | None = None
    frame_count: int | None = None
    gain: GainReference | None = None
    excluded: bool = False
    exclusion_reason: str = ""
    frame_shape_yx: tuple[int, int] | None = None


@dataclass(frozen=True)
class MovieSeriesPayload:
    """What one movie-import unit needs: the parsed mdoc series and where to find the movies."""

    series: MdocSeries
    movies_dir: Path


def expand_glob(pattern: str, *, what: str) -> list[Path]:
    """Files matching ``pattern`` (sorted); none is an InputError that names the pattern."""
    paths = sorted(Path(p).resolve() for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
    files = [p for p in paths if p.is_file()]
    if not files:
        raise InputError(None, f"no {what} match {pattern!r}.", "check the path and quote the glob.")
    return files


def plan_movie_import(params: ImportParams) -> list[Unit]:
    """One unit per tilt series found in the mdoc files; an unreadable mdoc becomes a failing unit."""
    if params.mdoc is None:
        raise InputError(None, "no --mdoc given.", "pass --mdoc 'folder/*.mdoc'.")
    paths = expand_glob(params.mdoc, what="mdoc files")
    series, errors = read_mdocs(paths, flavour=params.mdoc_flavour)
    payloads = [MovieSeriesPayload(s, (params.movies or s.sources[0].parent).resolve()) for s in series]
    shared = _movies_in_several_series(payloads)
    units = []
    for payload in payloads:
        name = payload.series.name
        units.append(Unit(name=name, error=shared[name]) if name in shared else Unit(name=name, payload=payload))
    for error in errors:
        name = series_name_of(error.path) if error.path is not None else "mdoc"
        units.append(Unit(name=name, error=str(error)))
    return units


def _movies_in_several_series(payloads: Sequence[MovieSeriesPayload]) -> dict[str, str]:
    """An error for each series that names a movie another series names too (a copied mdoc, say): a movie
    is one tilt of one series, so neither series can be trusted until one mdoc is taken away."""
    users: dict[Path, list[int]] = defaultdict(list)
    for k, payload in enumerate(payloads):
        for name in dict.fromkeys(t.movie_name for t in payload.series.tilts if t.movie_name):
            users[payload.movies_dir / name].append(k)
    shared = {movie: sharing for movie, sharing in users.items() if len(sharing) > 1}
    errors: dict[str, str] = {}
    for movie, sharing in shared.items():
        for k in sharing:
            series = payloads[k].series
            if series.name in errors:
                continue
            count = sum(k in s for s in shared.values())
            others = " and ".join(str(payloads[j].series.sources[0]) for j in sharing if j != k)
            error = MdocError(
                series.sources[0],
                f"names movie {movie.name} ({count} shared movie{'s' if count > 1 else ''} in all), which {others} "
                "names too: a movie "
                "belongs to one tilt series.",
                "pass only one of these mdoc files (move the copy away, or narrow the --mdoc glob).",
            )
            errors[series.name] = str(error)
    return errors


def series_name_of(path: Path) -> str:
    name = path.name
    for suffix in (".mdoc", ".mrc", ".st", ".tif", ".tiff", ".eer", ".mrcs"):
        name = name.removesuffix(suffix)
    return name


def index_movies(folder: Path) -> dict[str, Path]:
    """Movie files in ``folder`` by file name."""
    if not folder.is_dir():
        raise InputError(folder, "the movie folder does not exist.", "pass --movies with the folder of the movies.")
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MOVIE_SUFFIXES}


def match_movie(movie_name: str, movies: dict[str, Path]) -> Path | None:
    """The file for an mdoc ``SubFramePath`` name: the same name, else the same name with another movie suffix.

    Only the last suffix is compared, so ``TS_01_001_3.0.mrc`` never matches ``TS_01_001_3.mrc``.
    """
    if movie_name in movies:
        return movies[movie_name]
    stem = Path(movie_name).stem
    candidates = [p for name, p in movies.items() if Path(name).stem == stem]
    return candidates[0] if len(candidates) == 1 else None


def _missing_movie(movie_name: str, movies_dir: Path) -> tuple[str, str]:
    """Why no movie file answers ``movie_name`` in ``movies_dir``: what stands in its place (a broken link, a
    folder), or that nothing does; and the fix."""
    stem = Path(movie_name).stem
    entries = sorted(
        p for p in movies_dir.iterdir()
        if p.name == movie_name or (p.stem == stem and p.suffix.lower() in MOVIE_SUFFIXES)
    )  # fmt: skip
    for entry in entries:
        if entry.is_symlink() and not entry.exists():
            return (
                f": {entry} is a broken link (to {os.readlink(entry)}, which does not exist).",
                "restore the file the link points to, or point the link at the movie.",
            )
        if entry.is_dir():
            return (
                f": {entry} is a folder, not a movie file.",
                "put the movie file in its place, or pass --movies with the folder that holds the movie files.",
            )
        if not entry.is_file():
            return f": {entry} is not a regular file (a pipe or a device).", "replace it with the movie file."
    return f", which is not in {movies_dir}.", "pass --movies with the folder that holds it."


def _resolve_pixel_spacing(series: MdocSeries, params: ImportParams) -> float:
    if params.pixel_spacing_angstrom is not None:
        return params.pixel_spacing_angstrom
    source = series.sources[0]
    values = {t.pixel_spacing_angstrom for t in series.tilts if t.pixel_spacing_angstrom is not None}
    if len(values) > 1:
        raise MdocError(
            source,
            f"contradictory pixel sizes {sorted(values)} Å between sections.",
            "pass --pixel-spacing-angstrom with the movies' pixel spacing.",
        )
    spacing = series.pixel_spacing_angstrom if series.pixel_spacing_angstrom is not None else next(iter(values), None)
    if spacing is None:
        raise MdocError(source, "gives no PixelSpacing.", "pass --pixel-spacing-angstrom.")
    if not (math.isfinite(spacing) and spacing > 0):
        raise MdocError(
            source,
            f"PixelSpacing = {spacing:g} Å is not a positive number.",
            "pass --pixel-spacing-angstrom with the movies' pixel spacing.",
        )
    binnings = {t.binning for t in series.tilts if t.binning is not None}
    if len(series.sources) == 1 and len(series.tilts) > 1 and binnings - {1.0}:
        # A tilt-series mdoc describes the saved (binned) tilt images, not the frames.
        raise MdocError(
            source,
            f"PixelSpacing {spacing} Å is that of images binned {sorted(binnings)}, not necessarily of the movies.",
            "pass --pixel-spacing-angstrom with the movies' spacing.",
        )
    return float(spacing)


def _resolve_tilt_axis(series: MdocSeries, params: ImportParams) -> tuple[float, str]:
    if params.tilt_axis_angle_deg is not None:
        return normalise_angle_deg(params.tilt_axis_angle_deg), "given by the user"
    if series.tilt_axis_angle_deg is None:
        raise MdocError(
            series.sources[0],
            "gives no tilt-axis angle.",
            "pass --tilt-axis-angle-deg (counter-clockwise from the image Y axis).",
        )
    return series.tilt_axis_angle_deg, f"from the mdoc ({series.tilt_axis_source})"


def _resolve_optics(series: MdocSeries, params: ImportParams) -> tuple[Optics, list[str]]:
    notes = []
    voltage = params.voltage_kv or series.voltage_kv
    if voltage is None:
        voltage = DEFAULT_VOLTAGE_KV
        notes.append(f"the mdoc gives no Voltage; using {DEFAULT_VOLTAGE_KV:g} kV (set --voltage-kv otherwise)")
    optics = Optics(voltage, params.cs_mm, params.amplitude_contrast, params.optics_group_name)
    return optics, notes


def _gain_for(tilt: MdocTilt, series: MdocSeries, movies_dir: Path, params: ImportParams) -> GainReference | None:
    if params.gain is not None:
        path = params.gain.resolve()
    elif tilt.gain_reference:
        name = tilt.gain_reference.replace("\\", "/").rsplit("/", 1)[-1]
        found = [d / name for d in (movies_dir, tilt.source.parent) if (d / name).is_file()]
        if not found:
            raise InputError(
                tilt.source,
                f"names gain reference {name!r}, which is not in {movies_dir}.",
                "copy it beside the movies or pass --gain.",
            )
        path = found[0]
    else:
        return None
    if not path.is_file():
        raise InputError(path, "gain reference does not exist.", "check --gain.")
    if path.suffix.lower() not in GAIN_SUFFIXES:
        raise ImageFileError(
            path,
            f"gain reference format {path.suffix!r} cannot be read.",
            "convert it to MRC (IMOD: dm2mrc gain.dm4 gain.mrc) and pass --gain gain.mrc.",
        )
    return GainReference(path, rotation_deg=params.gain_rotation_deg, flip=params.gain_flip)


def _check_movie(tilt: MdocTilt, movie: Path, spacing: float, params: ImportParams) -> tuple[MovieHeader, list[str]]:
    header = read_movie_header(movie)
    notes = []
    if tilt.num_sub_frames is not None and header.format != "eer" and header.n_frames != tilt.num_sub_frames:
        notes.append(
            f"{movie.name}: {header.n_frames} frames in the file, NumSubFrames {tilt.num_sub_frames} "
            "in the mdoc; using the file's count"
        )
    own = header.pixel_spacing_angstrom
    if (
        params.pixel_spacing_angstrom is None
        and own
        and own != 1.0
        and abs(own - spacing) > PIXEL_SPACING_TOLERANCE * spacing
    ):
        raise ImageFileError(
            movie,
            f"header pixel spacing {own:.4g} Å contradicts the mdoc's {spacing:.4g} Å ({tilt.source.name}).",
            "pass --pixel-spacing-angstrom with the right value.",
        )
    return header, notes


def import_movie_series(payload: MovieSeriesPayload, params: ImportParams, output_dir: Path) -> UnitOutput:
    """Build the tilt series of one mdoc series: movies matched, doses, order, optics and overrides resolved."""
    series, movies = payload.series, index_movies(payload.movies_dir)
    spacing = _resolve_pixel_spacing(series, params)
    axis, axis_source = _resolve_tilt_axis(series, params)
    optics, notes = _resolve_optics(series, params)
    notes += [f"WARNING: {warning}" for warning in series.warnings]
    if params.tilt_axis_angle_deg is None and (disagreement := axis_disagreement(series)):
        notes.append(f"WARNING: {disagreement}")
    notes.append(f"tilt-axis angle {axis:.2f}° {axis_source}; pixel spacing {spacing:.4g} Å")
    tilts = series.tilts
    _check_duplicate_movies(series)
    order = acquisition_order([t.section_index for t in tilts], [t.date_time for t in tilts])
    records = [
        DoseRecord(t.exposure_dose_e_per_angstrom2, t.prior_record_dose_e_per_angstrom2, t.date_time) for t in tilts
    ]
    doses = pre_exposures(
        records,
        order,
        dose_per_tilt_e_per_angstrom2=params.dose_per_tilt_e_per_angstrom2,
        source=series.sources[0],
    )
    if doses.warning is not None:
        notes.append(f"WARNING: {doses.warning}")
    rank = {position: k for k, position in enumerate(order)}
    found = [_tilt_image(tilt, movies, payload.movies_dir, series, params, spacing) for tilt in tilts]
    all_facts = _same_frame_shape([facts for facts, _ in found], params)
    images = []
    for i, (tilt, facts) in enumerate(zip(tilts, all_facts, strict=True)):
        notes.extend(found[i][1])
        if facts.excluded and not found[i][0].excluded:
            notes.append(f"tilt excluded: {facts.exclusion_reason.removeprefix('import: ')}")
        images.append(
            TiltImage(
                TiltAcquisition(
                    acquisition_index=rank[i],
                    section_index=tilt.section_index,
                    nominal_tilt_angle_deg=tilt.tilt_angle_deg,
                    pre_exposure_e_per_angstrom2=doses.pre_exposure_e_per_angstrom2[i],
                    dose_e_per_angstrom2=doses.dose_e_per_angstrom2[i],
                    nominal_defocus_angstrom=tilt.target_defocus_angstrom,
                    date_time=tilt.date_time,
                    movie_path=facts.movie_path,
                    frame_count=facts.frame_count,
                    gain=facts.gain,
                ),
                exclusion=TiltExclusion(facts.exclusion_reason) if facts.excluded else None,
            )
        )
    ts = TiltSeries(
        name=series.name,
        original_pixel_spacing_angstrom=spacing,
        optics=optics,
        tilts=tuple(images),
        nominal_tilt_axis_angle_deg=axis,
        hand=params.tomo_hand,
        sources=series.sources,
    )
    return UnitOutput(ts, tuple(notes))


def _same_frame_shape(found: list[_MovieFacts], params: ImportParams) -> list[_MovieFacts]:
    """The movies' facts, those whose frames are of another size than most of the series' named (the series
    fails) or excluded (``on_bad_movie=exclude``): a movie of another camera or mode would be blamed on the
    gain reference, or pass to a later step as a derived image of the wrong size."""
    shapes = Counter(f.frame_shape_yx for f in found if f.frame_shape_yx is not None)
    if len(shapes) < 2:
        return found
    (usual, count), total = shapes.most_common(1)[0], sum(shapes.values())
    out = []
    for facts in found:
        if facts.frame_shape_yx is None or facts.frame_shape_yx == usual:
            out.append(facts)
            continue
        (y, x), (uy, ux) = facts.frame_shape_yx, usual
        error = ImageFileError(
            facts.movie_path,
            f"frames of {y} x {x} pixels (y, x), but {count} of the series' {total} movies have {uy} x {ux}: a "
            "movie of another camera, binning or mode.",
            "put this series' movie in its place, or import with --on-bad-movie exclude to leave the tilt out.",
        )
        if params.on_bad_movie == "fail":
            raise error
        out.append(_MovieFacts(excluded=True, exclusion_reason=f"import: {error}"))
    return out


def _check_duplicate_movies(series: MdocSeries) -> None:
    counts = Counter(t.movie_name for t in series.tilts if t.movie_name)
    repeated = sorted(name for name, n in counts.items() if n > 1)
    if repeated:
        raise MdocError(
            series.sources[0],
            f"names the same movie for several tilts: {repeated[:3]}.",
            "check the mdoc for duplicated sections (e.g. an *_override.mdoc beside the original).",
        )


def _tilt_image(
    tilt: MdocTilt,
    movies: dict[str, Path],
    movies_dir: Path,
    series: MdocSeries,
    params: ImportParams,
    spacing: float,
) -> tuple[_MovieFacts, list[str]]:
    """Movie, frame count and gain of one tilt, or the tilt excluded with the reason (on_bad_movie=exclude)."""
    try:
        if not tilt.movie_name:
            raise MdocError(
                tilt.source,
                f"section {tilt.section_index} (tilt {tilt.tilt_angle_deg:.2f}°) has no SubFramePath.",
                "re-export the mdoc with frame paths, or import the tilt stack.",
            )
        movie = match_movie(tilt.movie_name, movies)
        if movie is None:
            problem, fix = _missing_movie(tilt.movie_name, movies_dir)
            raise InputError(tilt.source, f"section {tilt.section_index} names movie {tilt.movie_name!r}{problem}", fix)
        header, notes = _check_movie(tilt, movie, spacing, params)
        gain = _gain_for(tilt, series, movies_dir, params)
    except (InputError, ImageFileError) as exc:
        if params.on_bad_movie == "fail":
            raise
        return _MovieFacts(excluded=True, exclusion_reason=f"import: {exc}"), [f"tilt excluded: {exc}"]
    return _MovieFacts(movie_path=movie, frame_count=header.n_frames, gain=gain, frame_shape_yx=header.shape_yx), notes
