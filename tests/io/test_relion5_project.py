"""Reading a RELION 5 tomogram set back: the real EMPIAR-10164 project's TS_01 as RELION wrote it."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import starfile

from tomoprep.errors import InputError
from tomoprep.io.relion5_project import find_global_file, read_relion5_project

REAL = "tomobabel-cets-relion/relion5_project"


@pytest.fixture
def project(real_data: Path, tmp_path: Path) -> Path:
    """The real project with its global tables cut to TS_01, the only series whose tables it ships."""
    root = tmp_path / "relion"
    shutil.copytree(real_data / REAL, root)
    for table in root.glob("*/job*/*.star"):
        blocks = starfile.read(table, always_dict=True)
        if "global" in blocks:
            starfile.write({"global": blocks["global"][blocks["global"]["rlnTomoName"] == "TS_01"]}, table)
    return root


def test_a_reconstruction_job_reads_with_relions_alignment_and_ctf(project: Path) -> None:
    (ts,) = read_relion5_project(project / "Tomograms" / "job006")
    table = starfile.read(project / "Tomograms/job006/tilt_series/TS_01.star")
    assert ts.name == "TS_01" and ts.n_tilts == len(table) == 40
    assert (ts.hand, ts.tilt_series_pixel_spacing_angstrom, ts.nominal_tilt_axis_angle_deg) == (-1, 1.35, 85.0)
    assert (ts.original_pixel_spacing_angstrom, ts.optics.optics_group_name) == (0.675, "optics1")
    first, row = ts.tilts[0], table.iloc[0]
    assert first.alignment.y_tilt_deg == row["rlnTomoYTilt"] and first.alignment.z_rot_deg == row["rlnTomoZRot"]
    assert first.alignment.shift_x_angstrom == row["rlnTomoXShiftAngst"]
    assert (
        first.ctf.defocus_u_angstrom == row["rlnDefocusU"] and first.ctf.astigmatism_angle_deg == row["rlnDefocusAngle"]
    )
    assert first.acquisition.nominal_defocus_angstrom == 40000.0  # -4 µm
    assert first.motion.micrograph_path == project / row["rlnMicrographName"]
    assert first.motion.micrograph_even_path == project / row["rlnMicrographNameEven"]
    assert first.motion.accumulated_motion_angstrom == (6.867403, 0.0, 6.867403)
    # Dose order from the pre-exposure; the dose from its steps (3 e/Å² per tilt in this series).
    by_dose = sorted(ts.tilts, key=lambda t: t.acquisition.acquisition_index)
    pre = [t.acquisition.pre_exposure_e_per_angstrom2 for t in by_dose]
    assert pre == sorted(pre) and by_dose[0].acquisition.nominal_tilt_angle_deg == pytest.approx(0.0, abs=0.01)
    assert {t.acquisition.dose_e_per_angstrom2 for t in by_dose[:5]} == {3.0}
    assert ts.tomograms == ()  # this job wrote the halves only, no rlnTomoReconstructedTomogram


def test_earlier_jobs_read_without_the_later_stages(project: Path) -> None:
    (imported,) = read_relion5_project(project / "Import" / "job001" / "tilt_series.star")
    assert imported.n_tilts == 41 and all(t.motion is None and t.alignment is None and t.ctf is None
                                          for t in imported.tilts)  # fmt: skip
    assert imported.tilt_series_pixel_spacing_angstrom is None
    (ctf,) = read_relion5_project(project / "CtfFind" / "job003")
    assert all(t.ctf is not None and t.alignment is None for t in ctf.tilts)
    assert all(math.isfinite(t.ctf.fit_resolution_angstrom) for t in ctf.tilts)


def test_missing_tables_and_folders_are_named(project: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds none of"):
        find_global_file(tmp_path)
    (project / "Tomograms/job006/tilt_series/TS_01.star").unlink()
    with pytest.raises(InputError, match=r"TS_01\.star"):
        read_relion5_project(project / "Tomograms" / "job006")
