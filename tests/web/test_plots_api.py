"""The plots' JSON on a processed project (motion correction, cleaning, alignment, CTF of a simulated session),
checked against the runs' own files read with starfile and mrcfile, not through tomoprep's readers."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
from fastapi.testclient import TestClient

from tomoprep.web.app import create_app

pytestmark = pytest.mark.slow
TOKEN = "plots-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(processed_project: Path) -> TestClient:
    return TestClient(create_app(processed_project, token=TOKEN))


def _plots(client: TestClient, run: str) -> dict:
    answer = client.get(f"/api/runs/{run}/series/TS_01/plots", headers=HEADERS)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _table(root: Path, run: str):
    return starfile.read(root / "runs" / run / "tilt_series" / "TS_01.star")


def test_motion_comes_from_the_movies_motion_star_files_in_angstrom(
    client: TestClient, processed_project: Path
) -> None:
    data = _plots(client, "002_motioncorr")
    assert data["step"] == "motioncorr" and data["alignment"] is None and data["ctf"] is None
    table = _table(processed_project, "002_motioncorr").sort_values("tpAcquisitionIndex")
    rows = data["motion"]["tilts"]
    assert [r["acquisition_index"] for r in rows] == table["tpAcquisitionIndex"].tolist()
    np.testing.assert_allclose([r["tilt_deg"] for r in rows], table["rlnTomoNominalStageTiltAngle"], atol=1e-6)
    np.testing.assert_allclose([r["total_motion_angstrom"] for r in rows], table["rlnAccumMotionTotal"], atol=1e-6)
    for row, star, micrograph in zip(rows, table["rlnMicrographMetadata"], table["rlnMicrographName"], strict=True):
        blocks = starfile.read(processed_project / star)  # paths in the project are relative to its folder
        shifts = blocks["global_shift"][["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy()
        with mrcfile.open(processed_project / micrograph, header_only=True) as mrc:
            spacing = float(mrc.voxel_size.x) * int(mrc.header.nx) / int(blocks["general"]["rlnImageSizeX"].iloc[0])
        expected = -(shifts - shifts[0]) * spacing
        np.testing.assert_allclose(row["trajectory_angstrom"], expected, atol=2e-3)
        steps = np.linalg.norm(np.diff(expected, axis=0), axis=1).sum()  # RELION's accumulated motion, the same path
        assert steps == pytest.approx(row["total_motion_angstrom"], rel=1e-3, abs=1e-3)


def test_alignment_and_its_thickness_status_come_from_the_aligned_star(
    client: TestClient, processed_project: Path
) -> None:
    data = _plots(client, "004_align")["alignment"]
    table = _table(processed_project, "004_align").sort_values("tpAcquisitionIndex")
    rows = data["tilts"]
    excluded = [r["acquisition_index"] for r in rows if r["excluded"]]
    assert excluded == [5] and not rows[5]["aligned"] and rows[5]["reason"] == "manual"
    aligned = table[table["tpExcluded"] == 0]
    got = [r for r in rows if r["aligned"]]
    np.testing.assert_allclose([r["shift_x_angstrom"] for r in got], aligned["rlnTomoXShiftAngst"], atol=1e-5)
    np.testing.assert_allclose([r["shift_y_angstrom"] for r in got], aligned["rlnTomoYShiftAngst"], atol=1e-5)
    np.testing.assert_allclose([r["y_tilt_deg"] for r in got], aligned["rlnTomoYTilt"], atol=1e-5)
    assert data["refined_axis_deg"] == pytest.approx(float(np.median(aligned["rlnTomoZRot"])))
    assert data["nominal_axis_deg"] == pytest.approx(float(table["rlnTomoNominalTiltAxisAngle"].iloc[0]))
    series = starfile.read(processed_project / "runs" / "004_align" / "tilt_series.star")
    if "tpSpecimenThicknessAngst" in series:
        assert data["thickness_status"] == "measured"
        assert data["thickness_angstrom"] == pytest.approx(float(series["tpSpecimenThicknessAngst"].iloc[0]))
    else:
        log = (processed_project / "runs" / "004_align" / "log.txt").read_text()
        assert data["thickness_status"] == "none" and f"no thickness: {data['thickness_reason']}" in log
    log_lines = (processed_project / "runs" / "004_align" / "log.txt").read_text().splitlines()
    assert data["axis_notes"] == [line.split("[TS_01] ", 1)[1] for line in log_lines
                                  if "[TS_01] tilt axis " in line or "[TS_01] common lines" in line]  # fmt: skip
    assert data["axis_notes"]  # the final note says the axis, whether refined or kept
    downstream = _plots(client, "005_ctf")["alignment"]  # the reason follows the series into later runs
    assert downstream["thickness_reason"] == data["thickness_reason"]
    np.testing.assert_allclose([r["match_score"] for r in got], aligned["tpMatchScore"], atol=1e-6)
    np.testing.assert_allclose([r["match_correction_angstrom"] for r in got], aligned["tpMatchCorrectionAngst"],
                               atol=1e-6)  # fmt: skip
    # The axis searches' curves: the file the set table names, and they too follow the series downstream.
    blocks = starfile.read(processed_project / series["tpAxisScoresFile"].iloc[0], always_dict=True)
    scores = blocks["axis_scores"]
    assert [s["method"] for s in data["axis_scores"]] == blocks["axis_searches"]["tpAxisSearch"].tolist()
    for search, chosen in zip(data["axis_scores"], blocks["axis_searches"]["tpTiltAxisAngle"], strict=True):
        rows_of = scores[scores["tpAxisSearch"] == search["method"]].sort_values("tpTiltAxisAngle")
        np.testing.assert_allclose(search["angles_deg"], rows_of["tpTiltAxisAngle"], atol=1e-6)
        np.testing.assert_allclose(search["scores"], rows_of["tpAxisScore"], atol=1e-6)
        assert search["chosen_deg"] == pytest.approx(chosen)
    assert data["axis_scores"][-1]["chosen_deg"] == pytest.approx(data["refined_axis_deg"], abs=1e-5)
    assert downstream["axis_scores"] == data["axis_scores"]


def test_ctf_and_a_clicked_tilts_spectrum_come_from_the_ctf_star_and_spectra(
    client: TestClient, processed_project: Path
) -> None:
    data = _plots(client, "005_ctf")["ctf"]
    table = _table(processed_project, "005_ctf").sort_values("tpAcquisitionIndex")
    fitted = table[table["tpExcluded"] == 0]
    rows = data["tilts"]
    assert [r["acquisition_index"] for r in rows] == fitted["tpAcquisitionIndex"].tolist()  # excluded: no CTF
    defocus_um = (fitted["rlnDefocusU"] + fitted["rlnDefocusV"]).to_numpy() / 2e4
    np.testing.assert_allclose([r["defocus_um"] for r in rows], defocus_um, rtol=1e-9)
    own = [d for d, r in zip(defocus_um, rows, strict=True) if not r["flag"]]
    assert data["median_defocus_um"] == pytest.approx(float(np.median(own)))
    assert data["defocus_span_um"] == pytest.approx([data["median_defocus_um"] - 1, data["median_defocus_um"] + 1])
    np.testing.assert_allclose([r["fit_resolution_angstrom"] for r in rows], fitted["rlnCtfMaxResolution"], rtol=1e-9)
    chosen = rows[2]
    spectrum = client.get(f"/api/runs/005_ctf/series/TS_01/ctf/{chosen['acquisition_index']}", headers=HEADERS).json()
    assert spectrum["acquisition_index"] == chosen["acquisition_index"] and spectrum["tilt_deg"] == chosen["tilt_deg"]
    assert len(spectrum["data"]) == len(spectrum["model"]) == len(spectrum["frequency_per_angstrom"]) > 8
    assert np.corrcoef(spectrum["data"], spectrum["model"])[0, 1] > 0.3  # a fit, on the tilt's own spectrum
    assert client.get("/api/runs/005_ctf/series/TS_01/ctf/5", headers=HEADERS).status_code == 404  # excluded


def test_the_pages_hold_the_plots_of_their_step_and_unknown_series_are_404(client: TestClient) -> None:
    for run, kind in (("002_motioncorr", "motion"), ("004_align", "alignment"), ("005_ctf", "ctf")):
        page = client.get(f"/runs/{run}", headers=HEADERS).text
        assert f'data-kinds="{kind}"' in page and '<script src="/static/plots.js">' in page
    assert 'id="plots"' not in client.get("/runs/003_clean", headers=HEADERS).text
    assert 'data-kinds="motion alignment ctf"' in client.get("/series/TS_01", headers=HEADERS).text
    assert client.get("/api/runs/005_ctf/series/TS_99/plots", headers=HEADERS).status_code == 404
    assert client.get("/api/runs/005_ctf/series/TS_01/plots").status_code == 401
