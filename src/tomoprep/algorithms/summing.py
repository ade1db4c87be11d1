"""Aligned and dose-weighted sums of movie frames.

Frames arrive one at a time, are moved by their global shift exactly in Fourier space, warped by the local model
(:mod:`tomoprep.algorithms.local_motion`) in real space if one is given, and accumulated as spectra, so that only
one full-size frame is held at a time. Shifts follow the conventions of :mod:`tomoprep.algorithms.motion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from tomoprep.algorithms.fourier import (
    Device,
    binned_shape,
    critical_exposure,
    crop_rfft,
    exposure_attenuation,
    exposure_weights,
    irfft2_consuming,
    rfft_squared_frequencies,
    shift_rfft_,
)
from tomoprep.algorithms.local_motion import Interpolation, LocalMotionModel, apply_local_motion


@dataclass(frozen=True)
class DoseWeighting:
    """Exposure of the frames of a movie, for a dose-weighted sum (Grant & Grigorieff 2015).

    Attributes
    ----------
    pixel_spacing_angstrom
        Pixel spacing of the frames given to :func:`align_and_sum`, Å.
    frame_doses_e_per_angstrom2
        Exposure of each frame (a sequence, one per frame), or of every frame (a number), e⁻/Å².
    pre_exposure_e_per_angstrom2
        Exposure before the first frame (earlier tilts of a tilt series), e⁻/Å².
    voltage_kv
        Acceleration voltage, 100-300 kV.
    normalise
        ``True``: ``Σ w_i F_i · sqrt(n / Σ w_i²)`` per frequency: Grant & Grigorieff's Eq. 9 (as RELION's own
        implementation and Unblur compute it, ``Σ w_i F_i / sqrt(Σ w_i²)``) times ``sqrt(n)``, so the mean equals
        that of the plain sum and white noise keeps its power. The frames are weighted only relative to each
        other, so the pre-exposure cancels (exposure filtering across tilts is left to reconstruction).
        ``False``: ``Σ w_i F_i``, the absolute attenuation including the pre-exposure.

    Notes
    -----
    The weight of a frame is the mean attenuation over the exposure it received
    (:func:`tomoprep.algorithms.fourier.dose_weights`); RELION uses the attenuation at the end of the frame. With
    equal frame doses the two differ by a factor common to all frames, so normalised sums agree.
    """

    pixel_spacing_angstrom: float
    frame_doses_e_per_angstrom2: float | Sequence[float]
    pre_exposure_e_per_angstrom2: float = 0.0
    voltage_kv: float = 300.0
    normalise: bool = True

    def doses(self, n_frames: int) -> list[float]:
        """Exposure of each of ``n_frames`` frames, e⁻/Å²."""
        doses = self.frame_doses_e_per_angstrom2
        per_frame = [float(doses)] * n_frames if isinstance(doses, int | float) else [float(d) for d in doses]
        if len(per_frame) != n_frames or min(per_frame) < 0:
            raise ValueError(f"need {n_frames} frame doses ≥ 0, got {per_frame}")
        return per_frame


@dataclass(frozen=True)
class AlignedSums:
    """Sums of aligned frames, ``(y, x)`` float32 each; the odd/even ones are ``None`` unless split, the
    dose-weighted ones ``None`` without dose weighting. ``odd`` sums frames 1, 3, 5, ... (0-based), ``even``
    frames 0, 2, 4, ...; ``odd + even == sum`` and ``dose_weighted_odd + dose_weighted_even == dose_weighted``."""

    sum: torch.Tensor
    odd: torch.Tensor | None = None
    even: torch.Tensor | None = None
    dose_weighted: torch.Tensor | None = None
    dose_weighted_odd: torch.Tensor | None = None
    dose_weighted_even: torch.Tensor | None = None


class _SpectrumSums:
    """Running half spectra of the sums of one :func:`align_and_sum` call, and the frames' dose weights.

    The weight of frame ``i`` is ``A_i · average(dose_i)``, where ``A_i`` is the attenuation after the exposure
    before it, kept as a running product, so each frame costs two multiplications instead of exponentials.
    """

    def __init__(self, dose_weighting: DoseWeighting | None, n_frames: int, split_odd_even: bool) -> None:
        self.dose_weighting = dose_weighting
        self.doses = dose_weighting.doses(n_frames) if dose_weighting is not None else []
        self.split = split_odd_even
        self.spectra: dict[str, torch.Tensor] = {}
        self.factors: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self.critical: torch.Tensor | None = None
        self.attenuation: torch.Tensor | None = None

    def start(self, output_shape: tuple[int, int], pixel_spacing_scale: float, device: torch.device) -> None:
        if self.dose_weighting is None:
            return
        spacing = self.dose_weighting.pixel_spacing_angstrom * pixel_spacing_scale
        k = rfft_squared_frequencies(output_shape, pixel_spacing_angstrom=spacing, device=device).sqrt()
        self.critical = critical_exposure(k, voltage_kv=self.dose_weighting.voltage_kv)
        before = 0.0 if self.dose_weighting.normalise else self.dose_weighting.pre_exposure_e_per_angstrom2
        self.attenuation = exposure_attenuation(self.critical, before)

    def add(self, spectrum: torch.Tensor, index: int) -> None:
        part = ("odd" if index % 2 else "even") if self.split else "sum"
        self._add(part, spectrum)
        if self.critical is None or self.attenuation is None:
            return
        dose = self.doses[index]
        if dose not in self.factors:
            average = exposure_weights(self.critical, pre_exposure_e_per_angstrom2=0.0, dose_e_per_angstrom2=dose)
            self.factors[dose] = (average, exposure_attenuation(self.critical, dose))
        average, decay = self.factors[dose]
        weights = self.attenuation * average
        self._add("dose_weighted" if part == "sum" else f"dose_weighted_{part}", spectrum, weights)
        self._add("weights2", weights, weights)
        self.attenuation.mul_(decay)

    def _add(self, name: str, value: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        if name not in self.spectra:
            self.spectra[name] = torch.zeros_like(value)
        if weights is None:
            self.spectra[name] += value
        elif value.is_complex():
            torch.view_as_real(self.spectra[name]).addcmul_(torch.view_as_real(value), weights.unsqueeze(-1))
        else:
            self.spectra[name].addcmul_(value, weights)

    def finish(self, shape_yx: tuple[int, int], n_frames: int) -> AlignedSums:
        """Inverse transforms of the accumulated spectra, the dose-weighted ones normalised per frequency."""
        self.critical = self.attenuation = None
        self.factors.clear()
        weights2 = self.spectra.pop("weights2", None)
        if weights2 is not None and self.dose_weighting is not None and self.dose_weighting.normalise:
            scale = torch.sqrt(n_frames / weights2.clamp_min(1e-30))
            for name in [key for key in self.spectra if key.startswith("dose_weighted")]:
                self.spectra[name] *= scale
        del weights2
        images = {name: irfft2_consuming(self.spectra.pop(name), shape_yx) for name in list(self.spectra)}
        if self.split:
            images["sum"] = images["odd"] + images["even"]
            if "dose_weighted_odd" in images:
                images["dose_weighted"] = images["dose_weighted_odd"] + images["dose_weighted_even"]
        return AlignedSums(**images)


def _single_frames(frames: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    for item in frames:
        tensor = torch.as_tensor(item)
        if tensor.ndim not in (2, 3):
            raise ValueError(f"frame sources must give (y, x) frames or (k, y, x) groups, got {tuple(tensor.shape)}")
        yield from tensor if tensor.ndim == 3 else (tensor,)


def _aligned_spectrum(
    frame: torch.Tensor,
    shift_px: torch.Tensor,
    *,
    index: int,
    local_model: LocalMotionModel | None,
    interpolation: Interpolation,
    output_shape_yx: tuple[int, int],
) -> torch.Tensor:
    """Half spectrum of one frame moved by ``-shift_px`` (and warped by the local model), cropped to the output."""
    shape_yx = (frame.shape[-2], frame.shape[-1])
    spectrum = torch.fft.rfft2(frame)
    shift_rfft_(spectrum, -shift_px, shape_yx=shape_yx)
    if local_model is not None:
        if local_model.shape_yx != shape_yx:
            raise ValueError(f"local model is for {local_model.shape_yx} frames, got a {shape_yx} frame")
        moved = torch.fft.irfft2(spectrum, s=shape_yx)
        spectrum = torch.fft.rfft2(apply_local_motion(moved, local_model, index, interpolation=interpolation))
    if output_shape_yx == shape_yx:
        return spectrum
    return crop_rfft(spectrum, shape_yx=shape_yx, new_shape_yx=output_shape_yx)


def align_and_sum(
    frames: Iterable[torch.Tensor],
    shifts_px: torch.Tensor,
    *,
    local_model: LocalMotionModel | None = None,
    dose_weighting: DoseWeighting | None = None,
    split_odd_even: bool = True,
    bin_factor: float = 1.0,
    interpolation: Interpolation = "bilinear",
    device: Device = None,
) -> AlignedSums:
    """Align frames as they arrive and sum them: plain, odd/even and dose-weighted, all in one pass.

    Only one full-size frame is held at a time (plus up to six output-size spectra), so a caller can decode a
    movie once binned for :func:`tomoprep.algorithms.motion.estimate_global_motion` and once at full size, group
    by group, for this.

    Parameters
    ----------
    frames
        The frames in acquisition order: an iterable of ``(y, x)`` frames or ``(k, y, x)`` groups (a generator
        decoding a movie, or simply an ``(n, y, x)`` tensor).
    shifts_px
        ``(n, 2)`` shifts ``(dy, dx)`` of the frames in their pixels (as
        :func:`tomoprep.algorithms.motion.estimate_global_motion` returns them; multiply by the binning if they
        were estimated on binned frames). Each frame is moved by ``-shift`` exactly, by a Fourier phase ramp.
    local_model
        Optional :class:`tomoprep.algorithms.local_motion.LocalMotionModel` for these frames; each frame is then
        also warped by :func:`tomoprep.algorithms.local_motion.apply_local_motion` (costs an extra FFT pair and
        the interpolation).
    dose_weighting
        Exposures for a dose-weighted sum (:class:`DoseWeighting`), or ``None``.
    split_odd_even
        Also return the sums of odd and of even frames (costs two more inverse FFTs).
    bin_factor
        Fourier-bin the sums by this factor (≥ 1; see :func:`tomoprep.algorithms.fourier.binned_shape`); the
        dose weights use the binned pixel spacing (along x).
    interpolation
        Interpolation of the local warp (:func:`tomoprep.algorithms.local_motion.apply_local_motion`).
    device
        Where to compute and accumulate; by default the device of the first frame.

    Returns
    -------
    AlignedSums
        Sums of shape ``binned_shape((y, x), bin_factor)``.
    """
    n_frames = shifts_px.shape[0]
    sums = _SpectrumSums(dose_weighting, n_frames, split_odd_even)
    output_shape = (0, 0)
    count = 0
    for index, raw in enumerate(_single_frames(frames)):
        if index >= n_frames:
            raise ValueError(f"the frame source gave more frames than the {n_frames} shifts")
        frame = raw.to(device=device if device is not None else raw.device, dtype=torch.float32)
        if index == 0:
            output_shape = binned_shape((frame.shape[-2], frame.shape[-1]), bin_factor)
            sums.start(output_shape, frame.shape[-1] / output_shape[1], frame.device)
        shift = shifts_px[index].to(frame.device)
        spectrum = _aligned_spectrum(
            frame,
            shift,
            index=index,
            local_model=local_model,
            interpolation=interpolation,
            output_shape_yx=output_shape,
        )
        sums.add(spectrum, index)
        count = index + 1
    if count != n_frames:
        raise ValueError(f"the frame source gave {count} frames for {n_frames} shifts")
    return sums.finish(output_shape, n_frames)
