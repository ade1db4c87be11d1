"""Per-movie (frame-set) mdocs group into their tilt series whatever naming options the acquisition used.

The files are the real SerialEM frame-set mdoc of teamtomo's mdocfile tests with the values that differ from
movie to movie (tilt angle, time, movie path, navigator label) set for each movie, and named as SerialEM's frame
file options (``CameraController::ComposeFramePathAndName``) and Thermo's Tomo name them.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tomoprep.io.mdoc import read_mdocs
from tomoprep.io.mdoc_names import MovieName, movie_stem, parse_movie_name

TEMPLATE = "teamtomo-mdocfile/frame_set_single.mdoc"
START = datetime(2024, 1, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("name", "tilt_angle_deg", "expected"),
    [
        ("TS_019_0000_8.0.mrc.mdoc", 7.97279, MovieName("TS_019", 0, 8.0)),  # turonova-cryoCAT, SerialEM 4.0
        ("s_mmm_00993_33.0_Oct08_07.39.05.tif", 32.984, MovieName("s_mmm", 993, 33.0)),  # teamtomo SubFramePath
        ("Position_12_001_-10.00_20231020_234209_EER.eer", -10.01, MovieName("Position_12", 1, -10.0)),  # Tomo 5
        ("TS_019_001_-3.0.tif.mdoc", -3.02, MovieName("TS_019", 1, -3.0)),
        ("Position_1_001[-3.00]_fractions.tiff.mdoc", -2.99, MovieName("Position_1", 1, -3.0)),
        ("Position_1_2_001_-3.00_20240101_120000_fractions.tiff.mdoc", -3.0, MovieName("Position_1_2", 1, -3.0)),
        ("2021-10-08_07.39.05_lamella3_00012_-6.0.mrc.mdoc", -6.0, MovieName("lamella3", 12, -6.0)),  # date first
        ("grid2_L3_0042_-0.0.eer.mdoc", 0.01, MovieName("grid2_L3", 42, -0.0)),
        ("s_mmm_00993_Oct08_07.39.05.tif.mdoc", 33.0, MovieName("s_mmm", 993, None)),  # no angle in the name
        ("TS_01_Oct08_07.39.05.tif.mdoc", 3.0, MovieName("TS_01", None, None)),  # time only
        ("TS_01_0004.mrc.mdoc", 3.0, MovieName("TS_01", 4, None)),  # number only
    ],
)
def test_movie_names_of_every_naming_option(name: str, tilt_angle_deg: float, expected: MovieName) -> None:
    assert parse_movie_name(movie_stem(name), tilt_angle_deg=tilt_angle_deg) == expected


@pytest.mark.parametrize(
    ("name", "tilt_angle_deg"),
    [
        ("frame_set_single.mdoc", 33.0),  # renamed: no number, angle or time
        ("TS_019_0000_8.0.mrc.mdoc", 20.0),  # its angle is not the mdoc's: the name belongs to another movie
        ("0001_-3.0.tif.mdoc", -3.0),  # no series part
        ("2024-01-01_12.00.00.tif.mdoc", -3.0),
    ],
)
def test_names_that_cannot_be_grouped(name: str, tilt_angle_deg: float) -> None:
    assert parse_movie_name(movie_stem(name), tilt_angle_deg=tilt_angle_deg) is None


def _write_movie_mdoc(folder: Path, movie: str, template: str, *, angle: float, when: datetime,
                      label: str | None = None) -> Path:  # fmt: skip
    text = re.sub(r"TiltAngle = \S+", f"TiltAngle = {angle + 0.013:.3f}", template)
    text = re.sub(r"DateTime = .*", f"DateTime = {when:%d-%b-%y  %H:%M:%S}", text)
    text = re.sub(r"SubFramePath = .*", lambda _: f"SubFramePath = X:\\\\session\\\\frames\\\\{movie}", text)
    if label is not None:
        text = text.replace("FilterSlitAndLoss", f"NavigatorLabel = {label}\r\nFilterSlitAndLoss")
    path = folder / f"{movie}.mdoc"
    path.write_text(text, newline="")
    return path


def _dose_symmetric(n: int, step: float = 3.0) -> list[float]:
    angles = [0.0]
    for k in range(1, n):
        angles.append(step * ((k + 1) // 2) * (1 if k % 2 else -1))
    return angles


#: name(series, number, angle, time) for each naming style.
STYLES = {
    "serialem_root_number_angle": lambda s, i, a, t: f"{s}_{i:03d}_{a:.1f}.tif",
    "serialem_with_date_time": lambda s, i, a, t: f"{s}_{i:05d}_{a:.1f}_{t:%b%d_%H.%M.%S}.tif",
    "serialem_date_prefix": lambda s, i, a, t: f"{t:%Y-%m-%d_%H.%M.%S}_{s}_{i:04d}_{a:.1f}.mrc",
    "serialem_number_and_time_no_angle": lambda s, i, a, t: f"{s}_{i:05d}_{t:%b%d_%H.%M.%S}.tif",
    "tomo_bracketed_angle": lambda s, i, a, t: f"{s}_{i:03d}[{a:.2f}]_fractions.tiff",
    "tomo_angle_date_time": lambda s, i, a, t: f"{s}_{i:03d}_{a:.2f}_{t:%Y%m%d_%H%M%S}_fractions.tiff",
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_two_interleaved_series_group_apart_whatever_the_naming(style: str, real_data: Path, tmp_path: Path) -> None:
    """Two series whose names differ only in the position number (Position_1_1, Position_1_2), files shuffled."""
    template = (real_data / TEMPLATE).read_bytes().decode()
    angles = _dose_symmetric(7)
    paths = []
    for s, series in enumerate(("Position_1_1", "Position_1_2")):
        for i, angle in enumerate(angles):
            when = START + timedelta(minutes=30 * s, seconds=40 * i)
            movie = STYLES[style](series, i + 1, angle, when)
            paths.append(_write_movie_mdoc(tmp_path, movie, template, angle=angle, when=when))
    random.Random(7).shuffle(paths)
    series_list, errors = read_mdocs(paths)
    assert errors == []
    assert [s.name for s in series_list] == ["Position_1_1", "Position_1_2"]
    for series in series_list:
        assert [round(t.tilt_angle_deg, 1) for t in series.tilts] == angles  # acquisition order
        assert [t.section_index for t in series.tilts] == list(range(1, 8))  # the numbers in the names
        assert all(series.name in source.name for source in series.sources)
        assert series.warnings == ()


def test_numbers_running_on_across_series_are_cut_where_an_angle_comes_back(real_data: Path, tmp_path: Path) -> None:
    """One root name for two series: SerialEM's numbers run on, so the name alone holds one group."""
    template = (real_data / TEMPLATE).read_bytes().decode()
    angles = _dose_symmetric(5)
    paths = []
    for n, angle in enumerate(angles + angles, start=1):
        when = START + timedelta(seconds=45 * n + 900 * (n > 5))  # the second series a quarter of an hour later
        paths.append(_write_movie_mdoc(tmp_path, f"lamella_{n:05d}_{angle:.1f}.tif", template, angle=angle, when=when))
    series_list, errors = read_mdocs(paths)
    assert errors == []
    assert [(s.name, [t.section_index for t in s.tilts]) for s in series_list] == [
        ("lamella_1", [1, 2, 3, 4, 5]),
        ("lamella_2", [6, 7, 8, 9, 10]),
    ]
    assert all("same tilt angles" in s.warnings[0] and "lamella_" in s.warnings[0] for s in series_list)


def test_navigator_labels_separate_series_that_share_a_name(real_data: Path, tmp_path: Path) -> None:
    template = (real_data / TEMPLATE).read_bytes().decode()
    paths = []
    for item, label in enumerate(("12", "15")):
        for i, angle in enumerate(_dose_symmetric(3)):
            when = START + timedelta(minutes=item, seconds=20 * i)
            name = f"grid2_{item * 3 + i + 1:03d}_{angle:.1f}.eer"
            paths.append(_write_movie_mdoc(tmp_path, name, template, angle=angle, when=when, label=label))
    series_list, errors = read_mdocs(paths)
    assert errors == [] and [(s.name, len(s.tilts)) for s in series_list] == [("grid2_12", 3), ("grid2_15", 3)]
    assert "NavigatorLabel" in series_list[0].warnings[0]


def test_a_retaken_tilt_stays_in_its_series_with_a_warning(real_data: Path, tmp_path: Path) -> None:
    template = (real_data / TEMPLATE).read_bytes().decode()
    angles = [0.0, 3.0, 3.0, -3.0]  # the Record at 3° was taken again
    paths = []
    for i, a in enumerate(angles):
        when = START + timedelta(seconds=30 * i)
        paths.append(_write_movie_mdoc(tmp_path, f"TS_05_{i:03d}_{a:.1f}.tif", template, angle=a, when=when))
    (series,), errors = read_mdocs(paths)
    assert errors == [] and series.name == "TS_05" and len(series.tilts) == 4
    (warning,) = series.warnings
    assert "TS_05_002_3.0.tif.mdoc retakes the tilt of TS_05_001_3.0.tif.mdoc" in warning


def test_a_name_that_cannot_be_grouped_is_an_error_naming_the_file(real_data: Path, tmp_path: Path) -> None:
    template = (real_data / TEMPLATE).read_bytes().decode()
    good = _write_movie_mdoc(tmp_path, "TS_07_001_0.0.tif", template, angle=0.0, when=START)
    bad = _write_movie_mdoc(tmp_path, "movie.tif", template, angle=3.0, when=START + timedelta(seconds=30))
    series_list, errors = read_mdocs([good, bad])
    assert [s.name for s in series_list] == ["TS_07"]
    (error,) = errors
    assert error.path == bad and "tilt series is unknown" in str(error) and "movie.tif.mdoc" in str(error)


def test_renamed_real_mdoc_is_grouped_by_its_movie_name(real_data: Path) -> None:
    """teamtomo renamed SerialEM's mdoc to frame_set_single.mdoc; its SubFramePath keeps SerialEM's name."""
    (series,), errors = read_mdocs([real_data / TEMPLATE])
    assert errors == [] and series.name == "s_mmm" and series.tilts[0].section_index == 993
