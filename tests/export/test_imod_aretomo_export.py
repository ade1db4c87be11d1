"""IMOD and AreTomo out and back: real alignments carried into RELION 5's fields as RELION 5's own importers
compute them (``readIMODResults``, ``readAreTomoResults``; ``reference/relion5-format.md`` §9.5), and tomoprep's
alignments written as IMOD and AreTomo files that read back onto the same tilts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from built_series import built_series
from tomoprep.errors import InputError
from tomoprep.export.imod_aretomo import export_alignment_files, stack_tilts
from tomoprep.export.relion5 import export_series
from tomoprep.io.aretomo import alignment_from_aretomo, read_aln, tilts_of_aln_rows
from tomoprep.io.imod import read_tilt_angles, read_xf, read_xtilt
from tomoprep.io.imod_align import alignment_from_imod
from tomoprep.model import Optics, TiltAcquisition, TiltImage, TiltSeries

ETOMO, CETS, LIL = "teamtomo-etomofiles", "tomobabel-cets-imod", "teamtomo-lil-aretomo"
SPACING = 1.35
ANGLE_TOLERANCE_DEG, SHIFT_TOLERANCE_ANGSTROM = 0.01, 0.1


def _stack_series(folder: Path, nominal_deg: np.ndarray, alignments, *, axis_deg: float) -> TiltSeries:
    """A series imported from a stack, section k at ``nominal_deg[k]``, dose-symmetric, with ``alignments``."""
    stack = folder / "TS.st"
    folder.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(stack, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(len(nominal_deg), 12, 16)).astype(np.float32))
        mrc.voxel_size = SPACING
    order = sorted(range(len(nominal_deg)), key=lambda k: (abs(nominal_deg[k]), -nominal_deg[k]))
    tilts = tuple(
        TiltImage(
            TiltAcquisition(
                acquisition_index=order.index(k),
                section_index=k,
                nominal_tilt_angle_deg=float(nominal_deg[k]),
                pre_exposure_e_per_angstrom2=3.0 * order.index(k),
                dose_e_per_angstrom2=3.0,
                nominal_defocus_angstrom=40000.0,
                stack_path=stack,
            ),
            alignment=alignments[k],
        )
        for k in range(len(nominal_deg))
    )
    return TiltSeries(
        name="TS",
        original_pixel_spacing_angstrom=SPACING,
        optics=Optics(),
        tilts=tilts,
        nominal_tilt_axis_angle_deg=axis_deg,
        tilt_series_pixel_spacing_angstrom=SPACING,
        specimen_thickness_angstrom=1500.0,
    )


def _relion_reads_imod(xf: np.ndarray, tlt: np.ndarray, *, axis_deg: float) -> np.ndarray:
    """RELION 5's ``readIMODResults``, per view: ZRot = ±acos(A11), the sign nearer the nominal axis;
    shifts = −A⁻¹ (DX, DY) × px; YTilt = .tlt (AngleOffset 0); XTilt 0. Columns: XTilt YTilt ZRot dX dY."""
    rows = []
    for (a11, a12, dx), (a21, a22, dy), tilt in zip(xf[:, 0], xf[:, 1], tlt, strict=True):
        a = np.array([[a11, a12], [a21, a22]])
        shift = -np.linalg.solve(a, [dx, dy]) * SPACING
        z_rot = np.degrees(np.arccos(np.clip(a11, -1, 1)))
        z_rot = min((z_rot, -z_rot), key=lambda z: abs((z - axis_deg + 180) % 360 - 180))
        rows.append([0.0, tilt, z_rot, *shift])
    return np.array(rows)


def _exported_fields(ts: TiltSeries, out: Path) -> np.ndarray:
    export_series(ts, out)
    table = starfile.read(out / "tilt_series" / f"{ts.name}.star")
    return table[["rlnTomoXTilt", "rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]]


@pytest.mark.parametrize(("folder", "stem", "rawtlt"), [(ETOMO, "TS_001", True), (CETS, "TS_03", False)])
def test_real_imod_alignment_exports_what_relions_importer_computes(
    real_data: Path, tmp_path: Path, folder: str, stem: str, rawtlt: bool
) -> None:
    xf = read_xf(real_data / folder / f"{stem}.xf")
    tlt = read_tilt_angles(real_data / folder / f"{stem}.tlt")
    nominal = read_tilt_angles(real_data / folder / f"{stem}.rawtlt") if rawtlt else np.round(tlt)
    axis = 85.0
    # RELION sets XTilt 0: the tiltalign X tilts (0.01° here) are left out on both sides.
    ts = _stack_series(
        tmp_path / "src", nominal, alignment_from_imod(xf, tlt, pixel_spacing_angstrom=SPACING), axis_deg=axis
    )
    ours = _exported_fields(ts, tmp_path / "out")
    relion = _relion_reads_imod(xf, tlt, axis_deg=axis)[np.argsort(nominal, kind="stable")]  # rows by nominal tilt
    assert np.abs(ours.iloc[:, :3].to_numpy() - relion[:, :3]).max() < ANGLE_TOLERANCE_DEG
    assert np.abs(ours.iloc[:, 3:].to_numpy() - relion[:, 3:]).max() < SHIFT_TOLERANCE_ANGSTROM


def test_real_aretomo_alignment_exports_what_relions_importer_computes(real_data: Path, tmp_path: Path) -> None:
    aln = read_aln(real_data / LIL / "example_v1_3_0.aln")
    alignments = dict(
        zip(aln.sections.tolist(), alignment_from_aretomo(aln, pixel_spacing_angstrom=SPACING), strict=True)
    )
    nominal = np.array([row.tilt_deg for row in sorted(aln.rows, key=lambda r: r.sec)])
    ts = _stack_series(tmp_path / "src", nominal, [alignments[k] for k in range(len(nominal))], axis_deg=-94.0)
    ours = _exported_fields(ts, tmp_path / "out")
    # readAreTomoResults: YTilt = TILT, ZRot = ROT, XTilt = 0, shifts (TX, TY) × px; rows by tilt angle.
    relion = np.array(
        [
            [0.0, r.tilt_deg, r.rot_deg, r.tx_px * SPACING, r.ty_px * SPACING]
            for r in sorted(aln.rows, key=lambda r: (r.tilt_deg, r.sec))
        ]
    )
    assert np.abs(ours.iloc[:, :3].to_numpy() - relion[:, :3]).max() < ANGLE_TOLERANCE_DEG
    assert np.abs(ours.iloc[:, 3:].to_numpy() - relion[:, 3:]).max() < SHIFT_TOLERANCE_ANGSTROM


def _com(path: Path) -> dict[str, str]:
    lines = [line.split(None, 1) for line in path.read_text().splitlines() if line and not line.startswith("$")]
    return {key: value for key, *rest in lines for value in (rest[0] if rest else "",)}


def test_imod_files_read_back_onto_the_same_tilts(tmp_path: Path) -> None:
    ts = built_series(tmp_path / "src", tomogram=False)
    files = export_alignment_files(ts, tmp_path / "imod", formats=frozenset({"imod"}))
    folder = files.folder
    back = alignment_from_imod(
        read_xf(folder / "TS_07.xf"),
        read_tilt_angles(folder / "TS_07.tlt"),
        pixel_spacing_angstrom=2.5,
        x_tilts_deg=read_xtilt(folder / "TS_07.xtilt"),
    )
    tilts = stack_tilts(ts)
    assert len(back) == len(tilts) == len(ts.included_tilts)
    for tilt, pose in zip(tilts, back, strict=True):
        assert pose.y_tilt_deg == pytest.approx(tilt.alignment.y_tilt_deg, abs=0.005)  # %7.2f
        assert pose.z_rot_deg == pytest.approx(tilt.alignment.z_rot_deg, abs=1e-4)
        assert pose.shift_x_angstrom == pytest.approx(tilt.alignment.shift_x_angstrom, abs=0.0005 * 2.5 * 2)
        assert pose.shift_y_angstrom == pytest.approx(tilt.alignment.shift_y_angstrom, abs=0.0005 * 2.5 * 2)
    newst, tilt_com = _com(folder / "newst.com"), _com(folder / "tilt.com")
    for name in (newst["InputFile"], newst["TransformFile"], tilt_com["TILTFILE"], tilt_com["XTILTFILE"]):
        assert (folder / name).is_file(), name
    assert tilt_com["InputProjections"] == newst["OutputFile"]
    assert tilt_com["FULLIMAGE"] == "64 48" and tilt_com["THICKNESS"] == "26"
    with mrcfile.open(folder / "TS_07.st") as mrc:
        assert mrc.data.shape == (len(tilts), 48, 64)
        assert float(mrc.voxel_size.x) == pytest.approx(2.5)
        first = mrcfile.read(tilts[0].motion.micrograph_path)
        assert np.array_equal(mrc.data[0], first)


def test_aretomo_file_reads_back_onto_the_same_tilts(tmp_path: Path) -> None:
    ts = built_series(tmp_path / "src", tomogram=False)
    files = export_alignment_files(ts, tmp_path / "aretomo", formats=frozenset({"aretomo"}))
    aln = read_aln(files.folder / "TS_07.aln")
    rows = tilts_of_aln_rows(ts.tilts, aln, path=files.folder / "TS_07.aln")
    back = alignment_from_aretomo(aln, pixel_spacing_angstrom=2.5)
    assert len(rows) == len(ts.included_tilts) and not any(t.excluded for t in rows)
    assert [r.tilt_deg for r in aln.rows] == sorted(r.tilt_deg for r in aln.rows)
    for tilt, pose in zip(rows, back, strict=True):
        assert pose.y_tilt_deg == pytest.approx(tilt.alignment.y_tilt_deg, abs=0.005)
        assert pose.z_rot_deg == pytest.approx(tilt.alignment.z_rot_deg, abs=5e-5)
        assert pose.shift_x_angstrom == pytest.approx(tilt.alignment.shift_x_angstrom, abs=0.0005 * 2.5 * 2)


def test_an_x_tilt_cannot_go_into_an_aln_and_the_error_says_what_can(tmp_path: Path) -> None:
    ts = built_series(tmp_path / "src", tomogram=False)
    tilted = ts.with_tilts(tuple(replace(t, alignment=replace(t.alignment, x_tilt_deg=1.5)) for t in ts.tilts))
    with pytest.raises(InputError, match="--format imod"):
        export_alignment_files(tilted, tmp_path / "a", formats=frozenset({"aretomo"}))
    files = export_alignment_files(tilted, tmp_path / "b", formats=frozenset({"imod"}))
    assert np.allclose(read_xtilt(files.folder / "TS_07.xtilt"), 1.5)
