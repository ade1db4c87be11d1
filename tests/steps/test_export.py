"""The export step, recorded in the project: a RELION 5 set imported with `import --relion5` and exported again
gives the same tables; IMOD files exported and aligned from come back as the same alignment; particles join the
optimisation set; wrong coordinate files stop the run before it starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import starfile

from built_series import built_series
from tomoprep.errors import TomoprepError
from tomoprep.execution import run_step
from tomoprep.export.relion5 import export_series, write_optimisation_set, write_tomogram_set
from tomoprep.project import init_project
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, ALIGN, EXPORT = get_step("import"), get_step("align"), get_step("export")
NAMES = ("TS_07", "TS_08")
#: Columns whose text is a path (compared by the file they resolve to).
PATHS = ("rlnMicrographMovieName", "rlnMicrographName", "rlnMicrographNameEven", "rlnMicrographNameOdd")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory):
    """A RELION 5 folder of two series (written by the export functions), imported into a project."""
    root = tmp_path_factory.mktemp("export_step")
    first = root / "first"
    rows = [export_series(built_series(root / n, name=n, tomogram=False), first).global_row for n in NAMES]
    write_tomogram_set(first, rows)
    write_optimisation_set(first, particles=False)
    project = init_project(root / "project")
    run = run_step(project, IMPORT, {"relion5": first})
    assert run.status == "SUCCEEDED", run.error
    return root, project, first


def test_an_export_into_the_project_is_recorded_relative_to_it_and_written_there(imported) -> None:
    _, project, _ = imported
    out = project.root / "export"
    run = run_step(project, EXPORT, {"out": out, "tomogram_thickness_angstrom": 61.0})
    assert run.status == "SUCCEEDED", run.error
    assert run.params["out"] == "export"  # so a moved project exports, and resumes, into its own folder
    assert (out / "tomograms.star").is_file() and (out / "optimisation_set.star").is_file()


def test_relion5_set_imported_and_exported_again_gives_the_same_tables(imported) -> None:
    root, project, first = imported
    run = run_step(project, EXPORT, {"out": root / "second", "tomogram_thickness_angstrom": 61.0})
    assert run.status == "SUCCEEDED", run.error
    carried = load_tilt_series_set(project.run_dir(run))
    assert tuple(ts.name for ts in carried) == NAMES
    assert EXPORT.summarize(carried) == "2 tilt series exported, 12 tilts (0 excluded tilts left out)"
    again = starfile.read(root / "second" / "tomograms.star")
    before = starfile.read(first / "tomograms.star")
    assert list(again.columns) == list(before.columns)
    assert again.drop(columns="rlnTomoTiltSeriesStarFile").equals(before.drop(columns="rlnTomoTiltSeriesStarFile"))
    for name in NAMES:
        a = starfile.read(first / "tilt_series" / f"{name}.star")
        b = starfile.read(root / "second" / "tilt_series" / f"{name}.star")
        assert list(a.columns) == list(b.columns)
        for label in a.columns:
            if label in PATHS:
                assert [(first / p.split("@")[-1]).resolve() for p in a[label]] == [
                    (root / "second" / p.split("@")[-1]).resolve() for p in b[label]
                ], label
            else:
                assert np.allclose(a[label], b[label], atol=1e-6), label
    assert (root / "second" / "optimisation_set.star").is_file()
    assert "TS_07: 6 tilts into" in (project.run_dir(run) / "log.txt").read_text()


@pytest.mark.slow
def test_imod_files_exported_and_aligned_from_give_the_same_alignment(imported) -> None:
    """6 s: the align step reads the files (and draws its plots)."""
    root, project, _ = imported
    run = run_step(
        project, EXPORT, {"format": "imod", "out": root / "imod", "tomogram_thickness_angstrom": 80.0}, input_run=1
    )
    assert run.status == "SUCCEEDED", run.error
    gathered = root / "gathered"
    gathered.mkdir()
    for name in NAMES:
        for suffix in (".xf", ".tlt", ".xtilt"):
            shutil.copy(root / "imod" / name / f"{name}{suffix}", gathered)
        assert (root / "imod" / name / "tilt.com").is_file() and (root / "imod" / name / "newst.com").is_file()
    aligned = run_step(project, ALIGN, {"alignment_files": gathered}, input_run=1)
    assert aligned.status == "SUCCEEDED", aligned.error
    before = {ts.name: ts for ts in load_tilt_series_set(project.run_dir(project.get_run(1)))}
    for ts in load_tilt_series_set(project.run_dir(aligned)):
        for a, b in zip(before[ts.name].tilts, ts.tilts, strict=True):
            assert b.alignment.z_rot_deg == pytest.approx(a.alignment.z_rot_deg, abs=1e-4)
            assert b.alignment.y_tilt_deg == pytest.approx(a.alignment.y_tilt_deg, abs=0.005)
            assert b.alignment.shift_x_angstrom == pytest.approx(a.alignment.shift_x_angstrom, abs=0.005)
            assert b.alignment.shift_y_angstrom == pytest.approx(a.alignment.shift_y_angstrom, abs=0.005)


def test_coordinates_become_particles_of_the_optimisation_set(imported) -> None:
    root, project, _ = imported
    picks = root / "picks"
    picks.mkdir()
    np.savetxt(picks / "TS_07.txt", [[16, 12, 5], [20, 10, 6]])
    np.savetxt(picks / "TS_08_more.txt", [[1, 2, 3]])
    run = run_step(project, EXPORT, {"out": root / "particles", "tomogram_thickness_angstrom": 50.0,
                                     "coordinates": str(picks / "*.txt"), "coordinates_binning": 2.0},
                   input_run=1)  # fmt: skip
    assert run.status == "SUCCEEDED", run.error
    blocks = starfile.read(root / "particles" / "particles.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    assert blocks["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [2.5]
    particles = blocks["particles"]
    assert particles["rlnTomoName"].tolist() == ["TS_07", "TS_07", "TS_08"]
    # Volume 64 x 48 x 20 px, binned 2: 32 x 24 x 10 voxels, centre voxel (16, 12, 5) at 0 Å.
    assert particles.iloc[0][["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                              "rlnCenteredCoordinateZAngst"]].tolist() == [0.0, 0.0, 0.0]  # fmt: skip
    assert particles.iloc[1]["rlnCenteredCoordinateXAngst"] == pytest.approx(4 * 5.0)
    optimisation = starfile.read(root / "particles" / "optimisation_set.star")
    assert optimisation["rlnTomoParticlesFile"].tolist() == ["particles.star"]


def test_coordinates_of_no_exported_series_stop_the_run_before_it_starts(imported) -> None:
    root, project, _ = imported
    stray = root / "stray"
    stray.mkdir()
    (stray / "TS_99.txt").write_text("1 2 3\n")
    n_runs = len(project.list_runs())
    with pytest.raises(TomoprepError, match=r"TS_99\.txt"):
        run_step(project, EXPORT, {"out": root / "x", "coordinates": str(stray / "*.txt")}, input_run=1)
    assert len(project.list_runs()) == n_runs
    with pytest.raises(TomoprepError, match="--format relion5"):
        run_step(project, EXPORT, {"out": root / "x", "format": "imod", "coordinates": "a.txt"}, input_run=1)


def test_import_of_a_relion5_set_with_a_missing_image_fails_that_series_naming_it(tmp_path: Path) -> None:
    relion = tmp_path / "relion"
    series = [built_series(tmp_path / n, name=n, tomogram=False) for n in NAMES]
    write_tomogram_set(relion, [export_series(ts, relion).global_row for ts in series])
    lost = series[1].included_tilts[2].motion.micrograph_path
    lost.unlink()
    project = init_project(tmp_path / "project")
    run = run_step(project, IMPORT, {"relion5": relion})
    assert run.units["TS_07"].status == "SUCCEEDED"
    assert run.units["TS_08"].status == "FAILED" and lost.name in (run.units["TS_08"].error or "")
    with pytest.raises(TomoprepError, match="--relion5"):
        run_step(project, IMPORT, {"relion5": relion, "stack": "a.st"})


def test_the_command_line_takes_the_format_and_the_folder_as_arguments(tmp_path: Path) -> None:
    """`tomoprep export FORMAT OUT` (the issue's spelling), with `--copy` for `--copy-files`."""
    from typer.testing import CliRunner

    from small_project import build_project
    from tomoprep.cli.main import build_app

    root = build_project(tmp_path)
    out = tmp_path / "imod"
    done = CliRunner().invoke(build_app("export"), ["export", "imod", str(out), "-p", str(root), "--copy",
                                                    "--tomogram-thickness-angstrom", "400"])  # fmt: skip
    assert done.exit_code == 0, done.output
    stacks = sorted(out.rglob("*.mrc")) + sorted(out.rglob("*.st"))
    assert stacks and all(not p.is_symlink() for p in stacks)  # copied, as --copy asks
    missing = CliRunner().invoke(build_app("export"), ["export", "-p", str(root)])
    assert missing.exit_code == 2 and "FORMAT" in missing.output
