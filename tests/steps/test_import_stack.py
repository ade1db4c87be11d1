"""Import of tilt stacks: a real old-style FEI stack, and stacks that lack what the import needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from tomoprep.cli.main import build_app
from tomoprep.execution import run_step
from tomoprep.project import init_project
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT = get_step("import")
HAADF = "nist-etspy/HAADF.mrc"


@pytest.fixture
def project(tmp_path: Path):
    with init_project(tmp_path / "project") as proj:
        yield proj


def _warnings(project, run_id: int) -> list[str]:
    return [message for _, level, _, message in project.events(run_id) if level == "WARNING"]


def test_old_fei_stack_imports_with_what_its_headers_give(project, real_data: Path) -> None:
    """NIST's HAADF.mrc: no MAP stamp, pixel size only in the extended header, no dose; HAADF.rawtlt beside it."""
    run = run_step(project, IMPORT, {"stack": str(real_data / HAADF), "tilt_axis_angle_deg": 90.0})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    assert series.name == "HAADF" and series.n_tilts == 77
    assert series.original_pixel_spacing_angstrom == pytest.approx(33.6)  # 3.36 nm, as its acquisition log says
    by_order = sorted(series.tilts, key=lambda t: t.acquisition.acquisition_index)
    np.testing.assert_allclose([t.acquisition.nominal_tilt_angle_deg for t in by_order], np.arange(-76.0, 77.0, 2.0))
    assert [t.acquisition.section_index for t in by_order] == list(range(77))
    assert not series.dose_known
    warnings = " ".join(_warnings(project, run.id))
    assert "'MAP ' stamp" in warnings and "machine stamp" in warnings
    assert "33.6 Å from the extended header" in warnings and "--pixel-spacing-angstrom" in warnings
    assert "records no dose" in warnings and "--dose-per-tilt-e-per-angstrom2" in warnings


def test_cli_prints_the_warnings_of_an_import(tmp_path: Path, real_data: Path) -> None:
    runner = CliRunner()
    app = build_app()
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    args = ["import", "-p", str(tmp_path / "p"), "--stack", str(real_data / HAADF), "--tilt-axis-angle-deg", "90"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == 3 and all("HAADF" in line for line in lines)
    assert "unknown" in result.output  # the total dose column


def test_stack_without_pixel_spacing_anywhere_names_the_option(project, tmp_path: Path) -> None:
    stack = tmp_path / "plain.mrc"
    with mrcfile.new(stack) as mrc:  # mrcfile leaves the cell 0: no pixel spacing, no extended header
        mrc.set_data(np.zeros((3, 16, 16), dtype=np.float32))
    (tmp_path / "plain.rawtlt").write_text("-3\n0\n3\n")
    run = run_step(project, IMPORT, {"stack": str(stack), "tilt_axis_angle_deg": 85.0})
    error = run.units["plain"].error or ""
    assert run.status == "FAILED" and "plain.mrc" in error and "--pixel-spacing-angstrom" in error
    run = run_step(project, IMPORT, {"stack": str(stack), "tilt_axis_angle_deg": 85.0, "pixel_spacing_angstrom": 2.0})
    assert run.status == "SUCCEEDED", run.error


def test_truncated_stack_fails_at_import(project, tmp_path: Path, real_data: Path) -> None:
    stack = tmp_path / "test_000.mrc"
    stack.write_bytes((real_data / "nist-etspy" / "test_000.mrc").read_bytes()[:-4096])
    shutil.copy(real_data / "nist-etspy" / "test_000.mrc.mdoc", tmp_path / "test_000.mrc.mdoc")
    run = run_step(project, IMPORT, {"stack": str(stack), "dose_per_tilt_e_per_angstrom2": 2.0})
    error = run.units["test_000"].error or ""
    assert run.status == "FAILED" and "test_000.mrc" in error and "truncated" in error


@pytest.mark.slow
def test_dark_field_series_is_not_cleaned_away(project, real_data: Path) -> None:
    """Every HAADF image is mostly dark ground around a bright needle: no tilt is dark for that."""
    imported = run_step(project, IMPORT, {"stack": str(real_data / HAADF), "tilt_axis_angle_deg": 90.0})
    run = run_step(project, get_step("clean"), {}, input_run=imported.id)
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    reasons = [t.exclusion.reason for t in series.tilts if t.exclusion is not None]
    assert not any("dark" in reason for reason in reasons)
    assert len(reasons) <= 2, reasons
