"""One tilt of a simulated session: its motion, its expected image on a padded grid, its movie file.

A tilt's movie is simulated fraction by fraction (:func:`tomoprep.simulate.frames.simulate_movie`) from an
expected image that extends beyond the detector by what motion and the CTF's delocalisation bring in; its frame
sum becomes a tile of the contact sheet and, with ``write_tilt_stack``, its motion-corrected sum a stack section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import scipy.fft

from tomoprep.simulate.acquisition import TiltPlan
from tomoprep.simulate.bad_tilts import PlantedDefect, apply_defect, blur_margin_px
from tomoprep.simulate.contact_sheet import SheetTile, make_tile
from tomoprep.simulate.ctf import electron_wavelength_angstrom
from tomoprep.simulate.detector import Detector
from tomoprep.simulate.frames import TiltMotion, deform, make_tilt_motion, simulate_movie, smooth_deformation
from tomoprep.simulate.imaging import Microscope, TiltCtf, TiltGeometry, expected_image
from tomoprep.simulate.mdoc_writer import movie_name
from tomoprep.simulate.movie_files import movie_suffix, open_movie
from tomoprep.simulate.params import ResolvedParams, SimulateParams
from tomoprep.simulate.phantom import Phantom
from tomoprep.simulate.truth import TiltTruth, tilt_truth

#: Seconds per movie frame: a Falcon's EER frame, a K3 frame.
SECONDS_PER_FRAME = {"eer": 0.004, "tiff": 0.1, "mrc": 0.1}
#: Mean free path of inelastic scattering in vitreous ice used for the images (Å).
ICE_MEAN_FREE_PATH_ANGSTROM = 3500.0


@dataclass
class SeriesContext:
    """What every tilt of one series shares: where to write, the settings, the camera, the random state."""

    out_dir: Path
    params: SimulateParams
    resolved: ResolvedParams
    index: int
    detector: Detector
    n_frames: int
    rng: np.random.Generator
    tiles: list[SheetTile] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"TS_{self.index + 1:02d}"


def open_stack(context: SeriesContext) -> mrcfile.mrcfile.MrcFile:
    """The series' tilt stack (``stacks/TS_01.st``, float32), open for writing one section per tilt."""
    folder = context.out_dir / "stacks"
    folder.mkdir(exist_ok=True)
    shape = (context.resolved.n_tilts, *context.resolved.detector_shape_yx)
    stack = mrcfile.new_mmap(folder / f"{context.name}.st", shape=shape, mrc_mode=2, overwrite=True)
    stack.voxel_size = context.resolved.pixel_spacing_angstrom
    return stack


def simulate_tilt(
    context: SeriesContext,
    phantom: Phantom,
    tilt: TiltPlan,
    stack: mrcfile.mrcfile.MrcFile | None,
    *,
    defect: PlantedDefect | None = None,
) -> TiltTruth:
    """One tilt: its motion, expected image and movie; its tile on the contact sheet and its stack section.

    A planted ``defect`` (:mod:`tomoprep.simulate.bad_tilts`) changes the expected image before the electrons
    are counted.
    """
    resolved = context.resolved
    px, (ny, nx) = resolved.pixel_spacing_angstrom, resolved.detector_shape_yx
    motion = make_tilt_motion(
        context.n_frames,
        movie_format=resolved.movie_format,
        dose_e_per_angstrom2=tilt.dose_e_per_angstrom2,
        tilt_deg=tilt.nominal_tilt_deg,
        local_motion_angstrom=context.params.local_motion_angstrom,
        field_of_view_angstrom=nx * px,
        rng=context.rng,
        jitter_step_angstrom=context.params.jitter_step_angstrom,
    )
    image = _expected_image(context, phantom, tilt, motion, extra_margin_px=blur_margin_px(defect, px))
    deformation = None
    if context.params.tilt_deformation_angstrom > 0:
        deformation = smooth_deformation(context.rng, context.params.tilt_deformation_angstrom, nx * px)
        image = deform(image, deformation, pixel_spacing_angstrom=px)
    if defect is not None:
        image = apply_defect(image, defect, detector_shape_yx=(ny, nx), pixel_spacing_angstrom=px)
    name = movie_name(context.name, tilt.acquisition_index, tilt.intended_tilt_deg, movie_suffix(resolved.movie_format))
    electrons_per_frame = tilt.dose_e_per_angstrom2 * px**2 / context.n_frames
    peak = max(float(image.max()) * 1.2, 15.0) * electrons_per_frame  # hot pixels count up to 15x the mean
    sink = open_movie(
        context.out_dir / "frames" / name,
        movie_format=resolved.movie_format,
        shape_yx=(ny, nx),
        n_frames=context.n_frames,
        max_counts_per_frame=peak + 6 * math.sqrt(peak) + 6,
        pixel_spacing_angstrom=px,
        eer_metadata=_eer_metadata(resolved, tilt, context.n_frames),
    )
    result = simulate_movie(
        sink,
        image,
        detector=context.detector,
        motion=motion,
        dose_e_per_angstrom2=tilt.dose_e_per_angstrom2,
        pixel_spacing_angstrom=px,
        rng=context.rng,
        motion_corrected=stack is not None,
    )
    if stack is not None and result.motion_corrected_sum is not None:
        stack.data[tilt.stack_index] = result.motion_corrected_sum
    context.tiles.append(make_tile(result.frame_sum, tilt_deg=tilt.nominal_tilt_deg))
    movie = f"frames/{name}"
    return tilt_truth(tilt, motion, movie=movie, gain=context.detector.name, fraction_counts=result.fraction_counts,
                      defect=defect, deformation=deformation)  # fmt: skip


def _expected_image(
    context: SeriesContext, phantom: Phantom, tilt: TiltPlan, motion: TiltMotion, *, extra_margin_px: int = 0
) -> np.ndarray:
    """The tilt's expected image on a padded grid centred on the detector (:func:`frames.crop_box`)."""
    params, (ny, nx) = context.params, context.resolved.detector_shape_yx
    px = context.resolved.pixel_spacing_angstrom
    margin = _margin_px(motion, tilt, px, voltage_kv=params.voltage_kv) + extra_margin_px
    # FFT-friendly sizes (4096 + 2 x 157 = 4410 takes 4x longer than 4500).
    padded = (_fast_size(ny + 2 * margin), _fast_size(nx + 2 * margin))
    return expected_image(
        phantom,
        TiltGeometry(tilt.true_tilt_deg, tilt.true_tilt_axis_deg, 0.0, tilt.shift_x_angstrom, tilt.shift_y_angstrom),
        TiltCtf(tilt.defocus_u_angstrom, tilt.defocus_v_angstrom, tilt.astigmatism_angle_deg, hand=params.hand),
        Microscope(params.voltage_kv, params.cs_mm, params.amplitude_contrast),
        image_shape_yx=padded,
        pixel_spacing_angstrom=px,
        pre_exposure_e_per_angstrom2=tilt.pre_exposure_e_per_angstrom2,
        dose_e_per_angstrom2=tilt.dose_e_per_angstrom2,
        seed=int(context.rng.integers(2**31)),
        ice_mean_free_path_angstrom=ICE_MEAN_FREE_PATH_ANGSTROM,
    )


def _margin_px(motion: TiltMotion, tilt: TiltPlan, pixel_spacing_angstrom: float, *, voltage_kv: float) -> int:
    """Pixels simulated beyond each detector edge: what motion brings in, plus the CTF's delocalisation.

    The image is computed with periodic FFTs; a defocus ``Δf`` spreads detail at the Nyquist frequency over
    ``λ Δf / (2 px)`` Å, so that much margin keeps wrapped-around signal off the detector.
    """
    reach = float(np.abs(motion.trajectory_angstrom).max())
    if motion.local is not None:
        reach += float(np.abs(motion.local.amplitudes_angstrom).sum())
    defocus = max(tilt.defocus_u_angstrom, tilt.defocus_v_angstrom)
    spread = electron_wavelength_angstrom(voltage_kv) * defocus / (2 * pixel_spacing_angstrom)
    return math.ceil((reach + spread) / pixel_spacing_angstrom) + 4


def _fast_size(n: int) -> int:
    """The smallest size above ``n`` that FFTs handle fast."""
    return int(scipy.fft.next_fast_len(n + 1, real=True))


def _eer_metadata(resolved: ResolvedParams, tilt: TiltPlan, n_frames: int) -> dict[str, str]:
    px = resolved.pixel_spacing_angstrom
    seconds = n_frames * SECONDS_PER_FRAME["eer"]
    electrons = tilt.dose_e_per_angstrom2 * px**2
    return {
        "sensorPixelSize.width": f"{px * 1e-10:.6e}",
        "sensorPixelSize.height": f"{px * 1e-10:.6e}",
        "exposureTime": f"{seconds:.6g}",
        "totalDose": f"{electrons:.6g}",
        "meanDoseRate": f"{electrons / seconds:.6g}",
        "commercialName": "Falcon 4i (tomoprep simulated)",
    }
