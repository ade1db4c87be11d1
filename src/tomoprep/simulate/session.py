"""``tomoprep simulate``: write a whole session (movies, mdoc files, gain references) and its ground truth.

Layout of the session folder::

    OUT/TS_01.mrc.mdoc            one tilt-series mdoc per series (SerialEM or Tomo5), sections in acquisition order
    OUT/frames/TS_01_000_0.0.tif  one movie per tilt (EER, TIFF or MRC)
    OUT/gain_A.mrc                gain reference(s); ``gain_A.gain`` (TIFF, as EPU writes) for EER sessions
    OUT/truth.json                the ground truth (docs/simulate.md)
    OUT/truth/TS_01_phantom.mrc   the specimen, rasterized on a coarse grid
    OUT/contact_sheet_TS_01.png   tilt images and their power spectra
    OUT/stacks/TS_01.st           with write_tilt_stack: motion-corrected-like stack, TS_01.rawtlt, TS_01.st.mdoc

Tilts are simulated one at a time and movies fraction by fraction, so memory stays at a few images whatever
the size. Everything follows from the seed: the same parameters give the same files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tomoprep import __version__
from tomoprep.errors import InputError
from tomoprep.io.imod import write_tilt_angles
from tomoprep.io.mrc import write_mrc
from tomoprep.simulate.acquisition import SeriesPlan, SeriesSettings, plan_series, session_start_time
from tomoprep.simulate.bad_tilts import PlantedDefect, plan_bad_tilts
from tomoprep.simulate.contact_sheet import write_contact_sheet
from tomoprep.simulate.gain_files import write_gain_file, write_gains
from tomoprep.simulate.mdoc_writer import MdocHeader, stack_records, tilt_records, windows_frame_path, write_mdoc
from tomoprep.simulate.params import ResolvedParams, SimulateParams
from tomoprep.simulate.phantom import Phantom, make_phantom, phantom_to_dict, rasterize
from tomoprep.simulate.tilt_movie import (
    ICE_MEAN_FREE_PATH_ANGSTROM,
    SECONDS_PER_FRAME,
    SeriesContext,
    open_stack,
    simulate_tilt,
)
from tomoprep.simulate.truth import SCHEMA_VERSION, SeriesTruth, TiltTruth, Truth, plan_fields, write_truth

# The gain files and the simulation of one tilt live in gain_files.py and tilt_movie.py; these names stay
# importable from here, where callers and tests take them.
__all__ = [
    "COMPLEX_SIZE_ANGSTROM",
    "ICE_MEAN_FREE_PATH_ANGSTROM",
    "MAX_PHANTOM_FIELD_FACTOR",
    "MAX_PHANTOM_REACH_DEG",
    "SECONDS_PER_FRAME",
    "Progress",
    "simulate_session",
    "write_gain_file",
]

Progress = Callable[[str, int, int], None]
#: Size of the phantom's complexes: about a ribosome, so that they show in single tilts as they do in real data.
COMPLEX_SIZE_ANGSTROM = 200.0
#: The phantom covers this much more than the detector (at most), so that high tilts see specimen to the edges.
MAX_PHANTOM_FIELD_FACTOR = 2.0
#: ... and reaches as far as the slab's depth seen at this tilt (at most), degrees.
MAX_PHANTOM_REACH_DEG = 70.0


def simulate_session(out_dir: Path, params: SimulateParams, *, progress: Progress | None = None) -> Truth:
    """Simulate a session into ``out_dir`` and return its truth (also written to ``out_dir/truth.json``).

    Parameters
    ----------
    out_dir
        Folder to write; created if missing, refused if not empty.
    params
        What to simulate (:class:`~tomoprep.simulate.params.SimulateParams`; ``None`` sizes from the preset).
    progress
        Called as ``progress(stage, done, total)`` after each tilt (stage: the tilt-series name).

    Raises
    ------
    InputError
        If ``out_dir`` exists and is not an empty folder.
    """
    out_dir = _prepare_out(Path(out_dir))
    resolved = params.resolve()
    seeds = np.random.SeedSequence(params.seed).spawn(resolved.n_tilt_series + 1)
    detectors, gains = write_gains(out_dir, params, resolved, np.random.default_rng(seeds[0]))
    series = []
    for index in range(resolved.n_tilt_series):
        detector = detectors[-1] if index >= _n_series_on_first_gain(params, resolved) else detectors[0]
        frames = resolved.frames_per_tilt_b if detector is not detectors[0] else resolved.frames_per_tilt
        rng = np.random.default_rng(seeds[index + 1])
        context = SeriesContext(out_dir, params, resolved, index, detector, frames, rng)
        series.append(_simulate_series(context, progress))
    truth = Truth(
        schema_version=SCHEMA_VERSION,
        generator=f"tomoprep {__version__} simulate",
        params=params.model_dump(mode="json"),
        resolved=_resolved_dict(resolved),
        gains=gains,
        tilt_series=series,
    )
    write_truth(out_dir / "truth.json", truth)
    return truth


def _prepare_out(out_dir: Path) -> Path:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "is a file" if not out_dir.is_dir() else f"is not empty ({len(list(out_dir.iterdir()))} entries)"
        raise InputError(out_dir, f"{what}; simulate writes only into a new or empty folder.", "give another folder.")
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(exist_ok=True)
    return out_dir


def _n_series_on_first_gain(params: SimulateParams, resolved: ResolvedParams) -> int:
    """Series recorded with gain A: all, or the first half (rounded up) with two gain references."""
    n = resolved.n_tilt_series
    return (n + 1) // 2 if params.two_gain_references else n


def _resolved_dict(resolved: ResolvedParams) -> dict[str, object]:
    values = dict(vars(resolved))
    values["detector_shape_yx"] = list(resolved.detector_shape_yx)
    return values


# --- one tilt series -----------------------------------------------------------------------------------


def _simulate_series(context: SeriesContext, progress: Progress | None) -> SeriesTruth:
    params, resolved, rng = context.params, context.resolved, context.rng
    settings = SeriesSettings(
        n_tilts=resolved.n_tilts,
        tilt_step_deg=resolved.tilt_step_deg,
        scheme=params.tilt_scheme,
        nominal_tilt_axis_deg=params.tilt_axis_angle_deg,
        tilt_offset_deg=params.tilt_offset_deg,
        dose_per_tilt_e_per_angstrom2=params.dose_per_tilt_e_per_angstrom2,
        defocus_range_angstrom=(params.defocus_min_um * 1e4, params.defocus_max_um * 1e4),
        astigmatism_angstrom=params.astigmatism_angstrom,
        thickness_range_angstrom=(params.thickness_min_angstrom, params.thickness_max_angstrom),
        pretilt_deg=params.pretilt_deg,
        stage_reading_decimals=2 if params.mdoc_flavour == "tomo5" else 3,
    )
    start = session_start_time(context.index, n_tilts=resolved.n_tilts)
    plan = plan_series(context.name, settings, rng=rng, start_time=start)
    defects: dict[int, PlantedDefect] = {}
    if params.bad_tilts:
        field_of_view = min(resolved.detector_shape_yx) * resolved.pixel_spacing_angstrom
        plan, defects = plan_bad_tilts(plan, params.bad_tilts, field_of_view_angstrom=field_of_view, rng=rng)
    phantom = _make_phantom(plan, resolved, rng, params)
    volume_path, voxel = _write_phantom_volume(context, phantom)
    stack = open_stack(context) if params.write_tilt_stack else None
    tilts = []
    for tilt in plan.tilts:
        tilts.append(simulate_tilt(context, phantom, tilt, stack, defect=defects.get(tilt.acquisition_index)))
        if progress is not None:
            progress(context.name, len(tilts), len(plan.tilts))
    if stack is not None:
        stack.close()
    mdoc = _write_series_mdocs(context, plan, tilts)
    sheet = context.out_dir / f"contact_sheet_{context.name}.png"
    title = f"{context.name}: {resolved.n_tilts} tilts, {resolved.pixel_spacing_angstrom:g} Å/px, frame sums"
    write_contact_sheet(sheet, context.tiles, title=title + " and power spectra")
    return _series_truth(context, plan, phantom, tilts, mdoc=mdoc, volume=(volume_path, voxel), sheet=sheet)


def _make_phantom(plan: SeriesPlan, resolved: ResolvedParams, rng: np.random.Generator, params: SimulateParams
                  ) -> Phantom:  # fmt: skip
    """A phantom wide enough that the highest tilt sees specimen up to its edges; densities as in the preset.

    The detector, turned by the tilt axis into specimen coordinates, spans a box; tilting about the specimen y
    axis stretches what it sees along x by ``1 / cos(tilt)`` (capped at :data:`MAX_PHANTOM_FIELD_FACTOR`), and
    the rays through its edges cross the slab over ``(thickness + 2 |z_offset|) tan(tilt + |pretilt|)`` more
    (the angle capped at :data:`MAX_PHANTOM_REACH_DEG`): the crowded slab then fills every tilt to its edges.
    """
    highest = max(abs(t.true_tilt_deg) for t in plan.tilts)
    factor = min(MAX_PHANTOM_FIELD_FACTOR, 1.0 / max(math.cos(math.radians(highest)), 1e-3))
    ny, nx = resolved.detector_shape_yx
    px = resolved.pixel_spacing_angstrom
    axis = math.radians(plan.nominal_tilt_axis_deg)
    wander = 2 * max(math.hypot(t.shift_x_angstrom, t.shift_y_angstrom) for t in plan.tilts) + 100.0
    box_x = (nx * abs(math.cos(axis)) + ny * abs(math.sin(axis))) * px + wander
    box_y = (nx * abs(math.sin(axis)) + ny * abs(math.cos(axis))) * px + wander
    steepest = math.radians(min(highest + abs(plan.pretilt_deg), MAX_PHANTOM_REACH_DEG))
    reach = (plan.thickness_angstrom + 2 * abs(plan.z_offset_angstrom)) * math.tan(steepest)
    size = (box_x * factor + reach, box_y)
    area_ratio = size[0] * size[1] / (nx * ny * px * px)
    return make_phantom(
        seed=int(rng.integers(2**31)),
        field_of_view_angstrom=size,
        thickness_angstrom=plan.thickness_angstrom,
        pretilt_deg=plan.pretilt_deg,
        z_offset_angstrom=plan.z_offset_angstrom,
        n_vesicles=round(resolved.n_vesicles * area_ratio),
        n_complexes=round(resolved.n_complexes * area_ratio),
        complex_size_angstrom=COMPLEX_SIZE_ANGSTROM,
        surface_particles_per_um2=params.surface_particles_per_um2,
        crowding_volume_fraction=params.crowding_volume_fraction,
    )


def _write_phantom_volume(context: SeriesContext, phantom: Phantom) -> tuple[Path, float]:
    """Rasterize the phantom over the detector's field of view at 0° on a coarse grid (small enough to keep)."""
    ny, nx = context.resolved.detector_shape_yx
    px = context.resolved.pixel_spacing_angstrom
    voxel = max(4 * px, max(nx, ny) * px / 192)
    slope = abs(math.tan(math.radians(phantom.pretilt_deg)))
    depth = phantom.thickness_angstrom * math.hypot(1.0, slope) + nx * px * slope + 2 * abs(phantom.z_offset_angstrom)
    shape = (math.ceil((depth + 200.0) / voxel), math.ceil(ny * px / voxel), math.ceil(nx * px / voxel))
    path = context.out_dir / "truth" / f"{context.name}_phantom.mrc"
    write_mrc(path, rasterize(phantom, shape_zyx=shape, voxel_size_angstrom=voxel), pixel_spacing_angstrom=voxel)
    return path, voxel


# --- mdoc, stack files and truth ------------------------------------------------------------------------


def _write_series_mdocs(context: SeriesContext, plan: SeriesPlan, tilts: list[TiltTruth]) -> Path:
    """The movie mdoc (sections in acquisition order); with a tilt stack also its .st.mdoc and .rawtlt."""
    resolved, params, flavour = context.resolved, context.params, context.params.mdoc_flavour
    two_gains = params.two_gain_references and resolved.n_tilt_series > 1
    gain_file = f"gain_{context.detector.name}{'.gain' if resolved.movie_format == 'eer' else '.mrc'}"
    records = tilt_records(
        plan.tilts,
        sub_frame_paths=[windows_frame_path(Path(t.movie).name, flavour=flavour) for t in tilts],
        n_frames=context.n_frames,
        exposure_time_s=context.n_frames * SECONDS_PER_FRAME[resolved.movie_format],
        target_defocus_angstrom=plan.target_defocus_angstrom,
        # SerialEM names the gain reference of unnormalised frames; Tomo5 does not (one gain per session).
        gain_reference=gain_file if flavour == "serialem" or two_gains else None,
        rng=context.rng,
    )
    header = MdocHeader(
        image_file=f"{context.name}.mrc",
        image_size_xy=(resolved.detector_shape_yx[1], resolved.detector_shape_yx[0]),
        pixel_spacing_angstrom=resolved.pixel_spacing_angstrom,
        voltage_kv=params.voltage_kv,
        tilt_axis_angle_deg=plan.nominal_tilt_axis_deg,
        start_time=plan.tilts[0].date_time,
    )
    path = context.out_dir / f"{context.name}.mrc.mdoc"
    write_mdoc(path, header, records, flavour=flavour)
    if params.write_tilt_stack:
        stacks = context.out_dir / "stacks"
        sections = stack_records(records, [t.stack_index for t in plan.tilts])
        stack_header = dataclasses.replace(header, image_file=f"{context.name}.st", data_mode=2)
        write_mdoc(stacks / f"{context.name}.st.mdoc", stack_header, sections, flavour=flavour)
        write_tilt_angles(stacks / f"{context.name}.rawtlt", [r.tilt_angle_deg for r in sections])
    return path


def _series_truth(
    context: SeriesContext,
    plan: SeriesPlan,
    phantom: Phantom,
    tilts: list[TiltTruth],
    *,
    mdoc: Path,
    volume: tuple[Path, float],
    sheet: Path,
) -> SeriesTruth:
    params, resolved = context.params, context.resolved
    stack = f"stacks/{context.name}" if params.write_tilt_stack else None
    return SeriesTruth(
        **plan_fields(plan),
        mdoc=mdoc.name,
        movie_format=resolved.movie_format,
        gain=context.detector.name,
        detector_shape_yx=list(resolved.detector_shape_yx),
        pixel_spacing_angstrom=resolved.pixel_spacing_angstrom,
        voltage_kv=params.voltage_kv,
        cs_mm=params.cs_mm,
        amplitude_contrast=params.amplitude_contrast,
        hand=params.hand,
        ice_mean_free_path_angstrom=ICE_MEAN_FREE_PATH_ANGSTROM,
        phantom=phantom_to_dict(phantom),
        phantom_volume=volume[0].relative_to(context.out_dir).as_posix(),
        phantom_volume_voxel_size_angstrom=volume[1],
        contact_sheet=sheet.name,
        tilts=tilts,
        stack=None if stack is None else f"{stack}.st",
        stack_rawtlt=None if stack is None else f"{stack}.rawtlt",
        stack_mdoc=None if stack is None else f"{stack}.st.mdoc",
    )
