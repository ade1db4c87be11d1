"""Movie frames: motion, electron counting statistics, and the files through tomoprep's movie readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from tomoprep.io.gain import apply_gain
from tomoprep.io.movies import read_movie, read_movie_header
from tomoprep.simulate.acquisition import Detector, make_detector
from tomoprep.simulate.eer import write_eer
from tomoprep.simulate.frames import (
    EerWriter,
    FrameSink,
    MovieFormat,
    TiltMotion,
    fraction_frames,
    make_tilt_motion,
    movie_suffix,
    open_movie,
    simulate_movie,
    spread_over_raw_frames,
)

SHAPE = (72, 64)
PIXEL = 2.0


class Recorder:
    """Wraps a movie writer and keeps every fraction as stored."""

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self.fractions: list[np.ndarray] = []

    def add_fraction(self, counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        stored = self.sink.add_fraction(counts, n_frames, rng)
        self.fractions.append(np.array(stored))
        return stored

    def close(self) -> None:
        self.sink.close()


def _movie(
    tmp_path: Path,
    movie_format: MovieFormat,
    *,
    n_frames: int,
    image: np.ndarray,
    dose: float = 3.0,
    detector: Detector | None = None,
    motion: TiltMotion | None = None,
    motion_corrected: bool = False,
) -> tuple[Path, Recorder, Detector, TiltMotion, object]:
    rng = np.random.default_rng(5)
    detector = detector or make_detector(SHAPE, name="A", rng=rng)
    motion = motion or make_tilt_motion(
        n_frames, movie_format=movie_format, dose_e_per_angstrom2=dose, tilt_deg=0.0, local_motion_angstrom=0.0,
        field_of_view_angstrom=SHAPE[1] * PIXEL, rng=rng,
    )  # fmt: skip
    path = tmp_path / f"movie{movie_suffix(movie_format)}"
    peak = float(image.max()) * dose * PIXEL**2 / n_frames * 15
    sink = open_movie(path, movie_format=movie_format, shape_yx=SHAPE, n_frames=n_frames,
                      max_counts_per_frame=peak + 6 * peak**0.5 + 6, pixel_spacing_angstrom=PIXEL,
                      eer_metadata={"sensorPixelSize.width": f"{PIXEL * 1e-10:.6e}"})  # fmt: skip
    recorder = Recorder(sink)
    result = simulate_movie(recorder, image, detector=detector, motion=motion,
                            dose_e_per_angstrom2=dose, pixel_spacing_angstrom=PIXEL, rng=rng,
                            motion_corrected=motion_corrected)  # fmt: skip
    return path, recorder, detector, motion, result


def _flat(value: float, margin: int = 8) -> np.ndarray:
    return np.full((SHAPE[0] + 2 * margin, SHAPE[1] + 2 * margin), value, dtype=np.float32)


def test_fractions_per_format() -> None:
    assert fraction_frames(5, "tiff") == (1,) * 5
    assert fraction_frames(300, "eer") == (10,) * 30
    assert fraction_frames(20, "eer") == (2,) * 10
    uneven = fraction_frames(1201, "eer")
    assert sum(uneven) == 1201 and len(uneven) == 40 and max(uneven) - min(uneven) == 1


def test_motion_starts_at_zero_and_settles() -> None:
    rng = np.random.default_rng(1)
    speeds_early, speeds_late = [], []
    for _ in range(20):
        motion = make_tilt_motion(30, movie_format="tiff", dose_e_per_angstrom2=3.0, tilt_deg=30.0,
                                  local_motion_angstrom=0.0, field_of_view_angstrom=1000.0, rng=rng)  # fmt: skip
        steps = np.linalg.norm(np.diff(motion.trajectory_angstrom, axis=0), axis=1)
        assert np.array_equal(motion.trajectory_angstrom[0], [0.0, 0.0])
        speeds_early.append(steps[:3].mean())
        speeds_late.append(steps[-3:].mean())
    assert np.mean(speeds_early) > 2 * np.mean(speeds_late)
    assert 3 < np.mean([np.abs(motion.trajectory_angstrom).max()]) < 60


def test_jitter_is_a_random_walk_of_the_step_asked_for() -> None:
    rng = np.random.default_rng(4)
    steps = []
    for _ in range(20):
        motion = make_tilt_motion(40, movie_format="tiff", dose_e_per_angstrom2=30.0, tilt_deg=0.0,
                                  local_motion_angstrom=0.0, field_of_view_angstrom=1000.0, rng=rng,
                                  jitter_step_angstrom=1.0)  # fmt: skip
        # at 30 e/Å² in 40 frames the settling is over after the first frames: the late steps are drift + jitter
        late = np.diff(motion.trajectory_angstrom[10:], axis=0)
        steps.append(late - late.mean(axis=0))
    spread = float(np.std(np.concatenate(steps)))
    assert 0.9 < spread < 1.1  # each axis's step: 1 Å
    quiet = make_tilt_motion(40, movie_format="tiff", dose_e_per_angstrom2=30.0, tilt_deg=0.0,
                             local_motion_angstrom=0.0, field_of_view_angstrom=1000.0,
                             rng=np.random.default_rng(4))  # fmt: skip
    late = np.diff(quiet.trajectory_angstrom[10:], axis=0)
    assert float(np.std(late - late.mean(axis=0))) < 0.2  # the default jitter: 0.15 Å


def test_local_motion_grows_from_zero() -> None:
    motion = make_tilt_motion(10, movie_format="tiff", dose_e_per_angstrom2=3.0, tilt_deg=0.0,
                              local_motion_angstrom=5.0, field_of_view_angstrom=500.0,
                              rng=np.random.default_rng(0))  # fmt: skip
    assert motion.local is not None
    x, y = np.meshgrid(np.linspace(-250, 250, 9), np.linspace(-250, 250, 9))
    assert np.all(motion.local.displacement_angstrom(x, y, 0) == 0)
    last = np.linalg.norm(motion.local.displacement_angstrom(x, y, 9), axis=0)
    assert 0.5 < last.max() < 30


def test_spread_over_raw_frames_keeps_counts_one_event_per_frame() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(40, 50)).clip(max=8)
    frames = np.array(list(spread_over_raw_frames(counts, 8, rng)))
    assert frames.dtype == bool and frames.shape == (8, 40, 50)
    assert np.array_equal(frames.sum(axis=0), counts)
    # Events are spread evenly over the raw frames.
    per_frame = frames.sum(axis=(1, 2))
    assert np.all(np.abs(per_frame - counts.sum() / 8) < 5 * np.sqrt(counts.sum() / 8))


def test_streamed_eer_is_byte_identical_to_write_eer(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = rng.random((6, 40, 24)) < 0.05
    metadata = {"sensorPixelSize.width": "1.7e-10", "exposureTime": "1.2"}
    write_eer(tmp_path / "whole.eer", frames, metadata=metadata)
    writer = EerWriter(tmp_path / "streamed.eer", shape_yx=(40, 24), n_frames=6, metadata=metadata)
    for frame in frames:
        writer.write_frame(frame)
    writer.close()
    assert (tmp_path / "whole.eer").read_bytes() == (tmp_path / "streamed.eer").read_bytes()


@pytest.mark.parametrize("movie_format", ["tiff", "mrc"])
def test_tiff_and_mrc_frames_read_back_as_written(tmp_path: Path, movie_format: MovieFormat) -> None:
    path, recorder, _, _, _ = _movie(tmp_path, movie_format, n_frames=4, image=_flat(0.7))
    frames = read_movie(path)
    assert read_movie_header(path).n_frames == 4
    assert np.array_equal(frames, np.array(recorder.fractions, dtype=np.float32))


def test_frame_sum_mean_is_dose_times_transmission(tmp_path: Path) -> None:
    """Gain-corrected counts per pixel = dose × px² × transmission, within Poisson error; counts are integers."""
    transmission, dose = 0.62, 3.0
    path, _, detector, _, result = _movie(tmp_path, "tiff", n_frames=5, image=_flat(transmission), dose=dose)
    frames = read_movie(path)
    assert np.array_equal(frames, np.round(frames))
    corrected = apply_gain(frames, detector.gain).sum(axis=0)
    good = np.ones(SHAPE, dtype=bool)
    for pixels in (detector.hot_pixels_yx, detector.dead_pixels_yx):
        good[pixels[:, 0], pixels[:, 1]] = False
    expected = dose * PIXEL**2 * transmission
    error = np.sqrt(expected / good.sum())
    assert abs(corrected[good].mean() - expected) < 4 * error
    assert abs(result.frame_sum[good].mean() - expected) < 4 * error
    assert np.all(frames[:, ~(detector.sensitivity > 0)] == 0)  # dead pixels never count
    hot = detector.hot_pixels_yx
    assert frames.sum(axis=0)[hot[:, 0], hot[:, 1]].min() > 2 * expected


def test_eer_groups_equal_the_simulated_fractions(tmp_path: Path) -> None:
    path, recorder, _, motion, result = _movie(tmp_path, "eer", n_frames=60, image=_flat(0.8))
    header = read_movie_header(path)
    assert header.n_frames == 60 and header.pixel_spacing_angstrom == pytest.approx(PIXEL)
    size = motion.fraction_frames[0]
    assert set(motion.fraction_frames) == {size}
    groups = read_movie(path, eer_group_frames=size)
    assert np.array_equal(groups, np.array(recorder.fractions, dtype=np.float32))
    assert [int(g.sum()) for g in groups] == result.fraction_counts
    assert read_movie(path, eer_group_frames=1).max() == 1  # one event per pixel and raw frame


def _centroid(image: np.ndarray) -> np.ndarray:
    yy, xx = np.indices(image.shape)
    weight = ndimage.gaussian_filter(image.astype(float), 1.0)
    weight -= np.median(weight)
    weight[weight < 0.2 * weight.max()] = 0  # the blob only, not the noisy background
    return np.array([(xx * weight).sum(), (yy * weight).sum()]) / weight.sum()


def test_fractions_move_along_the_trajectory(tmp_path: Path) -> None:
    """Image content of fraction f sits at its position in the expected image plus d_f (x, y); the
    motion-corrected sum puts it back."""
    margin = 8
    image = _flat(0.2, margin)
    yy, xx = np.indices(image.shape)
    image += 3.0 * np.exp(-((xx - 30 - margin) ** 2 + (yy - 40 - margin) ** 2) / (2 * 4.0**2))
    trajectory = np.array([[0.0, 0.0], [6.0, -4.0], [10.0, 8.0]])
    motion = TiltMotion((1, 1, 1), trajectory, None)
    _, recorder, detector, _, result = _movie(
        tmp_path, "mrc", n_frames=3, image=image, dose=400.0, motion=motion, motion_corrected=True
    )
    start = _centroid(detector.correct(recorder.fractions[0], fill=0.0))
    for fraction, shift in zip(recorder.fractions[1:], trajectory[1:], strict=True):
        moved = _centroid(detector.correct(fraction, fill=0.0)) - start
        assert moved == pytest.approx(shift / PIXEL, abs=0.15)
    assert result.motion_corrected_sum is not None
    assert _centroid(result.motion_corrected_sum) == pytest.approx(start, abs=0.15)
