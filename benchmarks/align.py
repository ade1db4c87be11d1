"""Tilt-series alignment: tomoprep against teamtomo's torch-tiltxcorr and torch-refine-tilt-axis-angle.

Simulates tilt series with known geometry (tilt axis, tilt offset, specimen pretilt and thickness, stage shifts,
defocus hand), then runs on each, one after the other in one process with the same number of threads:

- tomoprep ``align_series`` (coarse stretched correlation, common-line axis, projection matching, slab
  thickness and tilt offset) on the stack Fourier-binned to 128 px, and ``hand_evidence`` (the defocus gradient
  across the tilt axis) on the unbinned stack;
- torch-tiltxcorr (``tiltxcorr``, nominal axis) on the same binned stack for the shifts;
- torch-refine-tilt-axis-angle on that stack shifted by tiltxcorr's shifts (it expects a translationally
  aligned series) for the axis;
- torch-tiltxcorr's ``tiltxcorr_with_sample_tilt_estimation`` (nominal axis), its only estimate of a tilt offset.

The peers are optional: without them only tomoprep runs. Scores, all against the simulation's truth:

- shift: RMS over tilts (px of the 128-px working images) of estimate − truth, after removing the 3-D
  translation of the specimen centre that fits best (shifts are defined only up to it), both in RELION's sense
  (where the specimen centre lands relative to the image centre); tiltxcorr's ``(y, x)`` shifts, which move each
  image onto the tilt nearest 0°, are that with the opposite sign;
- axis: estimate − mean true axis, folded into ±90°; "180°" says whether the estimate was within 90° of the
  truth (projections alone cannot tell ``a`` from ``a + 180°``; the defocus hand measured for ``a`` can);
- offset: estimated tilt offset − (true tilt offset + pretilt), the offset that makes the slab flat;
- thickness: measured slab thickness / true thickness − 1;
- hand: the hand the defocus gradient shows for the estimated axis, against the simulated one.

The series cover 5120 Å at 4 Å per pixel (1280²), so the working pixel is 40 Å; the hand needs the unbinned
images' Thon rings out to 8 Å. Times are wall seconds of each call (simulation excluded).

Then tomoprep alone on stacks of the second, independent generator (:mod:`tomoprep.simulate.blob_stack`:
Gaussian blobs in a soft slab, no CTF, noise as strong as the signal; 41 tilts of ±60°, 256² at 10 Å, the
nominal axis 1.7-2° off), scored the same way at their own pixels, with a summary line for each generator. A
thickness that is not reported (no slab found with confidence) shows as "—" and is counted.

    python benchmarks/align.py --quick        # 3 series of 21 tilts and 3 blob stacks
    python benchmarks/align.py                # 6 series of 31 tilts and 6 blob stacks
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine

THREADS = 2
WORKING_PX = 128  # working image width, pixels, for every method
DETECTOR_PX = 1280
PIXEL_SPACING_ANGSTROM = 4.0


@dataclass(frozen=True)
class Case:
    """One simulated series: nominal axis (degrees), pretilt (degrees), thickness (Å), hand, seed."""

    axis_deg: float
    pretilt_deg: float
    thickness_angstrom: float
    hand: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.axis_deg:+.0f} {self.pretilt_deg:.0f} {self.thickness_angstrom:.0f} {self.hand:+d}"


FULL = (
    Case(85, 0, 1200, -1, 1),
    Case(-95, 10, 2500, 1, 2),
    Case(178, 10, 1200, -1, 3),
    Case(-10, 0, 2500, 1, 4),
    Case(85, 10, 2500, -1, 5),
    Case(-10, 10, 1200, 1, 6),
)
QUICK = FULL[:3]


@dataclass
class Row:
    """One method on one series; ``None`` where the method does not estimate the quantity."""

    method: str
    seconds: float
    shift_px: float | None = None
    axis_deg: float | None = None
    axis_right: bool | None = None
    offset_deg: float | None = None
    thickness_pct: float | None = None
    hand_right: bool | None = None


@dataclass(frozen=True)
class Series:
    """A simulated series, stack sections in tilt order, and its truth."""

    full: np.ndarray  # (n, y, x) unbinned
    images: torch.Tensor  # (n, 128, 128) working images
    working_px_angstrom: float
    nominal_tilts_deg: list[float]
    truth: object  # tomoprep.simulate.truth.SeriesTruth
    tilts: list  # TiltTruth in stack order


def machine() -> str:
    """One line naming the machine and the packages this ran with."""
    from importlib.metadata import PackageNotFoundError, version

    peers = []
    for name in ("torch-tiltxcorr", "torch-refine-tilt-axis-angle"):
        try:
            peers.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            peers.append(f"{name} not installed")
    return describe_machine(THREADS, packages="; ".join(peers))


def simulate(case: Case, folder: Path, *, quick: bool) -> Series:
    """Simulate ``case`` into ``folder`` and read its stack."""
    from tomoprep.algorithms.fourier import fourier_bin
    from tomoprep.io.mrc import read_mrc
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session

    tilting = {"n_tilts": 21, "tilt_step_deg": 6.0} if quick else {}
    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2,
        pixel_spacing_angstrom=PIXEL_SPACING_ANGSTROM, detector_size_px=DETECTOR_PX,
        thickness_min_angstrom=case.thickness_angstrom, thickness_max_angstrom=case.thickness_angstrom,
        n_complexes=300, tilt_axis_angle_deg=case.axis_deg, pretilt_deg=case.pretilt_deg, hand=case.hand,
        seed=case.seed, **tilting,
    )  # fmt: skip
    truth = simulate_session(folder, params).tilt_series[0]
    tilts = sorted(truth.tilts, key=lambda t: t.stack_index)
    full = read_mrc(folder / "stacks" / f"{truth.name}.st")
    factor = full.shape[-1] / WORKING_PX
    return Series(
        full=full,
        images=fourier_bin(torch.from_numpy(full), factor),
        working_px_angstrom=truth.pixel_spacing_angstrom * factor,
        nominal_tilts_deg=[t.nominal_tilt_deg for t in tilts],
        truth=truth,
        tilts=tilts,
    )


def shift_error_px(series: Series, shifts_px: np.ndarray) -> float:
    """RMS of ``shifts_px`` ``(n, 2)`` (x, y) minus the truth, less the best-fitting 3-D specimen translation."""
    from tomoprep.algorithms.tilt_geometry import projection_rotation

    true = np.array([[t.shift_x_angstrom, t.shift_y_angstrom] for t in series.tilts]) / series.working_px_angstrom
    design = np.concatenate(
        [
            projection_rotation(y_tilt_deg=t.true_tilt_deg, z_rot_deg=t.true_tilt_axis_deg).numpy()[:2]
            for t in series.tilts
        ]
    )
    difference = (np.asarray(shifts_px, dtype=np.float64) - true).reshape(-1)
    translation, *_ = np.linalg.lstsq(design, difference, rcond=None)
    residual = (difference - design @ translation).reshape(-1, 2)
    return float(np.sqrt((residual**2).sum(axis=1).mean()))


def axis_error(series: Series, axis_deg: float) -> tuple[float, bool]:
    """Error of ``axis_deg`` folded into ±90° (degrees), and whether it lies within 90° of the truth."""
    difference = (axis_deg - series.truth.true_tilt_axis_deg + 180.0) % 360.0 - 180.0
    right = abs(difference) <= 90.0
    return (difference if right else difference - math.copysign(180.0, difference)), right


def flat_offset_deg(series: Series) -> float:
    """The tilt offset that makes the simulated slab flat: true offset plus pretilt, degrees."""
    return series.truth.tilt_offset_deg + series.truth.pretilt_deg


def run_tomoprep(series: Series) -> list[Row]:
    from tomoprep.algorithms.defocus_gradient import hand_evidence
    from tomoprep.algorithms.series_alignment import AlignmentOptions, align_series

    truth = series.truth
    start = time.perf_counter()
    options = AlignmentOptions(pixel_spacing_angstrom=series.working_px_angstrom)
    result = align_series(
        series.images, series.nominal_tilts_deg, axis_deg=truth.nominal_tilt_axis_deg, options=options
    )
    align_seconds = time.perf_counter() - start
    axis, right = axis_error(series, result.axis_deg)
    start = time.perf_counter()
    evidence = hand_evidence(
        series.full, result.tilts_deg, axis_deg=result.axis_deg, pixel_spacing_angstrom=truth.pixel_spacing_angstrom,
        voltage_kv=truth.voltage_kv, cs_mm=truth.cs_mm, amplitude_contrast=truth.amplitude_contrast,
    )  # fmt: skip
    hand_seconds = time.perf_counter() - start
    return [
        Row(
            "tomoprep align",
            align_seconds,
            shift_px=shift_error_px(series, result.shifts_px),
            axis_deg=axis,
            axis_right=right,
            offset_deg=result.tilt_offset_deg - flat_offset_deg(series),
            thickness_pct=100.0 * (result.slab.thickness * series.working_px_angstrom / truth.thickness_angstrom - 1),
        ),
        Row("tomoprep hand", hand_seconds, hand_right=evidence.hand == truth.hand),
    ]


#: Independent stacks: axes in every quadrant, nominal axes 1.7-2° off either way, offsets to ±15° with
#: pretilts, thin and thick slabs, a small stack. Label: true axis °, flat offset °, thickness Å, size px.
BLOB_CASES = {
    "blob -95 3.5 480 256": {"seed": 1},
    "blob 84 -6 640 256": {"seed": 2, "tilt_axis_deg": 84.3, "nominal_axis_error_deg": 1.7, "stage_offset_deg": -6.0,
                           "thickness_px": 64},
    "blob 30 8 200 256": {"seed": 3, "tilt_axis_deg": 30.0, "nominal_axis_error_deg": -1.8, "stage_offset_deg": 12.0,
                          "pretilt_deg": -4.0, "thickness_px": 20},
    "blob -140 -10 1000 256": {"seed": 4, "tilt_axis_deg": -140.0, "nominal_axis_error_deg": 1.9,
                               "stage_offset_deg": -15.0, "pretilt_deg": 5.0, "thickness_px": 100},
    "blob 175 5 560 256": {"seed": 5, "tilt_axis_deg": 175.0, "nominal_axis_error_deg": -2.0, "stage_offset_deg": 5.0,
                           "thickness_px": 56},
    "blob -20 -3 400 128": {"seed": 6, "size_px": 128, "tilt_axis_deg": -20.0, "stage_offset_deg": -3.0,
                            "thickness_px": 40},
}  # fmt: skip


def run_blob_stack(spec_fields: dict) -> Row:
    """tomoprep's alignment of one blob stack (its own pixels, as the align step works on 256² at 10 Å)."""
    from tomoprep.algorithms.series_alignment import AlignmentOptions, align_series
    from tomoprep.algorithms.tilt_geometry import projection_rotation
    from tomoprep.simulate.blob_stack import BlobStackSpec, make_blob_stack

    stack, truth = make_blob_stack(BlobStackSpec(**spec_fields))
    spacing = truth.pixel_spacing_angstrom
    options = AlignmentOptions(max_thickness_px=round(6000 / spacing), pixel_spacing_angstrom=spacing)
    start = time.perf_counter()
    result = align_series(torch.from_numpy(stack), truth.nominal_tilts_deg, axis_deg=truth.nominal_tilt_axis_deg,
                          options=options)  # fmt: skip
    seconds = time.perf_counter() - start
    design = np.concatenate([projection_rotation(y_tilt_deg=t, z_rot_deg=truth.tilt_axis_deg).numpy()[:2]
                             for t in truth.tilts_deg])  # fmt: skip
    difference = (result.shifts_px - np.asarray(truth.shifts_px)).reshape(-1)
    translation, *_ = np.linalg.lstsq(design, difference, rcond=None)
    residual = (difference - design @ translation).reshape(-1, 2)
    axis = (result.axis_deg - truth.tilt_axis_deg + 90.0) % 180.0 - 90.0
    thickness = 100.0 * (result.slab.thickness / truth.thickness_px - 1) if result.slab_found else None
    return Row("tomoprep align", seconds, shift_px=float(np.sqrt((residual**2).sum(axis=1).mean())), axis_deg=axis,
               offset_deg=result.tilt_offset_deg - truth.flat_tilt_offset_deg, thickness_pct=thickness)  # fmt: skip


def peers() -> dict[str, object]:
    """The peers' functions that can be imported, by name."""
    found: dict[str, object] = {}
    try:
        from torch_tiltxcorr import tiltxcorr, tiltxcorr_with_sample_tilt_estimation

        found.update(tiltxcorr=tiltxcorr, sample_tilt=tiltxcorr_with_sample_tilt_estimation)
    except ImportError:
        pass
    try:
        from torch_refine_tilt_axis_angle import refine_tilt_axis_angle

        found["refine_axis"] = refine_tilt_axis_angle
    except ImportError:
        pass
    return found


def warm_up(found: dict[str, object]) -> None:
    """Call each peer once on a tiny series, so that no one-off start-up cost lands in the first case's time."""
    images, tilts = torch.randn(3, 64, 64), torch.tensor([-3.0, 0.0, 3.0])
    if "tiltxcorr" in found:
        found["tiltxcorr"](images, tilts, tilt_axis_angle=85.0)
    if "refine_axis" in found:
        found["refine_axis"](images, tilt_axis_angle=85.0)


def relion_shifts(shifts_yx: torch.Tensor) -> np.ndarray:
    """tiltxcorr's ``(y, x)`` shifts (moving each image onto the reference) as RELION's ``(x, y)``."""
    return -shifts_yx.numpy()[:, ::-1].astype(np.float64)


def run_peers(series: Series, found: dict[str, object]) -> list[Row]:
    from tomoprep.algorithms.fourier import fourier_shift

    rows, images, axis0 = [], series.images, series.truth.nominal_tilt_axis_deg
    tilts = torch.tensor(series.nominal_tilts_deg)
    aligned = images
    if "tiltxcorr" in found:
        start = time.perf_counter()
        shifts = found["tiltxcorr"](images, tilts, tilt_axis_angle=axis0)
        rows.append(
            Row("tiltxcorr", time.perf_counter() - start, shift_px=shift_error_px(series, relion_shifts(shifts)))
        )
        aligned = fourier_shift(images, shifts)  # the content moves by +shift, as tiltxcorr means it
    if "refine_axis" in found:
        start = time.perf_counter()
        axis = found["refine_axis"](aligned, tilt_axis_angle=axis0)
        error, right = axis_error(series, axis)
        rows.append(Row("refine-tilt-axis-angle", time.perf_counter() - start, axis_deg=error, axis_right=right))
    if "sample_tilt" in found:
        start = time.perf_counter()
        shifts, sample_tilt = found["sample_tilt"](images, tilts, tilt_axis_angle=axis0)
        rows.append(
            Row(
                "tiltxcorr sample tilt",
                time.perf_counter() - start,
                shift_px=shift_error_px(series, relion_shifts(shifts)),
                offset_deg=sample_tilt - flat_offset_deg(series),
            )
        )
    return rows


HEADER = (
    f"{'case':18} {'method':23} {'s':>6} {'shift px':>8} {'axis °':>7} {'180°':>5} {'offset °':>8} "
    f"{'thick %':>7} {'hand':>5}"
)


def _cell(value: float | bool | None, width: int, digits: int = 2) -> str:
    if value is None:
        return f"{'—':>{width}}"
    if isinstance(value, bool):
        return f"{'right' if value else 'wrong':>{width}}"
    return f"{value:{width}.{digits}f}"


def format_row(label: str, row: Row) -> str:
    return (
        f"{label:18} {row.method:23} {row.seconds:6.1f} {_cell(row.shift_px, 8)} {_cell(row.axis_deg, 7)} "
        f"{_cell(row.axis_right, 5)} {_cell(row.offset_deg, 8)} {_cell(row.thickness_pct, 7, 1)} "
        f"{_cell(row.hand_right, 5)}"
    )


def summary(rows: list[tuple[str, Row]]) -> str:
    """The closing line: RMS over series of the shift error, max |error| of axis, offset and thickness (and how
    many thicknesses were not reported)."""

    def pick(method: str, field: str) -> list[float]:
        return [getattr(r, field) for _, r in rows if r.method == method and getattr(r, field) is not None]

    shift = math.sqrt(np.mean(np.square(pick("tomoprep align", "shift_px"))))
    axis, offset = (
        max(map(abs, pick("tomoprep align", "axis_deg"))),
        max(map(abs, pick("tomoprep align", "offset_deg"))),
    )
    thicknesses = pick("tomoprep align", "thickness_pct")
    thickness = max(map(abs, thicknesses)) if thicknesses else math.nan
    unreported = sum(1 for _, r in rows if r.method == "tomoprep align") - len(thicknesses)
    hands = pick("tomoprep hand", "hand_right")
    theirs = pick("tiltxcorr", "shift_px")
    hand = f", hand {sum(hands)}/{len(hands)}" if hands else ""
    peer = f"; tiltxcorr shift_rms {math.sqrt(np.mean(np.square(theirs))):.2f} px" if theirs else ""
    return (
        f"align: shift_rms {shift:.2f} px, axis_err {axis:.2f} deg, offset_err {offset:.2f} deg, "
        f"thickness_err {thickness:.1f} % ({unreported} not reported){hand}{peer}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 series of 21 tilts")
    parser.add_argument("--keep", type=Path, default=None, help="simulate into this folder and keep it")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    root = args.keep or Path(tempfile.mkdtemp(prefix="tomoprep_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    found = peers()
    print(f"machine: {machine()}")
    if "tiltxcorr" not in found or "refine_axis" not in found:
        print("peers missing: pip install torch-tiltxcorr torch-refine-tilt-axis-angle; the others run without them")
    warm_up(found)
    print(
        f"shift: RMS px at {WORKING_PX} px working images after the best 3-D translation; axis: error folded into "
        "±90°, 180°: within 90° of the truth; offset: minus (true offset + pretilt); thick: slab thickness error"
    )
    print("case: nominal axis °, pretilt °, thickness Å, hand; summary: RMS over series (shift), max |error| (others)")
    print(HEADER, flush=True)
    rows = []
    for index, case in enumerate(QUICK if args.quick else FULL):
        series = simulate(case, root / f"series_{index}", quick=args.quick)
        for row in run_tomoprep(series) + run_peers(series, found):
            rows.append((case.label, row))
            print(format_row(case.label, row), flush=True)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    blob_rows = []
    for label, spec in list(BLOB_CASES.items())[: 3 if args.quick else None]:
        row = run_blob_stack(spec)
        blob_rows.append((label, row))
        print(format_row(label, row), flush=True)
    print(f"simulator:   {summary(rows)}")
    print(f"blob stacks: {summary(blob_rows)}")


if __name__ == "__main__":
    main()
