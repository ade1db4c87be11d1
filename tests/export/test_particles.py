"""Particle coordinates into RELION 5's centred Å: positions placed in a tomogram come back where RELION 5's
projection model (``reference/relion5-format.md`` §9.4, §9.6) puts them, and the centre convention is pinned
against RELION's own picker on the real EMPIAR-10164 picks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import starfile

from built_series import built_series
from tomoprep.errors import InputError
from tomoprep.export.particles import (
    VolumeFrame,
    centered_angstrom,
    particle_tables,
    read_coordinates,
    series_of_file,
    uncentered_voxels,
)
from tomoprep.export.relion5 import export_series, write_tomogram_set
from tomoprep.io.star import write_star

REAL = "tomobabel-cets-relion/relion5_project"


def _rotation(axis: str, angle_deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _relion_projection(row, tomo, image_size_xy: tuple[int, int]) -> np.ndarray:
    """RELION 5's ``Tomogram::setProjectionMatrix``: 4x4, from bin-1 volume pixels to image pixels."""
    px = tomo["rlnTomoTiltSeriesPixelSize"]
    size = np.array([tomo["rlnTomoSizeX"], tomo["rlnTomoSizeY"], tomo["rlnTomoSizeZ"]], dtype=float)
    s0, s1, s2 = np.eye(4), np.eye(4), np.eye(4)
    s0[:3, 3] = -np.floor(size / 2)
    s1[:2, 3] = [row["rlnTomoXShiftAngst"] / px, row["rlnTomoYShiftAngst"] / px]
    s2[:2, 3] = [image_size_xy[0] // 2, image_size_xy[1] // 2]
    r = np.eye(4)
    r[:3, :3] = _rotation("z", row["rlnTomoZRot"]) @ _rotation("y", row["rlnTomoYTilt"]) @ _rotation(
        "x", row["rlnTomoXTilt"])  # fmt: skip
    return s2 @ s1 @ r @ s0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_particles_placed_in_the_tomogram_come_back_in_every_tilt_within_a_voxel(tmp_path: Path, seed: int) -> None:
    """Positions in the specimen (Å from its centre) are written as tomogram voxels (voxel n // 2 at the centre,
    tomoprep's convention); RELION 5, from the particles and tomogram sets, projects each into every tilt where
    tomoprep's own model of the tilt puts the true position."""
    ts = built_series(tmp_path / "src")
    out = tmp_path / "out"
    row = export_series(ts, out).global_row
    write_tomogram_set(out, [row])
    tomogram = ts.primary_tomogram
    rng = np.random.default_rng(seed)
    half_extent = (np.array(tomogram.size_xyz) // 2 - 1) * tomogram.voxel_spacing_angstrom
    truth = rng.uniform(-half_extent, half_extent, size=(20, 3))
    voxels = truth / tomogram.voxel_spacing_angstrom + np.array(tomogram.size_xyz) // 2
    coordinates = tmp_path / "TS_07_picks.txt"
    np.savetxt(coordinates, voxels)
    frame = VolumeFrame(
        2.5, (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]), row["rlnTomoTomogramBinning"]
    )
    (particles,) = read_coordinates([coordinates], {"TS_07": frame}, unit="voxel", binning=None)
    tables = particle_tables([particles], {"TS_07": {"rlnOpticsGroupName": "og1", "rlnTomoTiltSeriesPixelSize": 2.5}})
    write_star(out / "particles.star", tables)
    star = starfile.read(out / "particles.star")["particles"]
    centred = star[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]]
    tomo = starfile.read(out / "tomograms.star").iloc[0]
    size = np.array([tomo["rlnTomoSizeX"], tomo["rlnTomoSizeY"], tomo["rlnTomoSizeZ"]], dtype=float)
    decentred = centred.to_numpy() / tomo["rlnTomoTiltSeriesPixelSize"] + size / 2.0  # particle_set.cpp
    tilts = starfile.read(out / "tilt_series" / "TS_07.star")
    binning = tomogram.binning
    for _, tilt in tilts.iterrows():
        projection = _relion_projection(tilt, tomo, (64, 48))
        relion = (projection @ np.c_[decentred, np.ones(len(decentred))].T).T[:, :2]
        pose = _rotation("z", tilt["rlnTomoZRot"]) @ _rotation("y", tilt["rlnTomoYTilt"])
        shift = np.array([tilt["rlnTomoXShiftAngst"], tilt["rlnTomoYShiftAngst"]])
        ours = (truth @ pose.T)[:, :2] / 2.5 + shift / 2.5 + np.array([64 // 2, 48 // 2])
        assert np.abs(relion - ours).max() < binning  # one tomogram voxel, in tilt-image pixels
    back = uncentered_voxels(centred.to_numpy(), frame, binning=binning)
    assert np.abs(back - voxels).max() < 1e-4


def test_angstrom_and_star_coordinates_agree_with_voxels(tmp_path: Path) -> None:
    frame = VolumeFrame(2.0, (400, 300, 100), tomogram_binning=4.0)
    voxels = np.array([[50.0, 37.0, 12.0], [0.0, 0.0, 0.0], [99.0, 74.0, 24.0]])  # 100 x 75 x 25 voxels
    from_voxels = centered_angstrom(voxels, frame, unit="voxel", binning=None)
    assert np.allclose(from_voxels[0], 0.0)  # voxel n // 2 is the centre
    assert np.allclose(centered_angstrom(voxels * 8.0, frame, unit="angstrom", binning=None), from_voxels)
    star = tmp_path / "picks.star"
    write_star(star, {"": _picks("TS_07", voxels)})
    ((name, centred),) = read_coordinates([star], {"TS_07": frame}, unit="voxel", binning=None)
    assert name == "TS_07" and np.allclose(centred, from_voxels)


def _picks(name: str, xyz: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"rlnTomoName": [name] * len(xyz), "rlnCoordinateX": xyz[:, 0], "rlnCoordinateY": xyz[:, 1],
                         "rlnCoordinateZ": xyz[:, 2]})  # fmt: skip


def test_real_picks_agree_with_relions_picker_within_one_tilt_series_pixel(real_data: Path) -> None:
    """RELION 5's Python picker (``get_particle_poses``) converts the binned picks of EMPIAR-10164 TS_01 with
    ``coord × px × binning − (SizeX / 2 − 1) × px``; tomoprep follows the C++ centre ``Size / 2``: one tilt-series
    pixel (1.35 Å) apart, a fifth of a voxel of that tomogram."""
    tomo = starfile.read(real_data / REAL / "Tomograms/job006/tomograms.star").iloc[0]
    picks = starfile.read(real_data / REAL / "Picks/job019/annotations/TS_01_particles.star")
    px, binning = tomo["rlnTomoTiltSeriesPixelSize"], tomo["rlnTomoTomogramBinning"]
    size = np.array([tomo["rlnTomoSizeX"], tomo["rlnTomoSizeY"], tomo["rlnTomoSizeZ"]], dtype=float)
    xyz = picks[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()
    relion = xyz * px * binning - (size / 2 - 1) * px
    frame = VolumeFrame(px, tuple(int(s) for s in size), binning)
    ours = centered_angstrom(xyz, frame, unit="voxel", binning=None)
    assert np.allclose(ours - relion, -px, atol=1e-3)  # the binning is written with 6 decimals
    assert np.abs(ours).max(axis=0).tolist() < (size / 2 * px).tolist()  # inside the volume


def test_file_names_pick_the_longest_series_and_bad_files_are_named(tmp_path: Path) -> None:
    assert series_of_file(Path("TS_1_picks.txt"), ["TS_1", "TS_10"]) == "TS_1"
    assert series_of_file(Path("TS_10.txt"), ["TS_1", "TS_10"]) == "TS_10"
    with pytest.raises(InputError, match=r"TS_2\.txt"):
        series_of_file(Path("TS_2.txt"), ["TS_1", "TS_10"])
    bad = tmp_path / "TS_1.txt"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(InputError, match="line 2"):
        read_coordinates([bad], {"TS_1": VolumeFrame(1.0, (10, 10, 10), 1.0)}, unit="voxel", binning=None)
    with pytest.raises(InputError, match="--coordinates-binning"):
        centered_angstrom(np.zeros((1, 3)), VolumeFrame(1.0, (10, 10, 10)), unit="voxel", binning=None)


def test_optics_table_carries_the_tilt_series_pixel_size_and_groups_series() -> None:
    optics = {"A": {"rlnOpticsGroupName": "og", "rlnTomoTiltSeriesPixelSize": 2.0},
              "B": {"rlnOpticsGroupName": "og", "rlnTomoTiltSeriesPixelSize": 2.0},
              "C": {"rlnOpticsGroupName": "og", "rlnTomoTiltSeriesPixelSize": 3.0}}  # fmt: skip
    tables = particle_tables([(n, np.zeros((2, 3))) for n in "ABC"], optics)
    assert tables["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [2.0, 3.0]
    assert tables["optics"]["rlnOpticsGroupName"].nunique() == 2
    assert tables["particles"]["rlnOpticsGroup"].tolist() == [1, 1, 1, 1, 2, 2]
    assert tables["particles"]["rlnTomoParticleName"].tolist() == ["A/1", "A/2", "B/1", "B/2", "C/1", "C/2"]


def test_particle_set_has_the_blocks_and_labels_of_relions_own(shared_real_data: Path) -> None:
    """Against the particles RELION 5 itself wrote in its tutorial (cryoCAT's copy, GPL: not redistributed):
    ``data_optics`` and ``data_particles``, and every label tomoprep writes is one RELION's file has."""
    real = starfile.read(shared_real_data / "turonova-cryoCAT/relion5/R5_tutorial_run_data.star", always_dict=True)
    optics = {"TS_01": {"rlnOpticsGroupName": "optics1", "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7,
                        "rlnAmplitudeContrast": 0.1, "rlnTomoTiltSeriesPixelSize": 1.35}}  # fmt: skip
    ours = particle_tables([("TS_01", np.zeros((3, 3)))], optics)
    assert set(ours) <= set(real)
    for block in ours:
        assert set(ours[block].columns) <= set(real[block].columns), block
    centred = real["particles"][["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                                 "rlnCenteredCoordinateZAngst"]].to_numpy()  # fmt: skip
    # RELION's own centred coordinates lie within the volume of its tomogram set (4000 x 4000 x 2000 px of 1.35 Å).
    assert np.all(np.abs(centred) <= np.array([2000, 2000, 1000]) * 1.35)
