"""Import refuses duplicated and impossible values, naming the file, the value and the fix, while the valid
series of the same import carry on (the run is PARTIAL, exit 1); nothing is changed in the input files."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from project_faults import flat, snapshot, tomoprep

from tomoprep.steps.tilt_series_set import load_tilt_series_set

#: A real SerialEM tilt-series mdoc (EMPIAR-10164 TS_01, 41 tilts, see tests/data/real/SOURCES.md).
REAL_MDOC = Path(__file__).parents[1] / "data" / "real" / "alisterburt-tomo_preprocessing" / "TS_01.mrc.mdoc"
OPTIONS = ("--tilt-axis-angle-deg", "85", "--dose-per-tilt-e-per-angstrom2", "3")


def _series(session: Path, name: str, *, mdoc_name: str | None = None, edit=lambda text: text) -> Path:
    """The real mdoc renamed to series ``name`` (its movies too), with one tiny real MRC movie per tilt; its
    images unbinned, so that its PixelSpacing is the movies'."""
    text = edit(REAL_MDOC.read_text().replace("TS_01", name).replace("Binning = 4", "Binning = 1"))
    mdoc = session / (mdoc_name or f"{name}.mrc.mdoc")
    mdoc.write_text(text)
    for line in text.splitlines():
        if line.startswith("SubFramePath"):
            movie = session / line.split("\\")[-1].strip()
            if not movie.exists():
                with mrcfile.new(movie) as mrc:
                    mrc.set_data(np.ones((2, 8, 8), dtype=np.int8))
    return mdoc


def _import(tmp_path: Path, session: Path, *options: str) -> tuple[object, Path]:
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    before = snapshot(session)
    result = tomoprep("import", "-p", str(project), "--mdoc", str(session / "*.mdoc"), *options)
    assert snapshot(session) == before  # the inputs are only read
    return result, project


def _imported(project: Path) -> list[str]:
    return [ts.name for ts in load_tilt_series_set(project / "runs" / "001_import")]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    folder = tmp_path / "session"
    folder.mkdir()
    _series(folder, "TS_02")  # the valid series that must carry on
    return folder


def test_a_copied_mdoc_fails_both_series_that_share_its_movies(tmp_path: Path, session: Path) -> None:
    original = _series(session, "TS_01")
    copy = session / "TS_01 (copy).mrc.mdoc"
    shutil.copy(original, copy)
    result, project = _import(tmp_path, session, *OPTIONS)
    text = flat(result.output)
    assert result.exit_code == 1 and "PARTIAL" in text
    assert f"{original}: names movie TS_01_000_0.0.mrc (41 shared movies in all), which {copy} names too" in text
    assert f"{copy}: names movie TS_01_000_0.0.mrc" in text and f"which {original} names too" in text
    assert "Fix: pass only one of these mdoc files" in text
    assert _imported(project) == ["TS_02"]


def test_one_movie_named_by_two_mdocs_fails_both_series(tmp_path: Path, session: Path) -> None:
    other = _series(session, "TS_03")
    mdoc = _series(session, "TS_01", edit=lambda t: t.replace("TS_01_004_6.0.mrc", "TS_03_004_6.0.mrc"))
    result, project = _import(tmp_path, session, *OPTIONS)
    text = flat(result.output)
    assert result.exit_code == 1
    assert f"{mdoc}: names movie TS_03_004_6.0.mrc (1 shared movie in all), which {other} names too" in text
    assert f"{other}: names movie TS_03_004_6.0.mrc (1 shared movie in all), which {mdoc} names too" in text
    assert _imported(project) == ["TS_02"]


def test_a_tilt_angle_beyond_90_degrees_fails_its_series(tmp_path: Path, session: Path) -> None:
    mdoc = _series(session, "TS_01", edit=lambda t: t.replace("TiltAngle = 3.00113", "TiltAngle = 1e9", 1))
    result, project = _import(tmp_path, session, *OPTIONS)
    text = flat(result.output)
    assert result.exit_code == 1
    assert f"{mdoc}: section [ZValue = 1]" in text and "has TiltAngle = 1e+09, outside ±90°" in text
    assert "Fix: Copy the file again from the acquisition computer, or correct the line named" in text
    assert _imported(project) == ["TS_02"]


@pytest.mark.parametrize("value", ["0", "-5.4", "inf"])
def test_a_pixel_spacing_that_is_not_positive_fails_its_series(tmp_path: Path, session: Path, value: str) -> None:
    mdoc = _series(session, "TS_01", edit=lambda t: t.replace("PixelSpacing = 5.4", f"PixelSpacing = {value}"))
    result, project = _import(tmp_path, session, *OPTIONS)
    text = flat(result.output)
    assert result.exit_code == 1
    assert f"{mdoc}: PixelSpacing = {float(value):g} Å is not a positive number" in text
    assert "Fix: pass --pixel-spacing-angstrom" in text
    assert _imported(project) == ["TS_02"]


def test_an_infinite_exposure_dose_fails_its_series(tmp_path: Path, session: Path) -> None:
    mdoc = _series(session, "TS_01", edit=lambda t: t.replace("ExposureDose = 0", "ExposureDose = inf", 1))
    result, project = _import(tmp_path, session, "--tilt-axis-angle-deg", "85")
    text = flat(result.output)
    assert result.exit_code == 1
    assert f"{mdoc}: ExposureDose = inf e/Å² (tilt 0 in stack order) is not a dose" in text
    assert "Fix: correct the mdoc, or pass --dose-per-tilt-e-per-angstrom2" in text
    assert _imported(project) == ["TS_02"]


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--pixel-spacing-angstrom", "inf", "--pixel-spacing-angstrom: Input should be a finite number (got inf)"),
        ("--pixel-spacing-angstrom", "0", "--pixel-spacing-angstrom: Input should be greater than 0 (got 0.0)"),
        ("--dose-per-tilt-e-per-angstrom2", "0", "--dose-per-tilt-e-per-angstrom2: Input should be greater than 0"),
        ("--dose-per-tilt-e-per-angstrom2", "nan", "--dose-per-tilt-e-per-angstrom2: Input should be a finite"),
    ],
)
def test_an_impossible_option_value_is_refused_before_any_run(
    tmp_path: Path, session: Path, option: str, value: str, problem: str
) -> None:
    result, project = _import(tmp_path, session, "--tilt-axis-angle-deg", "85", option, value)
    text = flat(result.output)
    assert result.exit_code == 2
    assert problem in text and "Fix: give a valid value (tomoprep import --help" in text
    assert not (project / "runs").exists() or not any((project / "runs").iterdir())


def test_series_named_like_missing_values_are_all_kept(tmp_path: Path, session: Path) -> None:
    for name in ("nan", "NA", "null", "None"):
        _series(session, name)
    result, project = _import(tmp_path, session, *OPTIONS)
    assert result.exit_code == 0, result.output
    assert sorted(_imported(project)) == sorted(["NA", "None", "TS_02", "nan", "null"])


def test_a_stack_tilt_angle_that_is_not_a_tilt_fails_the_stack(tmp_path: Path) -> None:
    real = Path(__file__).parents[1] / "data" / "real" / "nist-etspy"
    folder = tmp_path / "stacks"
    folder.mkdir()
    shutil.copy(real / "test_000.mrc", folder / "test_000.mrc")
    angles = folder / "test_000.rawtlt"
    angles.write_text("0\n1e9\n")
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    before = snapshot(folder)
    result = tomoprep("import", "-p", str(project), "--stack", str(folder / "test_000.mrc"), *OPTIONS)
    text = flat(result.output)
    assert result.exit_code == 1
    assert f"{angles}: tilt angle 1e+09° (section 1 of test_000.mrc) is not a number within ±90°" in text
    assert "Fix: correct the tilt-angle file" in text
    assert snapshot(folder) == before


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_an_mdoc_saved_as_utf16_with_its_mark_is_read(tmp_path: Path, session: Path, encoding: str) -> None:
    mdoc = _series(session, "TS_01")
    text = mdoc.read_text()
    mdoc.write_bytes((text if encoding == "utf-16" else "\ufeff" + text).encode(encoding))
    result, project = _import(tmp_path, session, *OPTIONS)
    assert result.exit_code == 0, result.output
    assert sorted(_imported(project)) == ["TS_01", "TS_02"]
