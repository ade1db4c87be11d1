"""Cleaning passes no wrong result: the good tilts of a small field stay in, a blank tilt goes out as blank (not
as shifted), and a series that would lose most of its tilts fails, saying how many, why, and how to go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from project_faults import flat, snapshot, tomoprep

from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth
from tomoprep.steps.tilt_series_set import load_tilt_series_set

SHIFT_LIMIT = 0.15  # clean's default --shift-fraction
#: Seven tilts of 128² at 4 Å: a field of 512 Å, where ordinary stage-tracking error is a tenth of the field.
SMALL = {"detector_size_px": 128, "n_tilts": 7, "frames_per_tilt": 2, "write_tilt_stack": True}


def true_displacements(series: SeriesTruth) -> np.ndarray:
    """Each tilt's true displacement from its two neighbours in angle and the line through them (the smallest of
    the three), as a fraction of the field: what the shift test measures. The stage shifts move content at every
    depth alike; the parallax of content off the tilt axis's height, which the test leaves out, is not in it."""
    tilts = sorted(series.tilts, key=lambda t: t.nominal_tilt_deg)
    angles = np.array([t.nominal_tilt_deg for t in tilts])
    xy = np.array([[t.shift_x_angstrom, t.shift_y_angstrom] for t in tilts])
    last, out = len(tilts) - 1, []
    for p in range(len(tilts)):
        a, b = (1, 2) if p == 0 else (last - 1, last - 2) if p == last else (p - 1, p + 1)
        line = xy[a] + (xy[b] - xy[a]) * (angles[p] - angles[a]) / (angles[b] - angles[a])
        out.append(min(np.linalg.norm(xy[p] - xy[a]), np.linalg.norm(xy[p] - xy[b]), np.linalg.norm(xy[p] - line)))
    return np.array(out) / (min(series.detector_shape_yx) * series.pixel_spacing_angstrom)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory):
    """``sessions(seed) -> (folder, truth)``: a simulated session of one good series, with its stack, made once a
    seed for the module (the tests spoil copies of the stack, never the session)."""
    made: dict[int, tuple[Path, SeriesTruth]] = {}

    def session(seed: int) -> tuple[Path, SeriesTruth]:
        if seed not in made:
            folder = tmp_path_factory.mktemp(f"small{seed}") / "session"
            made[seed] = folder, simulate_session(folder, SimulateParams(**SMALL, seed=seed)).tilt_series[0]
        return made[seed]

    return session


@pytest.fixture(scope="module", params=[1, 2])
def small_session(request: pytest.FixtureRequest, sessions):
    """The sessions of seeds 1 and 2."""
    return sessions(request.param)


@pytest.fixture(scope="module")
def one_session(sessions):
    """The session of seed 1 alone, to spoil."""
    return sessions(1)


def _imported(tmp_path: Path, session: Path, edit=None) -> tuple[Path, dict[str, str]]:
    """A project with the session's stack imported (``edit(data)`` applied to a copy of the stack first)."""
    stack = Path(shutil.copy(session / "stacks" / "TS_01.st", tmp_path / "TS_01.st"))
    for name in ("TS_01.st.mdoc", "TS_01.rawtlt"):
        if (session / "stacks" / name).exists():
            shutil.copy(session / "stacks" / name, tmp_path / name)
    if edit is not None:
        with mrcfile.open(stack, mode="r+") as mrc:
            data = mrc.data.copy()
            edit(data)
            mrc.set_data(data)
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    result = tomoprep("import", "-p", str(project), "--stack", str(stack))
    assert result.exit_code == 0, result.output
    return project, snapshot(project / "runs" / "001_import")


def _excluded(project: Path, run: str) -> dict[int, str]:
    (ts,) = load_tilt_series_set(project / "runs" / run)
    return {t.acquisition.acquisition_index: t.exclusion.reason for t in ts.tilts if t.exclusion is not None}


def test_good_tilts_of_a_small_field_are_all_kept(tmp_path: Path, small_session) -> None:
    session, series = small_session
    assert true_displacements(series).max() < SHIFT_LIMIT  # no tilt is displaced beyond the limit
    project, before = _imported(tmp_path, session)
    result = tomoprep("clean", "-p", str(project))
    assert result.exit_code == 0, result.output
    assert _excluded(project, "002_clean") == {}
    assert snapshot(project / "runs" / "001_import") == before


def _section_of(series: SeriesTruth, acquisition_index: int) -> int:
    return next(t.stack_index for t in series.tilts if t.acquisition_index == acquisition_index)


def test_a_blank_tilt_is_excluded_as_blank_and_no_other(tmp_path: Path, one_session) -> None:
    session, series = one_session
    section = _section_of(series, 3)
    project, _ = _imported(tmp_path, session, lambda data: data.__setitem__(section, 0.0))
    result = tomoprep("clean", "-p", str(project))
    assert result.exit_code == 0, result.output
    assert _excluded(project, "002_clean") == {3: "auto: blank: every pixel is 0 (no image was recorded)"}


def test_a_series_that_would_lose_most_tilts_fails_with_the_count_and_the_way_on(tmp_path: Path, one_session) -> None:
    session, series = one_session
    sections = [_section_of(series, k) for k in (1, 2, 4, 5)]

    def blank(data: np.ndarray) -> None:
        data[sections] = 0.0

    project, before = _imported(tmp_path, session, blank)
    result = tomoprep("clean", "-p", str(project))
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    assert "the automatic tests would exclude 4 of the 7 measured tilts of TS_01 (4 blank;" in text
    assert "more than 50 % of the series" in text
    assert f"look at {project / 'runs' / '002_clean' / 'TS_01' / 'TS_01_clean.png'}" in text
    assert "rerun with --max-excluded-fraction 1" in text and "--no-auto" in text
    assert (project / "runs" / "002_clean" / "TS_01" / "TS_01_clean.png").is_file()
    assert snapshot(project / "runs" / "001_import") == before
    accepted = tomoprep("clean", "-p", str(project), "--max-excluded-fraction", "1")
    assert accepted.exit_code == 0, accepted.output
    assert set(_excluded(project, "003_clean")) == {1, 2, 4, 5}
