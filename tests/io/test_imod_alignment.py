"""IMOD alignments in RELION 5's fields: .xtilt files, tiltalign logs, the conversions and their sign conventions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.io.imod import read_tilt_angles, read_xf, read_xtilt, write_tilt_angles, write_xf, write_xtilt
from tomoprep.io.imod_align import alignment_from_imod, imod_from_alignment, read_tiltalign_log
from tomoprep.model import TiltAlignment

ETOMO = Path("teamtomo-etomofiles")
CETS = Path("tomobabel-cets-imod")
UITEST = Path("imod-etomo-uitestdata")

# --- .xtilt


def test_xtilt_written_by_tiltalign(real_data: Path, tmp_path: Path) -> None:
    source = real_data / ETOMO / "TS_001.xtilt"
    x_tilts = read_xtilt(source)
    assert x_tilts.shape == (40,)
    assert (x_tilts[0], x_tilts[6], x_tilts[-1]) == (-0.01, 0.0, 0.0)
    out = tmp_path / "out.xtilt"
    write_xtilt(out, x_tilts)
    # "-0.00" lines come back as they were: -0.0 keeps its sign through %7.2f.
    assert out.read_bytes() == source.read_bytes()


def test_imod_tutorial_xtilt_is_zero(shared_real_data: Path) -> None:
    x_tilts = read_xtilt(shared_real_data / UITEST / "BBa.xtilt")
    np.testing.assert_array_equal(x_tilts, np.zeros(61))


def test_xtilt_with_two_columns_names_line(real_data: Path) -> None:
    with pytest.raises(InputError, match="line 1 holds 2 numbers") as info:
        read_xtilt(real_data / CETS / "TS_03.tlt")
    assert info.value.path == real_data / CETS / "TS_03.tlt"


def test_write_xtilt_rejects_non_finite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="X-axis tilts must be finite"):
        write_xtilt(tmp_path / "a.xtilt", [0.0, math.inf])


# --- tiltalign logs


def test_align_log_entries_and_solution(shared_real_data: Path) -> None:
    log = read_tiltalign_log(shared_real_data / UITEST / "aligna.log")
    assert log.angle_offset_deg == 0.2
    assert log.rotation_angle_deg == -11.5
    assert log.minimum_tilt_rotation_deg == -11.91
    assert (log.residual_error_mean, log.residual_error_sd, log.residual_error_unit) == (0.243, 0.259, "")
    assert log.beam_tilt_deg is None
    assert log.solution_views == tuple(range(1, 122))
    assert (log.solution_rotation_deg[0], log.solution_tilt_deg[0]) == (-12.1, 60.2)
    # TiltOption = 0 fixes every tilt at its entered value plus AngleOffset: the solved tilts are whole
    # degrees plus 0.2. So the angles tiltalign reports (and writes to .tlt) include the offset.
    np.testing.assert_allclose(np.array(log.solution_tilt_deg) - 0.2, np.arange(60, -61, -1), atol=1e-9)


def test_ta_solution_log(real_data: Path) -> None:
    log = read_tiltalign_log(real_data / "alisterburt-tomo_preprocessing" / "taSolution.log")
    assert log.beam_tilt_deg == 0.14
    assert log.minimum_tilt_rotation_deg == 85.23
    assert log.angle_offset_deg is None and log.rotation_angle_deg is None and log.residual_error_mean is None
    # View 1 was left out of the alignment: the table starts at view 2.
    assert log.solution_views == tuple(range(2, 42))
    assert (log.solution_rotation_deg[0], log.solution_tilt_deg[0]) == (85.2, -47.4)
    assert log.solution_tilt_deg[-1] == 69.6


def test_log_without_results(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("*** Entries to program tiltalign ***\n  ModelFile = a.fid\n")
    with pytest.raises(InputError, match="holds no tiltalign result"):
        read_tiltalign_log(path)
    with pytest.raises(InputError, match="does not exist"):
        read_tiltalign_log(tmp_path / "absent.log")


def test_last_angle_offset_wins(tmp_path: Path) -> None:
    path = tmp_path / "align.log"
    path.write_text("  AngleOffset = 0.5\n...\n  AngleOffset = -1.25\n")
    assert read_tiltalign_log(path).angle_offset_deg == -1.25


# --- conversions on real files, checked against values computed by hand from the first lines


def test_teamtomo_first_view(real_data: Path) -> None:
    # 0.1020875   0.9947760  -0.9947760   0.1020875       2.395      -3.871
    # A is a rotation R(-θ) with cos θ = 0.1020875, sin θ = 0.9947760: θ = 90° - atan(0.1020875 / 0.9947760)
    # = 90° - 5.8594° = 84.1406°. A⁻¹ = Aᵀ, Aᵀ s = (0.1020875·2.395 + 0.9947760·3.871,
    # 0.9947760·2.395 - 0.1020875·3.871) = (4.0953, 1.9873) px, so the shift is -(4.0953, 1.9873) px.
    alignments = alignment_from_imod(
        read_xf(real_data / ETOMO / "TS_001.xf"),
        read_tilt_angles(real_data / ETOMO / "TS_001.tlt"),
        pixel_spacing_angstrom=2.0,
        x_tilts_deg=read_xtilt(real_data / ETOMO / "TS_001.xtilt"),
    )
    first = alignments[0]
    assert first.z_rot_deg == pytest.approx(84.1406, abs=1e-4)
    assert (first.shift_x_angstrom, first.shift_y_angstrom) == pytest.approx((-8.1906, -3.9746), abs=2e-4)
    assert (first.y_tilt_deg, first.x_tilt_deg) == (-57.12, -0.01)
    assert len(alignments) == 40
    assert all(84.0 < a.z_rot_deg < 84.3 for a in alignments)


def test_tomobabel_first_view(real_data: Path) -> None:
    # 0.0856836   0.9963228  -0.9963228   0.0856836     116.328    -191.695
    # θ = 90° - atan(0.0856836 / 0.9963228) = 90° - 4.9153° = 85.0847°;
    # Aᵀ s = (0.0856836·116.328 + 0.9963228·191.695, 0.9963228·116.328 - 0.0856836·191.695) = (200.958, 99.475).
    alignments = alignment_from_imod(
        read_xf(real_data / CETS / "TS_03.xf"),
        read_tilt_angles(real_data / CETS / "TS_03.tlt"),
        pixel_spacing_angstrom=1.0,
    )
    first = alignments[0]
    assert first.z_rot_deg == pytest.approx(85.0847, abs=1e-4)
    assert (first.shift_x_angstrom, first.shift_y_angstrom) == pytest.approx((-200.958, -99.475), abs=2e-3)
    assert (first.y_tilt_deg, first.x_tilt_deg) == (-57.0, 0.0)


def test_imod_tutorial_view_with_magnification(shared_real_data: Path) -> None:
    # 0.9787406  -0.1898027   0.1861717   0.9824202     -20.199       1.220   (tiltalign solved mag and stretch)
    # Rotation closest to A: -atan2(A21 - A12, A11 + A22) = -atan2(0.3759744, 1.9611608) = -10.853°.
    # RELION's acos(A11) = 11.835° folds the magnification 0.997 into the angle.
    # det A = 0.996871; A⁻¹ s = (0.98551·-20.199 + 0.19040·1.220, 0.18676·20.199 + 0.98181·1.220)
    # = (-19.674, 4.970) px, so the shift is (19.674, -4.970) px.
    folder = shared_real_data / UITEST
    alignments = alignment_from_imod(
        read_xf(folder / "BBa.xf"),
        read_tilt_angles(folder / "BBa.tlt"),
        pixel_spacing_angstrom=1.0,
        x_tilts_deg=read_xtilt(folder / "BBa.xtilt"),
    )
    first = alignments[0]
    assert first.z_rot_deg == pytest.approx(-10.853, abs=1e-3)
    assert (first.shift_x_angstrom, first.shift_y_angstrom) == pytest.approx((19.674, -4.970), abs=2e-3)
    assert (first.y_tilt_deg, first.x_tilt_deg) == (65.06, 0.0)


def test_angle_offset_is_subtracted_as_relion_does(real_data: Path) -> None:
    folder = real_data / ETOMO
    xf, tlt = read_xf(folder / "TS_001.xf"), read_tilt_angles(folder / "TS_001.tlt")
    kept = alignment_from_imod(xf, tlt, pixel_spacing_angstrom=1.0)
    relion = alignment_from_imod(xf, tlt, pixel_spacing_angstrom=1.0, angle_offset_deg=0.2)
    assert [a.y_tilt_deg for a in kept] == tlt.tolist()
    np.testing.assert_allclose([a.y_tilt_deg for a in relion], tlt - 0.2, atol=1e-12)
    assert [a.z_rot_deg for a in relion] == [a.z_rot_deg for a in kept]


def test_real_files_back_to_imod(real_data: Path) -> None:
    xf = read_xf(real_data / ETOMO / "TS_001.xf")
    alignments = alignment_from_imod(xf, np.zeros(40), pixel_spacing_angstrom=1.7)
    back, _, _ = imod_from_alignment(alignments, pixel_spacing_angstrom=1.7)
    # The file's matrices are rotations to IMOD's 7 decimals (|det - 1| ~ 1e-6): they come back to 1e-6;
    # the shifts come back digit for digit.
    np.testing.assert_allclose(back[:, :, :2], xf[:, :, :2], atol=1e-6)
    np.testing.assert_array_equal(np.round(back[:, :, 2], 3), xf[:, :, 2])


# --- the model: IMOD's tiltalign matrices against RELION's projection


def _imod_matrices(rot_deg: float, tilt_deg: float, alpha_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rmat, ytmat, xtmat filled entry by entry as IMOD's fill_matrices.f90 does (rows first, 1-based)."""
    cg, sg = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
    cb, sb = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
    ca, sa = math.cos(math.radians(alpha_deg)), math.sin(math.radians(alpha_deg))
    rmat = np.array([cg, -sg, sg, cg]).reshape(2, 2)  # rmat(1..4)
    ytmat = np.array([cb, 0, sb, 0, 1, 0, -sb, 0, cb]).reshape(3, 3)  # ytmat(1), (3), (5), (7), (9)
    xtmat = np.array([1, 0, 0, 0, ca, -sa, 0, sa, ca]).reshape(3, 3)  # xtmat(1), (5), (6), (8), (9)
    return rmat, ytmat, xtmat


def _rodrigues(axis: int, angle_deg: float) -> np.ndarray:
    """Right-handed active rotation about a coordinate axis (RELION's t3Matrix Rodrigues formula)."""
    k = np.zeros(3)
    k[axis] = 1.0
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    theta = math.radians(angle_deg)
    return np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * cross @ cross


def _relion_raw(alignment: TiltAlignment, points: np.ndarray, pixel_spacing_angstrom: float) -> np.ndarray:
    rotation = (
        _rodrigues(2, alignment.z_rot_deg) @ _rodrigues(1, alignment.y_tilt_deg) @ _rodrigues(0, alignment.x_tilt_deg)
    )
    shift_px = np.array([alignment.shift_x_angstrom, alignment.shift_y_angstrom]) / pixel_spacing_angstrom
    return (points @ rotation.T)[:, :2] + shift_px


@pytest.mark.parametrize(("rot", "tilt", "alpha"), [(84.1, -57.1, 2.5), (-11.9, 60.2, -4.0), (175.0, 3.0, 7.0)])
def test_tiltalign_model_is_relions_projection(rot: float, tilt: float, alpha: float) -> None:
    rng = np.random.default_rng(7)
    points = rng.normal(scale=200.0, size=(5, 3))  # pixels, relative to the specimen centre
    rmat, ytmat, xtmat = _imod_matrices(rot, tilt, alpha)
    displacement = np.array([31.5, -12.25])  # where tiltalign puts the projected centre in the raw view, px
    # tiltalign: raw = rmat (ytmat xtmat p)_xy + d; its .xf maps raw to aligned: A = rmat⁻¹, s = -A d.
    imod_raw = (points @ (ytmat @ xtmat).T)[:, :2] @ rmat.T + displacement
    a = np.linalg.inv(rmat)
    xf = np.concatenate([a, (-a @ displacement)[:, None]], axis=1)[None]
    [alignment] = alignment_from_imod(xf, [tilt], pixel_spacing_angstrom=1.5, x_tilts_deg=[alpha])
    assert alignment.z_rot_deg == pytest.approx(rot)
    np.testing.assert_allclose(_relion_raw(alignment, points, 1.5), imod_raw, atol=1e-9)
    # The check can fail: the opposite X-tilt sign would put the points elsewhere.
    [flipped] = alignment_from_imod(xf, [tilt], pixel_spacing_angstrom=1.5, x_tilts_deg=[-alpha])
    assert np.abs(_relion_raw(flipped, points, 1.5) - imod_raw).max() > 1.0


# --- writing IMOD files


def test_round_trip_through_files_to_file_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    alignments = [
        TiltAlignment(
            y_tilt_deg=float(t),
            z_rot_deg=float(z),
            x_tilt_deg=float(x),
            shift_x_angstrom=float(sx),
            shift_y_angstrom=float(sy),
        )
        for t, z, x, sx, sy in zip(
            np.linspace(-60, 60, 41),
            rng.uniform(-180, 180, 41),
            rng.uniform(-2, 2, 41),
            rng.normal(scale=400, size=41),
            rng.normal(scale=400, size=41),
            strict=True,
        )
    ]
    xf, tlt, xtilt = imod_from_alignment(alignments, pixel_spacing_angstrom=2.5)
    assert xf.shape == (41, 2, 3)
    write_xf(tmp_path / "a.xf", xf)
    write_tilt_angles(tmp_path / "a.tlt", tlt)
    write_xtilt(tmp_path / "a.xtilt", xtilt)
    back = alignment_from_imod(
        read_xf(tmp_path / "a.xf"),
        read_tilt_angles(tmp_path / "a.tlt"),
        pixel_spacing_angstrom=2.5,
        x_tilts_deg=read_xtilt(tmp_path / "a.xtilt"),
    )
    for before, after in zip(alignments, back, strict=True):
        assert after.z_rot_deg == pytest.approx(before.z_rot_deg, abs=1e-5)
        assert (after.y_tilt_deg, after.x_tilt_deg) == (round(before.y_tilt_deg, 2), round(before.x_tilt_deg, 2))
        # 0.0005 px of rounding, turned by the 1e-7 matrix rounding at most 0.001 px: 2.5e-3 Å.
        assert after.shift_x_angstrom == pytest.approx(before.shift_x_angstrom, abs=2.5e-3)
        assert after.shift_y_angstrom == pytest.approx(before.shift_y_angstrom, abs=2.5e-3)


def test_empty_alignment_list() -> None:
    xf, tlt, xtilt = imod_from_alignment([], pixel_spacing_angstrom=1.0)
    assert (xf.shape, tlt.shape, xtilt.shape) == ((0, 2, 3), (0,), (0,))


def test_xf_as_six_columns() -> None:
    six = np.array([[0.0, 1.0, -1.0, 0.0, 3.0, 4.0]])
    [alignment] = alignment_from_imod(six, [10.0], pixel_spacing_angstrom=1.0)
    # A = R(-90°): ZRot 90°; A⁻¹ s = Aᵀ (3, 4) = (-4, 3), shift = (4, -3).
    assert alignment.z_rot_deg == pytest.approx(90.0)
    assert (alignment.shift_x_angstrom, alignment.shift_y_angstrom) == pytest.approx((4.0, -3.0))


@pytest.mark.parametrize(
    ("xf", "tilts", "kwargs", "match"),
    [
        (np.zeros((2, 5)), [0, 0], {}, "shape"),
        (np.tile([1.0, 0, 0, 1, 0, 0], (2, 1)), [0.0], {}, "1 values for 2 xf views"),
        (np.tile([1.0, 0, 0, 1, 0, 0], (1, 1)), [0.0], {"x_tilts_deg": [0.0, 1.0]}, "x_tilts_deg"),
        (np.array([[1.0, 2.0, 2.0, 4.0, 0, 0]]), [0.0], {}, "singular"),
        (np.array([[1.0, 0, 0, 1, math.nan, 0]]), [0.0], {}, "non-finite"),
        (np.array([[1.0, 0, 0, 1, 0, 0]]), [0.0], {"pixel_spacing_angstrom": 0.0}, "positive"),
    ],
)
def test_conversion_rejects_bad_input(xf: np.ndarray, tilts: list[float], kwargs: dict, match: str) -> None:
    arguments = {"pixel_spacing_angstrom": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        alignment_from_imod(xf, tilts, **arguments)
