"""Tilt series survive a round trip through their STAR tables, optional columns included."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tomoprep.io.star import read_star, write_star
from tomoprep.model import GainReference, Optics, TiltAlignment, TiltImage, TiltSeries
from tomoprep.model.tables import set_row, tilt_series_from_tables, tilt_series_table


def _series() -> TiltSeries:
    tilts = tuple(
        TiltImage(
            acquisition_index=i,
            section_index=2 - i,
            nominal_tilt_angle_deg=-3.0 * i,
            nominal_tilt_axis_angle_deg=-95.0,
            pre_exposure_e_per_angstrom2=3.0 * i,
            dose_e_per_angstrom2=3.0,
            movie_path=Path(f"/data/m{i}.eer"),
            frame_count=400 + i,
            nominal_defocus_angstrom=35000.0,
            gain=GainReference(Path("/data/gain.gain"), rotation_deg=90, flip="y"),
            date_time=datetime(2024, 1, 1, 10, 0, i),
            excluded=i == 1,
            exclusion_reason="dark: mean 'far' below" if i == 1 else "",
        )
        for i in range(3)
    )
    return TiltSeries(
        name="01",
        original_pixel_spacing_angstrom=1.9,
        optics=Optics(200.0, 2.7, 0.07, "g1"),
        tilts=tilts,
        hand=1,
        sources=(Path("/data/01.mdoc"),),
    )


def _round_trip(ts: TiltSeries, tmp_path: Path) -> TiltSeries:
    write_star(tmp_path / "ts.star", {ts.name: tilt_series_table(ts)})
    import pandas as pd

    write_star(tmp_path / "set.star", {"global": pd.DataFrame([set_row(ts, tilt_series_star_file="ts.star")])})
    row = read_star(tmp_path / "set.star")["global"].iloc[0]
    return tilt_series_from_tables(row, read_star(tmp_path / "ts.star")[ts.name])


def test_imported_series_round_trip(tmp_path: Path) -> None:
    ts = _series()
    back = _round_trip(ts, tmp_path)
    assert back.name == "01"
    assert back.tilts[1].exclusion_reason == "dark: mean far below"
    assert back == replace(
        ts,
        tilts=tuple(replace(t, exclusion_reason=b.exclusion_reason) for t, b in zip(ts.tilts, back.tilts, strict=True)),
    )


def test_motion_corrected_columns_round_trip_and_use_relion_labels(tmp_path: Path) -> None:
    ts = _series()
    tilts = tuple(
        replace(
            t,
            micrograph_path=Path(f"/r/{i}.mrc"),
            micrograph_odd_path=Path(f"/r/{i}_ODD.mrc"),
            micrograph_even_path=Path(f"/r/{i}_EVN.mrc"),
            motion_metadata_path=Path(f"/r/{i}.star"),
            accumulated_motion_angstrom=(3.0 + i, 1.0, 2.0 + i),
        )
        for i, t in enumerate(ts.tilts)
    )
    ts = replace(ts, tilts=tilts, tilt_series_pixel_spacing_angstrom=1.9)
    table = tilt_series_table(ts)
    for label in (
        "rlnMicrographName",
        "rlnMicrographNameOdd",
        "rlnMicrographNameEven",
        "rlnMicrographMetadata",
        "rlnAccumMotionTotal",
        "rlnAccumMotionEarly",
        "rlnAccumMotionLate",
    ):
        assert label in table.columns
    assert "tpMicrographNameDoseWeighted" not in table.columns
    back = _round_trip(ts, tmp_path)
    assert back.tilts[2].accumulated_motion_angstrom == (5.0, 1.0, 4.0)
    assert back.tilts[0].micrograph_even_path == Path("/r/0_EVN.mrc")
    assert back.tilt_series_pixel_spacing_angstrom == 1.9


def test_alignment_and_thickness_round_trip_under_relion_labels(tmp_path: Path) -> None:
    ts = _series()
    poses = [TiltAlignment(-3.0 * i + 1.2, -94.6, 0.1 * i, 12.5 - i, -7.25 * i) for i in range(3)]
    tilts = tuple(replace(t, alignment=None if t.excluded else pose) for t, pose in zip(ts.tilts, poses, strict=True))
    ts = replace(ts, tilts=tilts, specimen_thickness_angstrom=1830.0)
    table = tilt_series_table(ts)
    assert list(table["rlnTomoZRot"][[0, 2]]) == [-94.6, -94.6]
    assert table["rlnTomoYTilt"].isna().tolist() == [False, True, False]
    back = _round_trip(ts, tmp_path)
    assert back.tilts[2].alignment == poses[2]
    assert back.tilts[1].alignment is None
    assert back.specimen_thickness_angstrom == 1830.0
    assert "rlnTomoXTilt" not in tilt_series_table(_series()).columns


def test_local_alignment_file_and_per_tilt_rms_round_trip(tmp_path: Path) -> None:
    ts = _series()
    tilts = tuple(replace(t, local_shift_rms_angstrom=None if t.excluded else 4.5 + i) for i, t in enumerate(ts.tilts))
    ts = replace(ts, tilts=tilts, local_alignment_path=Path("/p/Align/job003/TS_01/TS_01_local.star"))
    table = tilt_series_table(ts)
    assert table["tpLocalShiftRmsAngst"].isna().tolist() == [t.excluded for t in ts.tilts]
    back = _round_trip(ts, tmp_path)
    assert [t.local_shift_rms_angstrom for t in back.tilts] == [t.local_shift_rms_angstrom for t in ts.tilts]
    assert back.local_alignment_path == Path("/p/Align/job003/TS_01/TS_01_local.star")
    plain = _round_trip(_series(), tmp_path / "plain")
    assert plain.local_alignment_path is None
    assert "tpLocalShiftRmsAngst" not in tilt_series_table(_series()).columns
