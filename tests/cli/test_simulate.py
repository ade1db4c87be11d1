"""``tomoprep simulate`` and ``tomoprep demo`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tomoprep.cli.main import build_app
from tomoprep.project import open_project


@pytest.mark.slow  # a whole small session simulated through the command line: 3 s
def test_simulate_writes_a_session_with_its_truth(tmp_path: Path) -> None:
    out = tmp_path / "session"
    result = CliRunner().invoke(
        build_app(),
        [
            "simulate",
            str(out),
            "--preset",
            "tiny",
            "--tilt-axis-angle-deg",
            "-95",
            "--mdoc-flavour",
            "tomo5",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "truth.json").read_text())
    assert truth["params"]["tilt_axis_angle_deg"] == -95 and truth["params"]["mdoc_flavour"] == "tomo5"
    assert len(list(out.glob("*.mdoc"))) == len(truth["tilt_series"]) == 1
    assert (out / "contact_sheet_TS_01.png").stat().st_size > 10_000


def test_simulate_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    result = CliRunner().invoke(build_app(), ["simulate", str(tmp_path), "--preset", "tiny"])
    assert result.exit_code == 2
    assert "is not empty" in result.output and "another folder" in result.output
    assert (tmp_path / "keep.txt").read_text() == "precious"


@pytest.mark.slow  # a demo session through every step: minutes on two cores
def test_demo_runs_every_step_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["demo", str(tmp_path / "demo"), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    with open_project(tmp_path / "demo" / "project") as project:
        runs = project.list_runs()
    assert [r.step for r in runs][:1] == ["import"] and all(r.status == "SUCCEEDED" for r in runs)
    assert [r.step for r in runs][-5:] == ["align", "ctf", "reconstruct", "deconvolve", "export"]
    assert all(not r.failed_units for r in runs)
    demo = tmp_path / "demo"
    assert (demo / "relion5" / "tomograms.star").is_file() and (demo / "project" / "report.html").is_file()
    again = CliRunner().invoke(build_app("workflow"), ["workflow", "run", str(demo / "workflow.toml"), "-p",
                                                      str(demo / "project")])  # fmt: skip
    assert again.exit_code == 0 and "nothing ran" in again.output, again.output
    for name in ("TS_01", "TS_02"):
        for binning in (8, 4):
            tomogram = tmp_path / "demo" / "project" / "runs" / "006_reconstruct" / name / "tomograms" / (
                f"{name}_bin{binning}.mrc")  # fmt: skip
            assert tomogram.is_file() and tomogram.with_suffix(".png").is_file()
            assert tomogram.with_name(f"{name}_bin{binning}_half1.mrc").is_file()
