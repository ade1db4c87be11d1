"""Bad tilts planted by the simulator: where they go, what the truth says, and that the images show them."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tomoprep.io.mrc import read_mrc
from tomoprep.simulate.acquisition import SeriesSettings, plan_series
from tomoprep.simulate.bad_tilts import (
    JUMP_FRACTION,
    PlantedDefect,
    apply_defect,
    choose_bad_tilts,
    max_bad_tilts,
    plan_bad_tilts,
)
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import Truth, read_truth

SMALL = {"preset": "tiny", "detector_size_px": 128, "n_tilts": 9, "frames_per_tilt": 2, "pixel_spacing_angstrom": 10.0}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    out = tmp_path_factory.mktemp("bad") / "session"
    return out, simulate_session(out, SimulateParams(**SMALL, bad_tilts=3, write_tilt_stack=True, seed=7))


@pytest.mark.parametrize("n_tilts", [4, 5, 9, 10, 31, 41, 61])
def test_chosen_tilts_avoid_ends_zero_and_neighbours(n_tilts: int) -> None:
    angles = np.arange(n_tilts) * 3.0 - 3.0 * ((n_tilts - 1) // 2)
    zero = int(np.argmin(np.abs(angles)))
    for seed in range(50):
        for n_bad in {1, max_bad_tilts(n_tilts) // 2, max_bad_tilts(n_tilts)} - {0}:
            ranks = choose_bad_tilts(angles, n_bad, np.random.default_rng(seed))
            assert len(ranks) == n_bad == len(set(ranks))
            assert not {0, n_tilts - 1, zero} & set(ranks)
            assert all(abs(a - b) > 1 for a in ranks for b in ranks if a != b)


def test_zero_off_centre() -> None:
    angles = np.arange(-2, 9) * 5.0  # -10° to 40°: one candidate below 0°, eight above
    assert max_bad_tilts(11, 2) == 1 + 4
    for seed in range(20):
        ranks = choose_bad_tilts(angles, 5, np.random.default_rng(seed))
        assert sorted(ranks) == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="at most 5"):
        choose_bad_tilts(angles, 6, np.random.default_rng(0))


def test_too_many_bad_tilts_are_refused_with_the_limit() -> None:
    assert max_bad_tilts(9) == 4 and max_bad_tilts(31) == 14 and max_bad_tilts(3) == 0
    with pytest.raises(ValidationError, match="at most 4"):
        SimulateParams(**SMALL, bad_tilts=5)
    SimulateParams(preset="demo", bad_tilts=14)


def test_a_jump_moves_only_its_tilt() -> None:
    settings = SeriesSettings(n_tilts=31, tilt_step_deg=4.0, scheme="dose_symmetric", nominal_tilt_axis_deg=85.0,
                              tilt_offset_deg=0.0, dose_per_tilt_e_per_angstrom2=3.0,
                              defocus_range_angstrom=(30000.0, 30000.0), astigmatism_angstrom=0.0,
                              thickness_range_angstrom=(1500.0, 1500.0), pretilt_deg=0.0)  # fmt: skip
    plan = plan_series("TS_01", settings, rng=np.random.default_rng(3), start_time=datetime(2024, 1, 1))
    planted, defects = plan_bad_tilts(plan, 6, field_of_view_angstrom=5000.0, rng=np.random.default_rng(4))
    assert [d.kind for d in defects.values()].count("shifted") == 2
    for before, after in zip(plan.tilts, planted.tilts, strict=True):
        moved = math.hypot(after.shift_x_angstrom - before.shift_x_angstrom,
                           after.shift_y_angstrom - before.shift_y_angstrom)  # fmt: skip
        defect = defects.get(before.acquisition_index)
        if defect is not None and defect.kind == "shifted":
            assert JUMP_FRACTION[0] * 5000.0 <= moved <= JUMP_FRACTION[1] * 5000.0
        else:
            assert moved == 0.0 and after == before


def test_dark_region_covers_what_it_says() -> None:
    image = np.ones((100, 140), dtype=np.float32)
    dark = PlantedDefect("dark", transmission=0.03, dark_coverage=0.6, direction_deg=30.0)
    out = apply_defect(image, dark, detector_shape_yx=(80, 120), pixel_spacing_angstrom=10.0)
    detector = out[10:90, 10:130]
    assert np.mean(detector < 0.5) == pytest.approx(0.6, abs=0.02)
    assert detector.min() == pytest.approx(0.03, abs=1e-3) and detector.max() == pytest.approx(1.0, abs=1e-3)
    whole = PlantedDefect("dark", transmission=0.1, dark_coverage=1.0)
    assert np.allclose(apply_defect(image, whole, detector_shape_yx=(80, 120), pixel_spacing_angstrom=10.0), 0.1)


def test_blur_keeps_the_mean_and_removes_detail() -> None:
    image = np.random.default_rng(0).uniform(0.5, 1.5, size=(64, 64)).astype(np.float32)
    for shape in ("line", "gaussian"):
        blur = PlantedDefect("blurred", direction_deg=20.0, blur_shape=shape, blur_length_angstrom=80.0)  # type: ignore[arg-type]
        out = apply_defect(image, blur, detector_shape_yx=(64, 64), pixel_spacing_angstrom=10.0)
        assert out.mean() == pytest.approx(image.mean(), rel=1e-4)
        assert np.abs(np.diff(out, axis=1)).mean() < 0.5 * np.abs(np.diff(image, axis=1)).mean()


def test_session_plants_one_of_each_and_the_truth_says_so(planted: tuple[Path, Truth]) -> None:
    out, truth = planted
    assert read_truth(out / "truth.json") == truth
    tilts = sorted(truth.series("TS_01").tilts, key=lambda t: t.stack_index)
    kinds = {t.planted_defect: t for t in tilts if t.planted_defect is not None}
    assert sorted(kinds) == ["blurred", "dark", "shifted"]
    assert all(t.planted_defect_detail for t in kinds.values())
    ranks = sorted(t.stack_index for t in kinds.values())
    zero = min(tilts, key=lambda t: abs(t.nominal_tilt_deg)).stack_index
    assert ranks[0] > 0 and ranks[-1] < len(tilts) - 1 and zero not in ranks and min(np.diff(ranks)) > 1
    # The shifted tilt's truth holds its jump: far from both neighbours' (they walked only a few tens of Å).
    jumped = kinds["shifted"]
    for neighbour in (tilts[jumped.stack_index - 1], tilts[jumped.stack_index + 1]):
        distance = math.hypot(jumped.shift_x_angstrom - neighbour.shift_x_angstrom,
                              jumped.shift_y_angstrom - neighbour.shift_y_angstrom)  # fmt: skip
        assert distance > 0.18 * 1280.0


def test_planted_tilts_show_in_the_images(planted: tuple[Path, Truth]) -> None:
    out, truth = planted
    series = truth.series("TS_01")
    stack = read_mrc(out / series.stack).astype(np.float64)  # type: ignore[operator]
    by_kind = {t.planted_defect: t.stack_index for t in series.tilts if t.planted_defect}
    means = stack.mean(axis=(1, 2))
    dark = by_kind["dark"]
    assert means[dark] < 0.6 * np.median(means[[dark - 1, dark + 1]])
    detail = np.abs(np.diff(stack, axis=2)).mean(axis=(1, 2)) / np.sqrt(means)  # shot noise alone gives ~1.1
    blurred = by_kind["blurred"]
    assert detail[blurred] < 0.9 * min(detail[blurred - 1], detail[blurred + 1])


def test_no_bad_tilts_no_defects(tmp_path: Path) -> None:
    truth = simulate_session(tmp_path / "session", SimulateParams(**{**SMALL, "n_tilts": 3}))
    assert all(t.planted_defect is None and t.planted_defect_detail is None for t in truth.tilt_series[0].tilts)
