"""What the web UI's plots draw (``tomoprep.web.plot_data``), from tilt series with real files: motion STAR files
written as RELION writes them, a stack of power spectra of CTF-modulated noise."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from built_series import ANGLES, EXCLUDED, PIXEL_SPACING, built_series
from tomoprep.io.axis_scores import AxisScores, write_axis_scores
from tomoprep.io.mrc import write_mrc
from tomoprep.io.relion_motion import MovieMotion, write_motion_star
from tomoprep.model import TiltCtf, TiltMotion
from tomoprep.physics import electron_wavelength_angstrom
from tomoprep.steps.ctf.spectra import power_spectrum
from tomoprep.web.plot_data import alignment_data, ctf_data, ctf_spectrum, motion_data


def _with_motion_files(folder: Path, *, upsampling: int):
    """The built series with a RELION motion STAR per tilt: frames on a grid ``upsampling`` times finer than the
    sums (EER super-resolution), each movie's content moving by a known path. Returns it and the paths (Å)."""
    ts = built_series(folder)
    paths = {}
    tilts = []
    for tilt in ts.tilts:
        k = tilt.acquisition.acquisition_index
        content_px = np.cumsum(np.random.default_rng(k).normal(0, 1.5, (6, 2)), axis=0)  # frames' pixels
        micrograph = tilt.motion.micrograph_path
        star = folder / f"motion_{k}.star"
        ny, nx = 48, 64
        write_motion_star(star, MovieMotion(
            movie_name=str(tilt.acquisition.movie_path), image_size_xyz=(nx * upsampling, ny * upsampling, 6),
            shifts_xy_px=-content_px, original_pixel_spacing_angstrom=PIXEL_SPACING, binning=1.0 / upsampling,
            dose_per_frame_e_per_angstrom2=0.5, pre_exposure_e_per_angstrom2=0.0, voltage_kv=300.0))  # fmt: skip
        paths[k] = (content_px - content_px[0]) * PIXEL_SPACING / upsampling
        tilts.append(replace(tilt, motion=TiltMotion(micrograph_path=micrograph, motion_metadata_path=star,
                                                     accumulated_motion_angstrom=(5.0 + k, 2.0, 3.0 + k))))  # fmt: skip
    return replace(ts, tilts=tuple(tilts)), paths


@pytest.mark.parametrize("upsampling", [1, 2])
def test_motion_gives_each_movies_content_path_in_angstrom_and_its_total(tmp_path: Path, upsampling: int) -> None:
    ts, truth = _with_motion_files(tmp_path, upsampling=upsampling)
    data = motion_data(ts)
    assert data is not None
    assert [t["acquisition_index"] for t in data["tilts"]] == list(range(len(ANGLES)))
    for row in data["tilts"]:
        k = row["acquisition_index"]
        np.testing.assert_allclose(row["trajectory_angstrom"], truth[k], atol=2e-3)
        assert row["tilt_deg"] == ANGLES[k] and row["excluded"] == (k == EXCLUDED)
        assert row["total_motion_angstrom"] == 5.0 + k and row["late_motion_angstrom"] == 3.0 + k
    assert data["tilts"][EXCLUDED]["reason"] == "auto: dark"


def test_a_series_without_motion_files_gives_totals_without_paths_and_none_without_motion(tmp_path: Path) -> None:
    ts = built_series(tmp_path)
    data = motion_data(ts)
    assert data is not None and all(row["trajectory_angstrom"] is None for row in data["tilts"])
    assert motion_data(replace(ts, tilts=tuple(replace(t, motion=None) for t in ts.tilts))) is None


def test_alignment_gives_the_shifts_the_axes_and_the_thickness_or_why_there_is_none(tmp_path: Path) -> None:
    ts = built_series(tmp_path)
    data = alignment_data(ts, [])
    assert data is not None
    assert data["nominal_axis_deg"] == -94.0
    assert data["refined_axis_deg"] == pytest.approx(float(np.median([-94.2 + 0.01 * k for k in range(len(ANGLES))])))
    assert (data["thickness_angstrom"], data["thickness_status"], data["thickness_reason"]) == (61.0, "measured", "")
    for row, tilt in zip(data["tilts"], ts.tilts, strict=True):
        assert row["shift_x_angstrom"] == tilt.alignment.shift_x_angstrom
        assert (
            row["y_tilt_deg"] == tilt.alignment.y_tilt_deg
            and row["tilt_deg"] == tilt.acquisition.nominal_tilt_angle_deg
        )
    thin = replace(ts, specimen_thickness_angstrom=None)
    doubt = "common lines put the axis at 115.6°, 30.6° from the imported 85.00°, but the tilts reach -28° and +32°"
    said = alignment_data(thin, [doubt, "tilt axis from common lines: 1.0°", "no thickness: an edge lies at an end "
                                 "of the reconstruction", "slab: a layer"])  # fmt: skip
    assert said["axis_notes"] == [doubt, "tilt axis from common lines: 1.0°"]
    assert (
        said["thickness_status"] == "none"
        and said["thickness_reason"] == "an edge lies at an end of the reconstruction"
    )
    assert "no reason" in alignment_data(thin, [])["thickness_reason"]
    unaligned = replace(ts, tilts=tuple(replace(t, alignment=None) for t in ts.tilts))
    assert alignment_data(unaligned, []) is None


def test_alignment_gives_each_tilts_matching_score_and_the_axis_searches_from_their_file(tmp_path: Path) -> None:
    ts = built_series(tmp_path)
    tilts = tuple(
        t
        if t.alignment is None
        else replace(t, alignment=replace(t.alignment, match_score=0.5 + 0.01 * k, match_correction_angstrom=0.25 * k))
        for k, t in enumerate(ts.tilts)
    )
    path = tmp_path / "TS_07_axis_scores.star"
    cross = AxisScores("cross_prediction", np.array([-94.5, -94.25, -94.0]), np.array([0.31, 0.3325, 0.32]), -94.2)
    write_axis_scores(path, [AxisScores("common_lines", np.array([-96.0, -94.0]), np.array([0.9, 0.95]), -94.4),
                             cross])  # fmt: skip
    data = alignment_data(replace(ts, tilts=tilts, axis_scores_path=path), [])
    assert data is not None
    for row, tilt in zip(data["tilts"], tilts, strict=True):
        expected = (
            (None, None)
            if tilt.alignment is None
            else (tilt.alignment.match_score, tilt.alignment.match_correction_angstrom)
        )
        assert (row["match_score"], row["match_correction_angstrom"]) == pytest.approx(expected)
    assert [s["method"] for s in data["axis_scores"]] == ["common_lines", "cross_prediction"]
    assert data["axis_scores"][1] == {
        "method": "cross_prediction",
        "angles_deg": [-94.5, -94.25, -94.0],
        "scores": pytest.approx([0.31, 0.3325, 0.32]),
        "chosen_deg": -94.2,
    }
    # Not searched (or read from files), or its file gone: no curve, and no score without matching.
    assert alignment_data(ts, [])["axis_scores"] is None
    assert alignment_data(replace(ts, axis_scores_path=tmp_path / "gone.star"), [])["axis_scores"] is None
    assert all(row["match_score"] is None for row in alignment_data(ts, [])["tilts"])


def test_ctf_gives_defocus_in_um_on_a_span_around_the_median_of_the_tilts_fitted_on_their_own(tmp_path: Path) -> None:
    ts = built_series(tmp_path)
    outlier = replace(ts.tilts[2].ctf, defocus_u_angstrom=90000.0, defocus_v_angstrom=89000.0, flag="outlier",
                      fit_resolution_angstrom=math.inf)  # fmt: skip
    ts = replace(ts, tilts=tuple(replace(t, ctf=outlier) if k == 2 else t for k, t in enumerate(ts.tilts)))
    data = ctf_data(ts)
    assert data is not None
    fitted = [(31000.0 + 50 * k + 30500.0 + 50 * k) / 2e4 for k in range(len(ANGLES)) if k != 2]
    assert data["median_defocus_um"] == pytest.approx(float(np.median(fitted)))
    assert data["defocus_span_um"] == pytest.approx([data["median_defocus_um"] - 1.0, data["median_defocus_um"] + 1.0])
    row = data["tilts"][2]
    assert row["defocus_um"] == pytest.approx(8.95) and row["flag"] == "outlier"
    assert row["fit_resolution_angstrom"] is None  # inf: no fit of its own, and JSON has no inf
    assert data["tilts"][0]["fit_resolution_angstrom"] == 8.5 and not data["tilts"][0]["has_spectrum"]


def _ctf_noise(defocus_angstrom: float, spacing: float, size: int, seed: int) -> np.ndarray:
    """White noise filtered by the CTF (300 kV, Cs 2.7 mm, amplitude contrast 0.07) at ``defocus_angstrom``."""
    k = np.fft.fftfreq(size, d=spacing)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    wavelength = electron_wavelength_angstrom(300.0)
    chi = math.pi * wavelength * defocus_angstrom * k2 - 0.5 * math.pi * 2.7e7 * wavelength**3 * k2**2
    ctf = -np.sin(chi + math.asin(0.07))
    noise = np.fft.fft2(np.random.default_rng(seed).normal(size=(size, size)))
    return np.real(np.fft.ifft2(noise * ctf)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 10, 20])
def test_a_tilts_spectrum_is_its_own_section_and_follows_its_fitted_model(tmp_path: Path, seed: int) -> None:
    """Two sections at different defoci: each tilt's 1-D data match its own model (and not the other's)."""
    spacing, defoci = 2.0, (20000.0, 32000.0)
    spectra = np.stack([power_spectrum(_ctf_noise(d, spacing, 512, seed + k), 128) for k, d in enumerate(defoci)])
    path = tmp_path / "spectra.mrc"
    write_mrc(path, spectra, pixel_spacing_angstrom=spacing)
    ts = built_series(tmp_path)
    ts = replace(ts, optics=replace(ts.optics, amplitude_contrast=0.07), tilt_series_pixel_spacing_angstrom=1.0)
    tilts = [replace(t, ctf=TiltCtf(defoci[k % 2], defoci[k % 2], 0.0, fit_resolution_angstrom=6.0,
                                    power_spectrum_path=path, power_spectrum_section=k % 2)) if k < 2 else t
             for k, t in enumerate(ts.tilts)]  # fmt: skip
    ts = replace(ts, tilts=tuple(tilts))
    for k in (0, 1):
        own = ctf_spectrum(ts, k)
        assert own is not None and own["acquisition_index"] == k and own["band_angstrom"] == [30.0, 6.0]
        k_per_angstrom = np.array(own["frequency_per_angstrom"])
        assert k_per_angstrom.min() >= 1 / 30.0 - 1e-3 and k_per_angstrom.max() <= 1 / 6.0 + 1e-3
        assert np.corrcoef(own["data"], own["model"])[0, 1] > 0.6
    swapped = replace(ts, tilts=tuple(replace(t, ctf=replace(t.ctf, power_spectrum_section=1 - k)) if k < 2 else t
                                      for k, t in enumerate(ts.tilts)))  # fmt: skip
    assert np.corrcoef(ctf_spectrum(swapped, 0)["data"], ctf_spectrum(swapped, 0)["model"])[0, 1] < 0.3
    assert ctf_spectrum(ts, 3) is None  # no spectrum written for it
    assert ctf_spectrum(ts, 99) is None
