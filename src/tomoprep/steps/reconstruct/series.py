"""The reconstruction step's work on one tilt series: tomograms at every binning asked for, their odd/even halves,
aligned stacks, deconvolved copies and pictures.

The full images are read once for all binnings, then the odd and then the even frame sums, so that one set of
binned stacks is in memory at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import mrcfile
import torch

from tomoprep.algorithms.backprojection import align_images
from tomoprep.algorithms.reconstruction import reconstruct_tomogram
from tomoprep.errors import InputError
from tomoprep.io.tomogram_files import new_tomogram, write_aligned_stack
from tomoprep.model import TiltSeries, Tomogram
from tomoprep.steps.base import WARNING_PREFIX, UnitOutput
from tomoprep.steps.deconvolve.series import deconvolve_tomogram
from tomoprep.steps.device import device_for
from tomoprep.steps.reconstruct.geometry import (
    SeriesGeometry,
    defocus_hand,
    mean_defocus_angstrom,
    missing_ctf,
    projections_at,
    series_geometry,
    tomogram_thickness,
)
from tomoprep.steps.reconstruct.images import (
    CtfCorrection,
    ImageReader,
    ctf_corrected,
    dose_filtered,
    even_image,
    has_halves,
    odd_image,
    read_binned_stacks,
)
from tomoprep.steps.reconstruct.params import ReconstructParams
from tomoprep.steps.reconstruct.plots import write_slices_png
from tomoprep.steps.tilt_images import series_pixel_spacing


@dataclass(frozen=True)
class Plan:
    """What one series' reconstruction does, decided before any image is read."""

    geometry: SeriesGeometry
    pixel_spacing_angstrom: float
    thickness_angstrom: float
    dose_filter: bool
    ctf: CtfCorrection | None
    halves: bool


def plan_series(ts: TiltSeries, params: ReconstructParams) -> tuple[Plan, list[str]]:
    """The plan for ``ts`` and the notes saying what it uses and what it cannot do (warnings)."""
    try:
        geometry = series_geometry(ts)
    except ValueError as error:
        raise InputError(ts.sources[0] if ts.sources else None, f"{error}.", "include more tilts (tomoprep clean "
                         "--include) or align the series (tomoprep align).") from None  # fmt: skip
    notes = list(geometry.notes)
    thickness, source = tomogram_thickness(ts, params)
    notes.append(f"{len(geometry.tilts)} tilts, {'aligned' if geometry.aligned else 'nominal geometry'}; "
                 f"depth {thickness:.0f} Å ({source})")  # fmt: skip
    dose = params.dose_filter and ts.dose_known
    if dose:
        notes.append("each tilt exposure-filtered for its pre-exposure and dose")
    elif params.dose_filter:
        notes.append(f"exposure filter skipped: the doses of {ts.name} are not known (import with the dose)")
    ctf = None
    if params.ctf_correction != "none":
        why_not = missing_ctf(ts, geometry.tilts)
        if why_not is None:
            hand, said = defocus_hand(ts)
            mode: Literal["phase_flip", "wiener"] = "wiener" if params.ctf_correction == "wiener" else "phase_flip"
            ctf = CtfCorrection(mode, hand, params.wiener_snr)
            notes.append(f"CTF correction {params.ctf_correction} with the defocus {said}")
        else:
            notes.append(f"{WARNING_PREFIX} CTF-corrected tomograms refused: {why_not}; the tomograms are made "
                         "without CTF correction")  # fmt: skip
    halves = params.odd_even and has_halves(geometry.tilts)
    if params.odd_even and not halves:
        notes.append("no odd/even frame sums: half tomograms not made (motioncorr --odd-even writes them)")
    return Plan(geometry, series_pixel_spacing(ts), thickness, dose, ctf, halves), notes


def prepared(stack: torch.Tensor, ts: TiltSeries, plan: Plan, binning: int) -> torch.Tensor:
    """A binned stack exposure-filtered and CTF-corrected as planned."""
    spacing = plan.pixel_spacing_angstrom * binning
    tilts = plan.geometry.tilts
    if plan.dose_filter:
        stack = dose_filtered(stack, ts, tilts, pixel_spacing_angstrom=spacing)
    if plan.ctf is not None:
        projections = projections_at(plan.geometry.poses, spacing)
        stack = ctf_corrected(stack, ts, tilts, projections, plan.ctf, pixel_spacing_angstrom=spacing)
    return stack


def back_project(stack: torch.Tensor, plan: Plan, binning: int, params: ReconstructParams, path: Path) -> tuple[
        int, int, int]:  # fmt: skip
    """Reconstruct one prepared binned stack into the MRC file ``path``, slab by slab (the volume is never held
    whole in memory); returns its size ``(x, y, z)``."""
    spacing = plan.pixel_spacing_angstrom * binning
    thickness_px = max(1, round(plan.thickness_angstrom / spacing))
    shape = (thickness_px, stack.shape[-2], stack.shape[-1])
    with new_tomogram(path, shape, voxel_spacing_angstrom=spacing) as volume:
        reconstruct_tomogram(stack, projections_at(plan.geometry.poses, spacing), thickness_px=thickness_px,
                             sirt_iterations=params.sirt_filter_iterations, out=volume)  # fmt: skip
    return shape[2], shape[1], shape[0]


def tomogram_path(output_dir: Path, name: str, binning: int, suffix: str = "") -> Path:
    """``<output_dir>/tomograms/<name>_bin<binning><suffix>.mrc``."""
    return output_dir / "tomograms" / f"{name}_bin{binning}{suffix}.mrc"


def _write_aligned_stack(stack: torch.Tensor, plan: Plan, binning: int, path: Path) -> None:
    projections = projections_at(plan.geometry.poses, plan.pixel_spacing_angstrom * binning)
    shifts = torch.tensor([[p.shift_x_px, p.shift_y_px] for p in projections], dtype=torch.float64)
    aligned = align_images(stack, axis_deg=[p.z_rot_deg for p in projections], shifts_px=shifts)
    write_aligned_stack(path, aligned.cpu().numpy(), pixel_spacing_angstrom=plan.pixel_spacing_angstrom * binning,
                        tilt_angles_deg=[p.y_tilt_deg for p in projections],
                        x_tilts_deg=[p.x_tilt_deg for p in projections])  # fmt: skip


def full_tomograms(ts: TiltSeries, plan: Plan, params: ReconstructParams, output_dir: Path,
                   device: torch.device) -> dict[int, Tomogram]:  # fmt: skip
    """The tomogram of every binning (with its picture and, when asked, its aligned stack)."""
    stacks = read_binned_stacks(plan.geometry.tilts, params.binning, device=device)
    tomograms = {}
    for binning in params.binning:
        stack = prepared(stacks.pop(binning), ts, plan, binning)
        spacing = plan.pixel_spacing_angstrom * binning
        if params.aligned_stacks:
            _write_aligned_stack(stack, plan, binning, output_dir / "aligned_stacks" / f"{ts.name}_bin{binning}.mrc")
        path = tomogram_path(output_dir, ts.name, binning)
        size = back_project(stack, plan, binning, params, path)
        corrected = "" if plan.ctf is None else f", CTF {plan.ctf.mode}"
        with mrcfile.mmap(path, mode="r") as written:  # the picture reads its few central slices only
            write_slices_png(path.with_suffix(".png"), written.data, voxel_spacing_angstrom=spacing,
                             title=f"{ts.name}, bin {binning} ({spacing:.1f} Å voxels{corrected})")  # fmt: skip
        tomograms[binning] = Tomogram(path, float(binning), spacing, size,
                                      ctf_correction="none" if plan.ctf is None else plan.ctf.mode)  # fmt: skip
    return tomograms


def half_tomograms(ts: TiltSeries, plan: Plan, params: ReconstructParams, output_dir: Path,
                   device: torch.device, tomograms: dict[int, Tomogram]) -> None:  # fmt: skip
    """Reconstruct the odd and the even frame sums at every binning into ``_half1`` and ``_half2``."""
    read: ImageReader
    for half, read in ((1, odd_image), (2, even_image)):
        stacks = read_binned_stacks(plan.geometry.tilts, params.binning, read=read, device=device)
        for binning in params.binning:
            path = tomogram_path(output_dir, ts.name, binning, f"_half{half}")
            back_project(prepared(stacks.pop(binning), ts, plan, binning), plan, binning, params, path)
            made = tomograms[binning]
            tomograms[binning] = replace(made, half1_path=path) if half == 1 else replace(made, half2_path=path)


def deconvolved(ts: TiltSeries, plan: Plan, params: ReconstructParams, output_dir: Path, device: torch.device,
                tomograms: dict[int, Tomogram]) -> str:  # fmt: skip
    """Deconvolve every tomogram (``--deconvolve``) with the series' mean CTF defocus; the note on what was done."""
    from tomoprep.io.mrc import read_mrc

    defocus = mean_defocus_angstrom(plan.geometry.tilts)
    if defocus is None:
        return (f"{WARNING_PREFIX} deconvolution refused: tilt series {ts.name} has no CTF estimate, so the filter "
                "has no defocus; run tomoprep ctf first (or tomoprep deconvolve --defocus-angstrom)")  # fmt: skip
    for binning, tomogram in tomograms.items():
        volume = torch.from_numpy(read_mrc(tomogram.path)).to(device)
        tomograms[binning] = deconvolve_tomogram(volume, ts, tomogram, params, defocus_angstrom=defocus,
                                                 output_dir=output_dir)  # fmt: skip
    return f"tomograms deconvolved at the mean defocus {defocus / 1e4:.2f} µm"


def reconstruct_series(ts: TiltSeries, params: ReconstructParams, output_dir: Path) -> UnitOutput:
    """Reconstruct one tilt series at every binning of ``params`` (module notes)."""
    plan, notes = plan_series(ts, params)
    device = device_for(params.device)
    tomograms = full_tomograms(ts, plan, params, output_dir, device)
    if plan.halves:
        half_tomograms(ts, plan, params, output_dir, device, tomograms)
    if params.deconvolve:
        notes.append(deconvolved(ts, plan, params, output_dir, device, tomograms))
    made = sorted(tomograms.values(), key=lambda t: t.binning)
    sizes = ", ".join(f"bin {t.binning:g}: {t.size_xyz[0]}×{t.size_xyz[1]}×{t.size_xyz[2]}" for t in made)
    notes.append(f"tomograms {sizes}{' with halves' if plan.halves else ''}")
    return UnitOutput(replace(ts, tomograms=tuple(made)), tuple(notes))
