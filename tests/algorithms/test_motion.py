"""Motion correction kernels on synthetic movies with known motion.

The specimen is a band-limited random field of 10 % contrast (correlation length ≈ 2 px) with six 5 nm gold
beads (14 px radius at 1.75 Å/px, 40 % darker); frames are cut from a moving, larger copy, so content enters and
leaves at the edges as on a detector, and Poisson-noised. A tomography tilt of 3 e⁻/Å² in 10 frames at 1.75 Å/px
is 0.92 e⁻/px per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as nnf

from tomoprep.algorithms.fourier import fourier_shift, rfft_squared_frequencies
from tomoprep.algorithms.motion import (
    CREDIBLE_SIGNIFICANCE,
    DoseWeighting,
    GlobalMotion,
    LocalMotionModel,
    accumulated_motion,
    align_and_sum,
    apply_local_motion,
    estimate_global_motion,
    estimate_local_motion,
    fit_trajectory,
    local_shifts_at,
    measure_global_motion,
    smooth_trajectory,
)

PIXEL_ANGSTROM = 1.75
TILT_COUNTS_PER_PX = 3.0 * PIXEL_ANGSTROM**2 / 10  # 3 e/Å² in 10 frames
MARGIN = 32


def specimen(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(shape, generator=generator)
    envelope = torch.exp(-2 * math.pi**2 * 2.0**2 * rfft_squared_frequencies(shape))
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * envelope, s=shape)
    image = 1.0 + 0.10 * field / field.std()
    ys, xs = torch.arange(shape[0])[:, None].float(), torch.arange(shape[1])[None, :].float()
    beads = torch.zeros(shape)
    for cy, cx in torch.rand(6, 2, generator=generator) * torch.tensor(shape):
        beads += torch.sigmoid((14.0 - torch.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)) / 0.7)
    return image - 0.4 * beads.clamp(max=1)


def drift(n: int) -> torch.Tensor:
    """A smooth trajectory, fast at first: ≈ 4.5 px in all, mean zero, (n, 2) as (dy, dx)."""
    t = torch.arange(n, dtype=torch.float32)[:, None]
    shifts = torch.tensor([2.5, -3.0]) * (1 - torch.exp(-t / 2.5)) + torch.tensor([0.15, 0.1]) * t
    return shifts - shifts.mean(dim=0)


def movie(shape: tuple[int, int], shifts_px: torch.Tensor, counts_per_px: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    big = specimen((shape[0] + 2 * MARGIN, shape[1] + 2 * MARGIN), generator)
    frames = fourier_shift(big.expand(len(shifts_px), *big.shape), shifts_px)[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    return torch.poisson(frames.clamp_min(0) * counts_per_px, generator=generator)


def rms_px(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """RMS length of the error vectors after removing their common offset (the reference is arbitrary)."""
    error = estimate - truth
    return float((error - error.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt())


def test_global_motion_at_tomography_dose_is_within_a_tenth_of_a_pixel() -> None:
    truth = drift(10)
    frames = movie((512, 512), truth, TILT_COUNTS_PER_PX, seed=0)
    estimate = estimate_global_motion(frames)
    # 8 seeds: 0.030-0.092 px, mean 0.071; without smoothing 0.11-0.16 (the information limit of 512² frames)
    assert rms_px(estimate, truth) <= 0.1
    assert estimate.shape == (10, 2) and estimate.dtype == torch.float32


def smooth_errors_px(counts_per_px: float, seeds: range) -> tuple[list[float], list[GlobalMotion]]:
    """RMS errors of the smooth :func:`drift` estimated from 512² movies of each seed, and the estimates."""
    truth = drift(10)
    motions = [measure_global_motion(movie((512, 512), truth, counts_per_px, seed=seed)) for seed in seeds]
    return [rms_px(motion.shifts_px, truth) for motion in motions], motions


@pytest.mark.slow
@pytest.mark.parametrize(
    ("counts_per_px", "mean_px", "worst_px"), [(TILT_COUNTS_PER_PX, 0.09, 0.13), (0.3, 0.24, 0.33), (0.1, 0.55, 0.8)]
)
def test_smooth_trajectories_at_low_dose_over_seeds(counts_per_px: float, mean_px: float, worst_px: float) -> None:
    """10 frames of 512², 8 noise seeds: mean and worst RMS error of the trajectory."""
    errors, motions = smooth_errors_px(counts_per_px, range(8))
    # measured at 0.92, 0.3 and 0.1 e/px: mean 0.078, 0.206, 0.460; worst 0.106, 0.283, 0.629 (the smoother of
    # before the trajectory model: 0.071, 0.205, 0.445; 0.092, 0.274, 0.550; the model with 8 noise standard
    # deviations asked of every peak of 0.1 e/px: 0.957, worst 1.343, two movies left unmoved)
    assert sum(errors) / len(errors) <= mean_px and max(errors) <= worst_px, errors
    credible = torch.stack([~motion.interpolated for motion in motions])
    assert float(credible.float().mean()) >= 0.85  # 0.1 e/px: 75 of 80 frames, most of them below 8


def test_peaks_below_eight_noise_deviations_are_used_where_the_maps_are_smooth() -> None:
    """0.1 e/px per frame: most peaks are 6-8 noise standard deviations high, and on this specimen's smooth maps
    they place their frames as precisely as their σ says, so they are credible near the trajectory."""
    errors, motions = smooth_errors_px(0.1, range(2))
    credible = torch.stack([~motion.interpolated for motion in motions])
    significance = torch.stack([motion.significance for motion in motions])
    assert int(credible.sum()) >= 16  # measured 19 of 20 (with 8 asked of every peak: 7, one movie unmoved)
    assert bool((significance[credible] < CREDIBLE_SIGNIFICANCE).any())
    assert max(errors) <= 0.8, errors  # measured 0.49 and 0.62 px; unmoved 1.34 px


def test_global_motion_at_high_dose_is_within_two_hundredths() -> None:
    truth = drift(10)
    frames = movie((512, 512), truth, 100.0, seed=1)
    estimate = estimate_global_motion(frames)
    assert rms_px(estimate, truth) <= 0.02  # 8 seeds: 0.010-0.014 px
    assert torch.allclose(estimate.mean(dim=0), torch.zeros(2), atol=1e-5)
    first = estimate_global_motion(frames, reference="first")
    assert torch.equal(first[0], torch.zeros(2))
    assert torch.allclose(first - first[0], estimate - estimate[0], atol=0.01)


def test_global_motion_on_binned_frames_comes_back_in_input_pixels() -> None:
    truth = 2 * drift(8)
    frames = movie((768, 640), truth, 20.0, seed=2)
    estimate = estimate_global_motion(frames, alignment_size_px=384)  # binned by 2 in both axes
    assert rms_px(estimate, truth) <= 0.05


def jittery(n: int, step_px: float, seed: int) -> torch.Tensor:
    """A steady drift (0.6 px per frame) plus a random walk whose steps have an RMS length of ``step_px`` (stage
    jitter), mean zero, (n, 2) as (dy, dx)."""
    steps = torch.randn(n, 2, generator=torch.Generator().manual_seed(1000 + seed)) * step_px / math.sqrt(2)
    shifts = torch.cumsum(steps, dim=0) + torch.tensor([0.3, -0.5]) * torch.arange(n)[:, None]
    return shifts - shifts.mean(dim=0)


def test_jittery_trajectory_is_followed_where_the_peaks_are_sharp() -> None:
    truth = jittery(10, 0.8, seed=0)
    frames = movie((512, 512), truth, 20.0, seed=7)
    motion = measure_global_motion(frames)
    # measured 0.016 px (the third-order smoother of before: 0.26, damping the jitter as if it were noise)
    assert rms_px(motion.shifts_px, truth) <= 0.03
    assert not bool(motion.interpolated.any()) and bool((motion.significance > CREDIBLE_SIGNIFICANCE).all())
    assert float(motion.sigma_px.max()) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("counts_per_px", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("step_px", [0.3, 0.6, 1.0])
def test_jittery_trajectories_of_2k_frames(counts_per_px: float, step_px: float) -> None:
    """2048² frames (binned to 1024 for the estimate), 10 frames, steady drift plus random-walk jitter."""
    errors = []
    for seed in range(2):
        truth = jittery(10, step_px, seed)
        errors.append(rms_px(estimate_global_motion(movie((2048, 2048), truth, counts_per_px, seed=seed)), truth))
    # measured at 0.5, 1 and 2 e/px: 0.04-0.06, 0.02-0.03, 0.01-0.02 px
    assert max(errors) <= (0.05 if counts_per_px >= 1 else 0.08), errors


def test_sudden_settling_at_high_dose_is_not_bent() -> None:
    """30 e/Å² per tilt (9 e/px per frame): the specimen settles by 6 px between the first frames, then drifts."""
    t = torch.arange(10, dtype=torch.float32)[:, None]
    truth = torch.tensor([-3.5, 5.0]) * torch.exp(-t / 0.4) + torch.tensor([0.2, 0.15]) * t
    truth = truth - truth.mean(dim=0)
    estimate = estimate_global_motion(movie((512, 512), truth, 9.2, seed=8))
    first = estimate[0] - estimate[1:].mean(dim=0) - (truth[0] - truth[1:].mean(dim=0))
    # 3 seeds: 0.027-0.029 px, the first frame 0.03-0.05 px (the third-order smoother of before: 0.31 px, the
    # first frame bent by 0.43-0.48 px)
    assert rms_px(estimate, truth) <= 0.06 and float(first.norm()) <= 0.1


@pytest.mark.parametrize("counts_per_px", [0.03, pytest.param(0.05, marks=pytest.mark.slow)])
def test_peaks_of_noise_are_not_followed(counts_per_px: float) -> None:
    """About 1 e/Å² per tilt on 512² frames: no peak stands above the noise of its correlation map."""
    truth = drift(10)
    motion = measure_global_motion(movie((512, 512), truth, counts_per_px, seed=9))
    # before, the search locked onto noise (shifts of 180-190 px); now no frame is moved on the strength of noise
    assert float((motion.shifts_px - motion.shifts_px.mean(dim=0)).norm(dim=-1).max()) <= 1.0
    assert int(motion.interpolated.sum()) >= 8
    assert bool((motion.significance[motion.interpolated] < CREDIBLE_SIGNIFICANCE).all())


def test_smoothing_keeps_smooth_trajectories_and_damps_jitter() -> None:
    t = torch.arange(12, dtype=torch.float64)[:, None]
    quadratic = torch.cat([0.05 * t**2, -0.3 * t + 1], dim=1)
    assert torch.allclose(smooth_trajectory(quadratic, smoothing=10.0), quadratic, atol=1e-9)
    jitter = 0.1 * torch.randn(12, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert smooth_trajectory(jitter, smoothing=3.0).std() < 0.7 * jitter.std()
    # the trajectory fit leaves a quadratic (its free part) as it is, whatever the precision
    assert torch.allclose(fit_trajectory(quadratic, torch.full_like(quadratic, 0.3)).shifts_px, quadratic, atol=1e-9)


def rotating_movie(n: int, counts_per_px: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames drifting as :func:`drift` and rotating by 0.8° in all about their centre (≈ 2.5 px at the corners).

    Returns the frames and the true displacement ``(y, x, n, 2)`` of every frame pixel (content moves by it).
    """
    shape = (512, 512)
    big = specimen((shape[0] + 2 * MARGIN, shape[1] + 2 * MARGIN), torch.Generator().manual_seed(seed))
    angles = torch.linspace(-0.5, 0.5, n) * math.radians(0.8)
    ys, xs = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
    vy, vx = ys - 256, xs - 256
    cos, sin = torch.cos(angles), torch.sin(angles)
    dy = (cos - 1) * vy[..., None] + sin * vx[..., None] + drift(n)[:, 0]
    dx = -sin * vy[..., None] + (cos - 1) * vx[..., None] + drift(n)[:, 1]
    frames = []
    for i in range(n):
        sy, sx = ys - dy[..., i] + MARGIN, xs - dx[..., i] + MARGIN
        grid = torch.stack([sx * 2 / (big.shape[1] - 1) - 1, sy * 2 / (big.shape[0] - 1) - 1], dim=-1)
        frames.append(nnf.grid_sample(big[None, None], grid[None], mode="bicubic", align_corners=True)[0, 0])
    clean = torch.stack(frames).clamp_min(0)
    noisy = torch.poisson(clean * counts_per_px, generator=torch.Generator().manual_seed(seed + 100))
    return noisy, torch.stack([dy, dx], dim=-1)


def signal_power(sums_odd: torch.Tensor, sums_even: torch.Tensor, low: float, high: float) -> float:
    """Mean cross-power of the odd and even sums between ``low`` and ``high`` cycles/px (noise cancels)."""
    k = rfft_squared_frequencies(tuple(sums_odd.shape)).sqrt()
    cross = (torch.fft.rfft2(sums_odd) * torch.fft.rfft2(sums_even).conj()).real
    return float(cross[(k > low) & (k < high)].mean())


def local_fit_error_px(
    frames: torch.Tensor, displacement: torch.Tensor
) -> tuple[float, float, LocalMotionModel, torch.Tensor]:
    """RMS error of global + local model at the patch centres, that of the global shifts alone, the model and
    the global shifts."""
    n = frames.shape[0]
    global_shifts = estimate_global_motion(frames)
    model = estimate_local_motion(frames, global_shifts, patches=(5, 5))
    centres = model.patch_centres_yx_px
    assert centres.shape == (25, 2) and model.patch_shifts_px.shape == (25, n, 2)
    truth = displacement[centres[:, 0].round().long(), centres[:, 1].round().long()]  # (25, n, 2)
    truth = truth - truth.mean(dim=1, keepdim=True)
    fitted = torch.stack([local_shifts_at(model, centres, i) for i in range(n)], dim=1) + global_shifts
    rms = float((fitted - truth).pow(2).sum(-1).mean().sqrt())
    global_only = float((global_shifts - truth).pow(2).sum(-1).mean().sqrt())
    return rms, global_only, model, global_shifts


@pytest.mark.slow
def test_local_motion_recovers_a_rotation_and_sharpens_the_sum() -> None:
    frames, displacement = rotating_movie(10, counts_per_px=20.0, seed=3)
    rms, global_only, model, global_shifts = local_fit_error_px(frames, displacement)
    assert global_only > 0.7  # the rotation moves patch centres by up to 1.7 px about the global drift
    assert rms <= 0.2  # measured 0.03 px
    plain = align_and_sum(frames, global_shifts)
    local = align_and_sum(frames, global_shifts, local_model=model)
    assert plain.odd is not None and plain.even is not None and local.odd is not None and local.even is not None
    gain = signal_power(local.odd, local.even, 0.1, 0.25) / signal_power(plain.odd, plain.even, 0.1, 0.25)
    assert gain > 1.08  # measured 1.17 with bilinear interpolation (1.32 with bicubic)


@pytest.mark.slow  # the quick tier fits local motion at this dose in test_local_motion.py
def test_local_motion_at_tomography_dose() -> None:
    frames, displacement = rotating_movie(10, counts_per_px=TILT_COUNTS_PER_PX, seed=3)
    rms, global_only, _, _ = local_fit_error_px(frames, displacement)
    assert rms <= 0.3 < global_only  # measured 0.14 px against 0.77 px for the global shifts alone


def test_local_model_evaluates_as_documented_and_zero_model_keeps_frames() -> None:
    coefficients = torch.zeros(2, 6, 3)
    coefficients[1, 1, 0] = 2.0  # dx = 2 u (τ - mean τ)
    model = LocalMotionModel(coefficients, (64, 64), 5, torch.zeros(0, 2), torch.zeros(0, 5, 2))
    points = torch.tensor([[32.0, 64.0], [32.0, 32.0]])  # u = 0.5 and u = 0
    assert torch.allclose(local_shifts_at(model, points, 4), torch.tensor([[0.0, 0.5], [0.0, 0.0]]))
    assert torch.allclose(local_shifts_at(model, points, 2), torch.zeros(2, 2))
    frame = torch.rand(64, 64)
    still = LocalMotionModel(torch.zeros(2, 6, 3), (64, 64), 5, torch.zeros(0, 2), torch.zeros(0, 5, 2))
    assert torch.allclose(apply_local_motion(frame, still, 3), frame, atol=1e-5)


def group_source(frames: torch.Tensor, group: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(frames), group):
        yield frames[start : start + group].clone()


def test_streaming_sum_equals_the_whole_stack_and_halves_add_up() -> None:
    truth = drift(7)
    frames = movie((128, 96), truth, 5.0, seed=4)
    dose = DoseWeighting(PIXEL_ANGSTROM, [0.3] * 6 + [0.5], pre_exposure_e_per_angstrom2=12.0)
    whole = align_and_sum(frames, truth, dose_weighting=dose)
    streamed = align_and_sum(group_source(frames, 3), truth, dose_weighting=dose)
    for name in ("sum", "odd", "even", "dose_weighted", "dose_weighted_odd", "dose_weighted_even"):
        assert torch.allclose(getattr(whole, name), getattr(streamed, name), atol=1e-4)
    assert whole.odd is not None and whole.even is not None
    assert torch.allclose(whole.odd + whole.even, whole.sum, atol=1e-4)
    assert torch.allclose(whole.odd, align_and_sum(frames[1::2], truth[1::2], split_odd_even=False).sum, atol=1e-3)
    single = align_and_sum(iter(frames), truth, split_odd_even=False)
    assert single.odd is None and single.dose_weighted is None
    assert torch.allclose(single.sum, whole.sum, atol=1e-4)
    assert torch.isclose(whole.dose_weighted.mean(), whole.sum.mean(), rtol=1e-5)  # type: ignore[union-attr]


def test_sum_with_true_shifts_restores_the_specimen() -> None:
    truth = drift(6) * 3
    clean = movie((128, 128), truth, 1e6, seed=5) / 1e6
    summed = align_and_sum(clean, truth, split_odd_even=False).sum / 6
    reference = specimen((192, 192), torch.Generator().manual_seed(5))[MARGIN:-MARGIN, MARGIN:-MARGIN]
    inner = (slice(16, -16), slice(16, -16))  # content wrapped in from the edges differs
    assert torch.allclose(summed[inner], reference[inner], atol=0.01)
    binned = align_and_sum(clean, truth, split_odd_even=False, bin_factor=2.0).sum
    assert binned.shape == (64, 64) and torch.isclose(binned.mean(), summed.mean() * 6, rtol=1e-4)


def high_frequency_power(image: torch.Tensor) -> float:
    k = rfft_squared_frequencies(tuple(image.shape)).sqrt()
    return float(torch.fft.rfft2(image).abs().pow(2)[(k > 0.15) & (k < 0.45)].mean())


def test_dose_weighting_damps_high_frequencies() -> None:
    frames = specimen((128, 128), torch.Generator().manual_seed(6)).expand(10, 128, 128).clone()
    shifts = torch.zeros(10, 2)
    plain = align_and_sum(frames, shifts, split_odd_even=False).sum
    relative = align_and_sum(frames, shifts, dose_weighting=DoseWeighting(1.0, 3.0)).dose_weighted
    assert relative is not None
    assert high_frequency_power(relative) < 0.9 * high_frequency_power(plain)
    assert torch.isclose(relative.mean(), plain.mean(), rtol=1e-5)
    # normalised over the frames the pre-exposure cancels; absolute weights fall with it
    later = align_and_sum(frames, shifts, dose_weighting=DoseWeighting(1.0, 3.0, pre_exposure_e_per_angstrom2=60.0))
    assert later.dose_weighted is not None and torch.allclose(later.dose_weighted, relative, atol=1e-3)
    early_abs, late_abs = (
        align_and_sum(frames, shifts, dose_weighting=DoseWeighting(1.0, 3.0, pre, normalise=False)).dose_weighted
        for pre in (0.0, 60.0)
    )
    assert early_abs is not None and late_abs is not None
    assert high_frequency_power(late_abs) < 0.5 * high_frequency_power(early_abs) < high_frequency_power(plain)


def test_frame_counts_must_match_the_shifts() -> None:
    frames = torch.rand(4, 32, 32)
    with pytest.raises(ValueError, match="gave 4 frames for 5"):
        align_and_sum(frames, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="more frames"):
        align_and_sum(frames, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="frame doses"):
        align_and_sum(frames, torch.zeros(4, 2), dose_weighting=DoseWeighting(1.0, [1.0, 1.0]))
    with pytest.raises(ValueError, match="n_frames >= 2"):
        estimate_global_motion(torch.rand(32, 32))


def test_accumulated_motion_splits_at_the_exposure_cutoff_like_relion() -> None:
    shifts = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [3.0, 6.0], [3.0, 7.0], [3.0, 9.0]])
    steps_angstrom = [1.0, 1.0, 5.0, 1.0, 2.0]
    # 1 e/Å² per frame from 0: frames 2-4 (1-based) end at ≤ 4 e/Å², so their steps are early
    motion = accumulated_motion(shifts, 1.0, frame_doses_e_per_angstrom2=1.0)
    assert motion.total_angstrom == pytest.approx(sum(steps_angstrom))
    assert motion.early_angstrom == pytest.approx(7.0) and motion.late_angstrom == pytest.approx(3.0)
    later = accumulated_motion(shifts, 2.0, frame_doses_e_per_angstrom2=1.0, pre_exposure_e_per_angstrom2=2.0)
    assert later.early_angstrom == pytest.approx(2.0) and later.total_angstrom == pytest.approx(20.0)
    tilt = accumulated_motion(shifts, 1.0, frame_doses_e_per_angstrom2=0.3, pre_exposure_e_per_angstrom2=30.0)
    assert tilt.early_angstrom == 0 and tilt.late_angstrom == pytest.approx(10.0)
    uneven = accumulated_motion(shifts, 1.0, frame_doses_e_per_angstrom2=[2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert uneven.early_angstrom == pytest.approx(2.0)  # frames 2 and 3 end at 3 and 4 e/Å²
    with pytest.raises(ValueError, match="3 frame doses"):
        accumulated_motion(shifts, 1.0, frame_doses_e_per_angstrom2=[1.0, 1.0, 1.0])
