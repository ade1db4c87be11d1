"""The RELION 5 export of a series built from model objects, checked against the real RELION 5 project of
EMPIAR-10164 (tests/data/real/tomobabel-cets-relion): labels, block names, value conventions, paths and sizes."""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from built_series import ANGLES, EXCLUDED, PIXEL_SPACING, built_series
from tomoprep.errors import InputError
from tomoprep.export.relion5 import export_series, write_optimisation_set, write_tomogram_set
from tomoprep.io.relion5_project import read_relion5_project

REAL = "tomobabel-cets-relion/relion5_project"
#: RELION labels of files the export does not make (IMOD directives, power spectra, motion STAR files) or
#: values tomoprep does not measure (ice rings).
NOT_EXPORTED = {"rlnEtomoDirectiveFile", "rlnCtfPowerSpectrum", "rlnMicrographMetadata", "rlnCtfImage",
                "rlnCtfIceRingDensity"}  # fmt: skip
#: The per-tilt labels the export writes for every kept tilt.
TILT_LABELS = ("rlnMicrographMovieName", "rlnTomoTiltMovieFrameCount", "rlnTomoNominalStageTiltAngle",
               "rlnTomoNominalTiltAxisAngle", "rlnMicrographPreExposure", "rlnTomoNominalDefocus",
               "rlnMicrographName", "rlnMicrographNameEven", "rlnMicrographNameOdd", "rlnAccumMotionTotal",
               "rlnAccumMotionEarly", "rlnAccumMotionLate", "rlnDefocusU", "rlnDefocusV", "rlnCtfAstigmatism",
               "rlnDefocusAngle", "rlnCtfFigureOfMerit", "rlnCtfMaxResolution", "rlnTomoXTilt", "rlnTomoYTilt",
               "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst", "rlnCtfScalefactor")  # fmt: skip
PATH_LABELS = ("rlnTomoTiltSeriesStarFile", "rlnTomoReconstructedTomogram", "rlnTomoReconstructedTomogramHalf1",
               "rlnTomoReconstructedTomogramHalf2", "rlnMicrographMovieName", "rlnMicrographName",
               "rlnMicrographNameEven", "rlnMicrographNameOdd", "rlnTomoTomogramsFile")  # fmt: skip


def _export(tmp_path: Path, *series_args, copy: bool = False, **kwargs) -> tuple[Path, list]:
    out = tmp_path / "relion"
    series = [built_series(tmp_path / f"src{k}", **args) for k, args in enumerate(series_args or ({},))]
    rows = [export_series(ts, out, copy=copy, **kwargs).global_row for ts in series]
    write_tomogram_set(out, rows)
    write_optimisation_set(out, particles=False)
    return out, series


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, list]:
    return _export(tmp_path, {"name": "TS_07"}, {"name": "TS_08"})


def test_blocks_and_labels_are_relions_column_by_column(exported, real_data: Path) -> None:
    out, _ = exported
    ours_global = starfile.read(out / "tomograms.star", always_dict=True)
    real_global = starfile.read(real_data / REAL / "Tomograms/job006/tomograms.star", always_dict=True)
    assert list(ours_global) == list(real_global) == ["global"]
    ours, real = ours_global["global"], real_global["global"]
    assert set(real.columns) - NOT_EXPORTED <= set(ours.columns)
    assert "rlnTomoReconstructedTomogram" in ours.columns
    for label in set(real.columns) & set(ours.columns):
        assert ours[label].dtype.kind == real[label].dtype.kind or {ours[label].dtype.kind, real[label].dtype.kind} <= {
            "i",
            "f",
        }, label
    assert set(ours["rlnTomoHand"]) <= {-1, 1} and set(real["rlnTomoHand"]) <= {-1, 1}
    for name in ours["rlnTomoName"]:
        blocks = starfile.read(out / "tilt_series" / f"{name}.star", always_dict=True)
        assert list(blocks) == [name]
    real_tilts = starfile.read(real_data / REAL / "Tomograms/job006/tilt_series/TS_01.star")
    ours_tilts = starfile.read(out / "tilt_series" / "TS_07.star")
    assert set(real_tilts.columns) - NOT_EXPORTED <= set(ours_tilts.columns)
    assert set(TILT_LABELS) <= set(ours_tilts.columns)
    for label in set(real_tilts.columns) & set(ours_tilts.columns):
        assert (
            ours_tilts[label].dtype.kind in ("O",)
            if real_tilts[label].dtype.kind == "O"
            else ours_tilts[label].dtype.kind in ("i", "f")
        ), label


def test_value_conventions_match_the_real_project(exported, real_data: Path) -> None:
    out, series = exported
    real = starfile.read(real_data / REAL / "Tomograms/job006/tilt_series/TS_01.star")
    ours = starfile.read(out / "tilt_series" / "TS_07.star")
    for table in (real, ours):
        # Rows by nominal tilt angle; scale factor cos(YTilt); astigmatism U - V; nominal defocus in µm, negative;
        # one axis in every row.
        assert np.all(np.diff(table["rlnTomoNominalStageTiltAngle"]) > 0)
        assert np.allclose(table["rlnCtfScalefactor"], np.cos(np.radians(table["rlnTomoYTilt"])), atol=1e-5)
        assert np.allclose(table["rlnCtfAstigmatism"], table["rlnDefocusU"] - table["rlnDefocusV"], atol=1e-3)
        assert np.all(table["rlnTomoNominalDefocus"] < 0) and np.all(table["rlnTomoNominalDefocus"] > -15)
        assert table["rlnTomoNominalTiltAxisAngle"].nunique() == 1
        assert np.all(table["rlnDefocusU"] > 5000)  # Å, positive underfocus
    ts = series[0]
    assert ours["rlnTomoNominalDefocus"].iloc[0] == pytest.approx(-3.0)
    assert ours["rlnTomoNominalTiltAxisAngle"].iloc[0] == ts.nominal_tilt_axis_angle_deg
    kept = sorted(a for k, a in enumerate(ANGLES) if k != EXCLUDED)
    assert ours["rlnTomoNominalStageTiltAngle"].tolist() == kept
    by_angle = {t.acquisition.nominal_tilt_angle_deg: t for t in ts.tilts}
    for _, row in ours.iterrows():
        tilt = by_angle[row["rlnTomoNominalStageTiltAngle"]]
        assert row["rlnMicrographPreExposure"] == tilt.acquisition.pre_exposure_e_per_angstrom2
        assert row["rlnTomoYTilt"] == pytest.approx(tilt.alignment.y_tilt_deg)
        assert row["rlnTomoXShiftAngst"] == pytest.approx(tilt.alignment.shift_x_angstrom)
        assert row["rlnDefocusAngle"] == pytest.approx(tilt.ctf.astigmatism_angle_deg)
    table = starfile.read(out / "tomograms.star")
    assert table["rlnTomoHand"].tolist() == [1, 1]
    assert table["rlnTomoTiltSeriesPixelSize"].tolist() == [PIXEL_SPACING] * 2


def test_excluded_tilts_are_left_out_of_every_file(exported) -> None:
    out, series = exported
    ts = series[0]
    excluded = ts.tilts[EXCLUDED]
    table = starfile.read(out / "tilt_series" / "TS_07.star")
    assert len(table) == len(ts.tilts) - 1
    assert excluded.acquisition.nominal_tilt_angle_deg not in table["rlnTomoNominalStageTiltAngle"].tolist()
    names = {p.name for p in (out / "TS_07").rglob("*")}
    assert excluded.motion.micrograph_path.name not in names
    assert excluded.acquisition.movie_path.name not in names


def test_every_path_resolves_from_the_export_folder(exported) -> None:
    out, _ = exported
    checked = 0
    tables = [starfile.read(out / "tomograms.star"), starfile.read(out / "optimisation_set.star")]
    tables += [starfile.read(out / "tilt_series" / f"{n}.star") for n in ("TS_07", "TS_08")]
    for table in tables:
        for label in PATH_LABELS:
            for value in table.get(label, []):
                path = Path(str(value).split("@")[-1])
                assert not path.is_absolute() and (out / path).is_file(), (label, value)
                checked += 1
    assert checked > 50


def test_copies_are_files_and_links_point_at_the_sources(tmp_path: Path) -> None:
    out, _ = _export(tmp_path, copy=True)
    image = out / starfile.read(out / "tilt_series" / "TS_07.star")["rlnMicrographName"].iloc[0]
    assert image.is_file() and not image.is_symlink()
    movie = out / starfile.read(out / "tilt_series" / "TS_07.star")["rlnMicrographMovieName"].iloc[0]
    assert movie.is_symlink()  # movies stay linked
    linked, _ = _export(tmp_path / "links")
    image = linked / starfile.read(linked / "tilt_series" / "TS_07.star")["rlnMicrographName"].iloc[0]
    assert image.is_symlink() and image.resolve().parent.name == "sums"


def test_links_within_the_project_are_relative_and_survive_moving_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    ts = built_series(project / "runs" / "002_motioncorr")
    outside = tmp_path / "relion"
    for out in (project / "export", outside):
        write_tomogram_set(out, [export_series(ts, out, moves_with=project).global_row])
    inside_links = [p for p in (project / "export").rglob("*") if p.is_symlink()]
    outside_links = [p for p in outside.rglob("*") if p.is_symlink()]
    assert inside_links and all(not Path(p.readlink()).is_absolute() for p in inside_links)
    assert outside_links and all(Path(p.readlink()).is_absolute() for p in outside_links)
    shutil.move(project, tmp_path / "moved")
    moved = tmp_path / "moved" / "export"
    table = starfile.read(moved / "tilt_series" / "TS_07.star")
    for name in (*table["rlnMicrographName"], *table["rlnMicrographMovieName"]):
        assert (moved / name).resolve().is_file(), name
    tomogram = starfile.read(moved / "tomograms.star")["rlnTomoReconstructedTomogram"].iloc[0]
    assert (moved / tomogram).resolve().is_relative_to((tmp_path / "moved").resolve())


def test_sizes_are_the_tomogram_header_times_its_binning(exported) -> None:
    out, _ = exported
    table = starfile.read(out / "tomograms.star")
    for _, row in table.iterrows():
        with mrcfile.open(out / row["rlnTomoReconstructedTomogram"], header_only=True) as mrc:
            nx, ny, nz = int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz)
            voxel = float(mrc.voxel_size.x)
        binning = row["rlnTomoTomogramBinning"]
        assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]) == (nx * binning, ny * binning,
                                                                                   nz * binning)  # fmt: skip
        assert voxel == pytest.approx(binning * row["rlnTomoTiltSeriesPixelSize"])


def test_without_a_tomogram_sizes_come_from_the_images_and_the_thickness(tmp_path: Path) -> None:
    out, _ = _export(tmp_path, {"tomogram": False})
    row = starfile.read(out / "tomograms.star").iloc[0]
    assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"]) == (64, 48)
    assert row["rlnTomoSizeZ"] == 26  # 61 Å / 2.5 Å = 24.4 px, rounded up to even
    assert "rlnTomoReconstructedTomogram" not in row and "rlnTomoTomogramBinning" not in row
    out, _ = _export(tmp_path / "thick", {"tomogram": False}, thickness_angstrom=100.0)
    assert starfile.read(out / "tomograms.star")["rlnTomoSizeZ"].iloc[0] == 40


def test_without_tomogram_or_thickness_the_error_names_the_fix(tmp_path: Path) -> None:
    ts = replace(built_series(tmp_path, tomogram=False), specimen_thickness_angstrom=None)
    with pytest.raises(InputError, match="--tomogram-thickness-angstrom"):
        export_series(ts, tmp_path / "out")


def test_a_series_without_tomogram_among_others_drops_those_columns_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = [export_series(built_series(tmp_path / n, name=n, tomogram=n == "A"), out).global_row for n in "AB"]
    _, notes = write_tomogram_set(out, rows)
    table = starfile.read(out / "tomograms.star")
    assert "rlnTomoReconstructedTomogram" not in table and "rlnTomoSizeX" in table
    assert notes and "B lack" in notes[0] and "rlnTomoReconstructedTomogram" in notes[0]


def test_missing_dose_or_image_is_refused_naming_the_fix(tmp_path: Path) -> None:
    ts = built_series(tmp_path, tomogram=False)
    no_dose = ts.with_tilts(tuple(replace(t, acquisition=replace(t.acquisition, pre_exposure_e_per_angstrom2=None))
                                  for t in ts.tilts))  # fmt: skip
    with pytest.raises(InputError, match="--dose-per-tilt"):
        export_series(no_dose, tmp_path / "a")
    Path(ts.tilts[0].motion.micrograph_path).unlink()
    with pytest.raises(InputError, match="tilt image"):
        export_series(ts, tmp_path / "b")


def test_unaligned_series_without_ctf_gets_nominal_values_with_warnings(tmp_path: Path) -> None:
    ts = built_series(tmp_path, tomogram=False)
    bare = ts.with_tilts(tuple(replace(t, alignment=None, ctf=None) for t in ts.tilts))
    exported = export_series(bare, tmp_path / "out")
    table = starfile.read(tmp_path / "out" / "tilt_series" / "TS_07.star")
    assert np.allclose(table["rlnTomoYTilt"], table["rlnTomoNominalStageTiltAngle"])
    assert np.allclose(table["rlnTomoZRot"], ts.nominal_tilt_axis_angle_deg)
    assert np.allclose(table["rlnDefocusU"], 30000.0) and np.allclose(table["rlnCtfAstigmatism"], 0.0)
    assert len(exported.notes) == 2 and "not aligned" in exported.notes[0] and "no CTF" in exported.notes[1]


def test_stack_sections_are_named_as_relion_reads_them(tmp_path: Path) -> None:
    ts = built_series(tmp_path, tomogram=False)
    stack = tmp_path / "TS_07.st"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(np.zeros((len(ts.tilts), 8, 10), dtype=np.float32))
        mrc.voxel_size = PIXEL_SPACING
    from_stack = ts.with_tilts(tuple(replace(t, motion=None, acquisition=replace(
        t.acquisition, stack_path=stack, movie_path=None)) for t in ts.tilts))  # fmt: skip
    export_series(from_stack, tmp_path / "out")
    table = starfile.read(tmp_path / "out" / "tilt_series" / "TS_07.star")
    first = table.iloc[0]
    section = next(t.acquisition.section_index for t in ts.tilts
                   if t.acquisition.nominal_tilt_angle_deg == first["rlnTomoNominalStageTiltAngle"])  # fmt: skip
    assert first["rlnMicrographName"] == f"{section + 1}@TS_07/images/TS_07.mrcs"
    assert first["rlnMicrographMovieName"] == first["rlnMicrographName"]
    assert "rlnAccumMotionTotal" not in table and "rlnMicrographNameEven" not in table
    with mrcfile.open(tmp_path / "out" / "TS_07/images/TS_07.mrcs", header_only=True) as mrc:
        assert int(mrc.header.nz) == len(ts.tilts)


def test_round_trip_gives_identical_geometry_and_ctf(exported) -> None:
    out, series = exported
    back = {ts.name: ts for ts in read_relion5_project(out)}
    for ts in series:
        again = back[ts.name]
        assert (
            again.hand == ts.hand and again.tilt_series_pixel_spacing_angstrom == ts.tilt_series_pixel_spacing_angstrom
        )
        assert again.optics == ts.optics and again.nominal_tilt_axis_angle_deg == ts.nominal_tilt_axis_angle_deg
        by_angle = {t.acquisition.nominal_tilt_angle_deg: t for t in again.tilts}
        assert len(by_angle) == len(ts.included_tilts)
        for tilt in ts.included_tilts:
            other = by_angle[tilt.acquisition.nominal_tilt_angle_deg]
            for field in ("y_tilt_deg", "z_rot_deg", "x_tilt_deg", "shift_x_angstrom", "shift_y_angstrom"):
                assert getattr(other.alignment, field) == pytest.approx(getattr(tilt.alignment, field), abs=1e-6)
            for field in (
                "defocus_u_angstrom",
                "defocus_v_angstrom",
                "astigmatism_angle_deg",
                "phase_shift_deg",
                "fit_resolution_angstrom",
                "figure_of_merit",
            ):
                assert getattr(other.ctf, field) == pytest.approx(getattr(tilt.ctf, field), abs=1e-5)
            assert other.acquisition.pre_exposure_e_per_angstrom2 == tilt.acquisition.pre_exposure_e_per_angstrom2
            assert other.motion.micrograph_path.resolve() == tilt.motion.micrograph_path.resolve()
        tomogram, original = again.primary_tomogram, ts.primary_tomogram
        assert tomogram.size_xyz == original.size_xyz and tomogram.binning == original.binning
        assert tomogram.path.resolve() == original.path.resolve()


def test_optimisation_set_names_the_tomogram_set(exported) -> None:
    out, _ = exported
    table = starfile.read(out / "optimisation_set.star", always_dict=True)
    assert list(table) == ["optimisation_set"]
    assert table["optimisation_set"]["rlnTomoTomogramsFile"].tolist() == ["tomograms.star"]
    assert isinstance(table["optimisation_set"], pd.DataFrame) and not math.isnan(len(table["optimisation_set"]))


@pytest.mark.skipif(shutil.which("relion_star_printtable") is None, reason="RELION is not installed")
def test_relions_own_star_parser_reads_every_exported_label(exported) -> None:
    """RELION's C++ reader (``relion_star_printtable``) reads every column of every exported table to the values
    starfile reads. The labels are asked for in reverse order: a label RELION does not know makes it print whole
    rows in file order instead."""
    out, _ = exported
    files = {"tomograms.star": "global", "optimisation_set.star": "optimisation_set", "tilt_series/TS_07.star": "TS_07"}
    for name, block in files.items():
        table = starfile.read(out / name)
        labels = list(reversed(table.columns))
        printed = subprocess.run(["relion_star_printtable", name, f"data_{block}", *labels], cwd=out,
                                 capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
        assert len(printed) == len(table), name
        for line, (_, row) in zip(printed, table.iterrows(), strict=True):
            fields = line.split()
            assert len(fields) == len(labels), (name, line)
            for field, label in zip(fields, labels, strict=True):
                if table[label].dtype.kind in "if":
                    assert float(field) == pytest.approx(row[label], abs=1e-6), (name, label)
                else:
                    assert field == str(row[label]), (name, label)
