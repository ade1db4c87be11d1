"""Tomogram and aligned-stack MRC files with their .tlt, and tomograms in the set STAR (RELION's fields and ours)."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from tomoprep.io.imod import read_tilt_angles, read_xtilt
from tomoprep.io.tomogram_files import write_aligned_stack, write_tomogram
from tomoprep.io.tomogram_star import TOMOGRAM_TABLE, primary_fields, tomogram_rows, tomograms_from_star
from tomoprep.model import Optics, TiltAcquisition, TiltImage, TiltSeries, Tomogram


def test_a_tomogram_is_a_float32_volume_with_its_voxel_size_and_origin_0(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float64)
    size = write_tomogram(tmp_path / "t" / "TS_01_bin4.mrc", volume, voxel_spacing_angstrom=13.5)
    assert size == (7, 6, 5)
    with mrcfile.open(tmp_path / "t" / "TS_01_bin4.mrc") as mrc:
        assert mrc.data.dtype == np.float32 and int(mrc.header.mode) == 2 and int(mrc.header.ispg) == 1
        assert mrc.voxel_size.tolist() == pytest.approx((13.5, 13.5, 13.5))
        assert (float(mrc.header.origin.x), float(mrc.header.origin.y), float(mrc.header.origin.z)) == (0, 0, 0)
        np.testing.assert_allclose(mrc.data, volume, rtol=1e-6)
    with pytest.raises(ValueError, match="a tomogram must be a"):
        write_tomogram(tmp_path / "flat.mrc", volume[0], voxel_spacing_angstrom=1.0)


def test_an_aligned_stack_is_an_image_stack_with_its_tlt(tmp_path: Path) -> None:
    stack = np.zeros((3, 4, 4), dtype=np.float32)
    tlt = write_aligned_stack(tmp_path / "TS_01_bin4.mrc", stack, pixel_spacing_angstrom=8.0,
                              tilt_angles_deg=[-30.004, 1.5, 29.996])  # fmt: skip
    assert tlt == tmp_path / "TS_01_bin4.tlt" and not (tmp_path / "TS_01_bin4.xtilt").exists()
    np.testing.assert_allclose(read_tilt_angles(tlt), [-30.0, 1.5, 30.0])
    write_aligned_stack(tmp_path / "x.mrc", stack, pixel_spacing_angstrom=8.0, tilt_angles_deg=[0, 1, 2],
                        x_tilts_deg=[0.0, 0.5, -0.25])  # fmt: skip
    np.testing.assert_allclose(read_xtilt(tmp_path / "x.xtilt"), [0.0, 0.5, -0.25])
    with mrcfile.open(tmp_path / "TS_01_bin4.mrc") as mrc:
        assert mrc.data.shape == (3, 4, 4) and int(mrc.header.ispg) == 0 and float(mrc.voxel_size.x) == 8.0
    with pytest.raises(ValueError, match="3 tilt angles need"):
        write_aligned_stack(tmp_path / "bad.mrc", stack[:2], pixel_spacing_angstrom=8.0, tilt_angles_deg=[0, 1, 2])


def _series(*tomograms: Tomogram) -> TiltSeries:
    tilt = TiltImage(TiltAcquisition(0, 0, 0.0, 0.0, 3.0))
    return TiltSeries("TS_01", 1.0, Optics(), (tilt,), 85.0, tilt_series_pixel_spacing_angstrom=2.0,
                      tomograms=tomograms)  # fmt: skip


def test_the_finest_tomogram_in_relions_fields_and_every_one_in_our_table() -> None:
    fine = Tomogram(Path("/p/TS_01_bin4.mrc"), 4.0, 8.0, (100, 90, 50), half1_path=Path("/p/h1.mrc"),
                    half2_path=Path("/p/h2.mrc"), ctf_correction="phase_flip")  # fmt: skip
    coarse = Tomogram(Path("/p/TS_01_bin8.mrc"), 8.0, 16.0, (50, 45, 25), denoised_path=Path("/p/d.mrc"))
    ts = _series(coarse, fine)
    fields = primary_fields(ts)
    assert fields["rlnTomoTomogramBinning"] == 4.0 and fields["rlnTomoReconstructedTomogram"] == "/p/TS_01_bin4.mrc"
    assert (fields["rlnTomoSizeX"], fields["rlnTomoSizeY"], fields["rlnTomoSizeZ"]) == (400, 360, 200)
    assert fields["rlnTomoReconstructedTomogramDenoised"] == "None"
    row = pd.Series({"rlnTomoName": "TS_01", **fields})
    table = pd.DataFrame(tomogram_rows(ts))
    assert list(table["rlnTomoTomogramBinning"]) == [4.0, 8.0] and TOMOGRAM_TABLE == "tp_tomograms"
    assert tomograms_from_star(row, table, tilt_series_pixel_spacing_angstrom=2.0) == (fine, coarse)
    # A set written by RELION names one tomogram, in its own fields only.
    (read,) = tomograms_from_star(row, None, tilt_series_pixel_spacing_angstrom=2.0)
    assert read.path == fine.path and read.size_xyz == fine.size_xyz and read.voxel_spacing_angstrom == 8.0
    assert read.half1_path == fine.half1_path and read.denoised_path is None
    assert tomograms_from_star(pd.Series({"rlnTomoName": "TS_01"}), None, tilt_series_pixel_spacing_angstrom=2.0) == ()
