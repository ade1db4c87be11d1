"""Tilt series survive a round trip through their STAR tables, stage records and optional columns included."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tomoprep.errors import InputError
from tomoprep.io.star import read_star, write_star
from tomoprep.io.tilt_series_star import set_row, tilt_series_from_tables, tilt_series_table
from tomoprep.model import (
    CtfHand,
    CtfSample,
    GainReference,
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltCtf,
    TiltExclusion,
    TiltImage,
    TiltMotion,
    TiltSeries,
)


def _series() -> TiltSeries:
    tilts = tuple(
        TiltImage(
            TiltAcquisition(
                acquisition_index=i,
                section_index=2 - i,
                nominal_tilt_angle_deg=-3.0 * i,
                pre_exposure_e_per_angstrom2=3.0 * i,
                dose_e_per_angstrom2=3.0,
                movie_path=Path(f"/data/m{i}.eer"),
                frame_count=400 + i,
                nominal_defocus_angstrom=35000.0,
                gain=GainReference(Path("/data/gain.gain"), rotation_deg=90, flip="y"),
                date_time=datetime(2024, 1, 1, 10, 0, i),
            ),
            exclusion=TiltExclusion("auto: dark: mean far below") if i == 1 else None,
        )
        for i in range(3)
    )
    return TiltSeries(
        name="01",
        original_pixel_spacing_angstrom=1.9,
        optics=Optics(200.0, 2.7, 0.07, "g1"),
        tilts=tilts,
        nominal_tilt_axis_angle_deg=-95.0,
        hand=1,
        sources=(Path("/data/01.mdoc"),),
    )


def _round_trip(ts: TiltSeries, tmp_path: Path) -> TiltSeries:
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_star(tmp_path / "ts.star", {ts.name: tilt_series_table(ts)})
    write_star(tmp_path / "set.star", {"global": pd.DataFrame([set_row(ts, tilt_series_star_file="ts.star")])})
    row = read_star(tmp_path / "set.star")["global"].iloc[0]
    return tilt_series_from_tables(row, read_star(tmp_path / "ts.star")[ts.name])


def test_imported_series_round_trip(tmp_path: Path) -> None:
    ts = _series()
    back = _round_trip(ts, tmp_path)
    assert back == ts
    assert [t.motion for t in back.tilts] == [None] * 3 and [t.alignment for t in back.tilts] == [None] * 3
    assert [t.exclusion for t in back.tilts] == [None, TiltExclusion("auto: dark: mean far below"), None]


def test_exclusion_reasons_lose_quotes_that_would_break_star_readers(tmp_path: Path) -> None:
    ts = _series()
    quoted = replace(ts.tilts[1], exclusion=TiltExclusion("dark: mean 'far'  below"))
    back = _round_trip(ts.with_tilts((ts.tilts[0], quoted, ts.tilts[2])), tmp_path)
    assert back.tilts[1].exclusion == TiltExclusion("dark: mean far below")
    no_reason = _round_trip(ts.with_tilts((ts.tilts[0], replace(quoted, exclusion=TiltExclusion()), ts.tilts[2])),
                            tmp_path / "none")  # fmt: skip
    assert no_reason.tilts[1].exclusion == TiltExclusion("")


def test_units_are_translated_at_the_file(tmp_path: Path) -> None:
    """The model holds Å (positive underfocus); RELION's rlnTomoNominalDefocus is µm, negative for underfocus."""
    table = tilt_series_table(_series())
    assert list(table["rlnTomoNominalDefocus"]) == [-3.5] * 3
    assert list(table["rlnTomoNominalTiltAxisAngle"]) == [-95.0] * 3  # the series' value in every row
    assert _round_trip(_series(), tmp_path).tilts[0].acquisition.nominal_defocus_angstrom == 35000.0


def test_motion_record_round_trips_under_relion_labels(tmp_path: Path) -> None:
    ts = _series()
    tilts = tuple(
        replace(
            t,
            motion=TiltMotion(
                micrograph_path=Path(f"/r/{i}.mrc"),
                micrograph_odd_path=Path(f"/r/{i}_ODD.mrc"),
                micrograph_even_path=Path(f"/r/{i}_EVN.mrc"),
                motion_metadata_path=Path(f"/r/{i}.star"),
                accumulated_motion_angstrom=(3.0 + i, 1.0, 2.0 + i),
            ),
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
    assert back.tilts == ts.tilts
    assert back.tilts[2].motion is not None and back.tilts[2].motion.accumulated_motion_angstrom == (5.0, 1.0, 4.0)
    assert back.tilt_series_pixel_spacing_angstrom == 1.9


def test_a_stack_section_is_an_acquisition_not_a_motion_record(tmp_path: Path) -> None:
    ts = _series()
    tilts = tuple(
        replace(t, acquisition=replace(t.acquisition, movie_path=None, stack_path=Path("/s/01.st"))) for t in ts.tilts
    )
    ts = replace(ts, tilts=tilts)
    table = tilt_series_table(ts)
    assert list(table["rlnMicrographName"]) == ["3@/s/01.st", "2@/s/01.st", "1@/s/01.st"]
    back = _round_trip(ts, tmp_path)
    assert back.tilts == ts.tilts and all(t.motion is None for t in back.tilts)


def test_alignment_record_and_thickness_round_trip_under_relion_labels(tmp_path: Path) -> None:
    ts = _series()
    poses = [TiltAlignment(-3.0 * i + 1.2, -94.6, 0.1 * i, 12.5 - i, -7.25 * i) for i in range(3)]
    tilts = tuple(replace(t, alignment=None if t.excluded else pose) for t, pose in zip(ts.tilts, poses, strict=True))
    ts = replace(ts, tilts=tilts, specimen_thickness_angstrom=1830.0)
    table = tilt_series_table(ts)
    assert list(table["rlnTomoZRot"][[0, 2]]) == [-94.6, -94.6]
    assert table["rlnTomoYTilt"].isna().tolist() == [False, True, False]
    assert "tpLocalShiftRmsAngst" not in table.columns
    back = _round_trip(ts, tmp_path)
    assert back.tilts[2].alignment == poses[2]
    assert back.tilts[1].alignment is None
    assert back.specimen_thickness_angstrom == 1830.0
    assert "rlnTomoXTilt" not in tilt_series_table(_series()).columns


def test_ctf_record_and_hand_round_trip_under_relion_labels(tmp_path: Path) -> None:
    ts = _series()
    fitted = TiltCtf(31250.5, 30400.25, -42.5, 12.0, 6.75, 0.31, "", Path("/run/01_ctf_spectra.mrc"), 1)
    repaired = TiltCtf(31000.0, 30000.0, -40.0, 0.0, math.inf, 0.0, "no rings", Path("/run/01_ctf_spectra.mrc"), 0)
    tilts = (replace(ts.tilts[0], ctf=repaired), ts.tilts[1], replace(ts.tilts[2], ctf=fitted))
    ts = replace(ts, tilts=tilts, ctf_hand=CtfHand(None, 2.5))
    table = tilt_series_table(ts)
    assert table["rlnCtfAstigmatism"].tolist()[2] == pytest.approx(850.25)
    assert table["rlnCtfImage"].tolist() == ["1@/run/01_ctf_spectra.mrc", "None", "2@/run/01_ctf_spectra.mrc"]
    assert set_row(ts, tilt_series_star_file="ts.star")["tpCtfHand"] == 0
    back = _round_trip(ts, tmp_path)
    assert [t.ctf for t in back.tilts] == [repaired, None, fitted]
    assert back.ctf_hand == CtfHand(None, 2.5)
    plain = tilt_series_table(_series())
    assert "rlnDefocusU" not in plain.columns and _round_trip(_series(), tmp_path / "plain").ctf_hand is None


def test_ctf_sample_thickness_and_tilt_round_trip_in_the_set_table(tmp_path: Path) -> None:
    ts = replace(_series(), ctf_sample=CtfSample(1985.0, 31.5, 87.25, 0.75, 2.5, 0.4))
    row = set_row(ts, tilt_series_star_file="ts.star")
    assert (row["tpCtfThicknessAngst"], row["tpCtfTiltOffset"]) == (1985.0, 2.5)
    assert _round_trip(ts, tmp_path / "measured").ctf_sample == ts.ctf_sample
    # Thickness asked for but not measurable, tilt not refined: written as nan, read back as not measured.
    unmeasured = replace(ts, ctf_sample=CtfSample(None, None, 87.25, 0.75, 2.5, 0.4))
    assert math.isnan(set_row(unmeasured, tilt_series_star_file="ts.star")["tpCtfThicknessAngst"])
    assert _round_trip(unmeasured, tmp_path / "unmeasured").ctf_sample == unmeasured.ctf_sample
    assert "tpCtfThicknessAngst" not in set_row(_series(), tilt_series_star_file="ts.star")
    assert _round_trip(_series(), tmp_path / "plain").ctf_sample is None


def test_local_alignment_file_and_per_tilt_rms_round_trip(tmp_path: Path) -> None:
    ts = _series()
    tilts = tuple(
        t if t.excluded else replace(t, alignment=TiltAlignment(0.0, -95.0, local_shift_rms_angstrom=4.5 + i))
        for i, t in enumerate(ts.tilts)
    )
    ts = replace(ts, tilts=tilts, local_alignment_path=Path("/p/Align/job003/TS_01/TS_01_local.star"))
    table = tilt_series_table(ts)
    assert table["tpLocalShiftRmsAngst"].isna().tolist() == [t.excluded for t in ts.tilts]
    back = _round_trip(ts, tmp_path)
    assert back.tilts == ts.tilts
    assert [None if t.alignment is None else t.alignment.local_shift_rms_angstrom for t in back.tilts] == [
        4.5,
        None,
        6.5,
    ]
    assert back.local_alignment_path == Path("/p/Align/job003/TS_01/TS_01_local.star")
    plain = _round_trip(_series(), tmp_path / "plain")
    assert plain.local_alignment_path is None


def test_matching_scores_corrections_and_axis_scores_file_round_trip(tmp_path: Path) -> None:
    ts = _series()
    poses = [TiltAlignment(-3.0 * i, -95.0, match_score=0.4125 - 0.5 * i, match_correction_angstrom=1.75 * i)
             for i in range(3)]  # fmt: skip
    tilts = tuple(t if t.excluded else replace(t, alignment=pose) for t, pose in zip(ts.tilts, poses, strict=True))
    ts = replace(ts, tilts=tilts, axis_scores_path=Path("/p/runs/003_align/01/01_axis_scores.star"))
    table = tilt_series_table(ts)
    assert table["tpMatchScore"].tolist()[::2] == [0.4125, -0.5875]
    assert table["tpMatchCorrectionAngst"].isna().tolist() == [False, True, False]
    assert set_row(ts, tilt_series_star_file="ts.star")["tpAxisScoresFile"] == str(ts.axis_scores_path)
    back = _round_trip(ts, tmp_path)
    assert back.tilts == ts.tilts
    assert back.axis_scores_path == ts.axis_scores_path
    # An alignment without matching (read from files) writes neither column and reads back without them.
    plain = replace(ts, tilts=tuple(t if t.alignment is None else replace(t, alignment=TiltAlignment(0.0, -95.0))
                                    for t in ts.tilts), axis_scores_path=None)  # fmt: skip
    assert not {"tpMatchScore", "tpMatchCorrectionAngst"} & set(tilt_series_table(plain).columns)
    again = _round_trip(plain, tmp_path / "plain")
    assert again.tilts[0].alignment == TiltAlignment(0.0, -95.0) and again.axis_scores_path is None


def test_tilts_that_disagree_on_the_axis_are_refused_naming_the_file(tmp_path: Path) -> None:
    ts = _series()
    table = tilt_series_table(ts)
    table.loc[2, "rlnTomoNominalTiltAxisAngle"] = -94.0
    row = pd.Series(set_row(ts, tilt_series_star_file="ts.star"))
    with pytest.raises(InputError, match=r"ts\.star: the tilts of '01' disagree on rlnTomoNominalTiltAxisAngle"):
        tilt_series_from_tables(row, table, source=tmp_path / "ts.star")
