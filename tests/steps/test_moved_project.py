"""A project keeps working when its folder is moved: a tiny simulated session imported, motion-corrected, aligned
with patch tracking, CTF-estimated, reconstructed and exported into the project, then the project folder moved
(the raw session stays where it was, as raw data does). Every step then still reads the moved runs, the web UI
still finds the alignment's files, the export made before the move still resolves, and no file of the project
names the old folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import starfile
from fastapi.testclient import TestClient

from tomoprep.execution import run_step
from tomoprep.execution.workflow import WorkflowStep, run_workflow
from tomoprep.io.axis_scores import read_axis_scores
from tomoprep.io.local_alignment import read_local_alignment
from tomoprep.project import init_project, open_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set
from tomoprep.web.app import create_app

pytestmark = pytest.mark.slow

TOKEN = "moved-token"
#: Text files whose content the test searches for the old folder (logs are history and keep it).
TEXT_SUFFIXES = (".star", ".json", ".toml", ".txt", ".tlt", ".xf", ".xtilt", ".aln", ".com")


def _chain(session: Path, export: Path) -> list[WorkflowStep]:
    """The steps, small and quick (not accurate): the patch tracking and the axis search write their files."""
    imported = {"mdoc": str(session / "*.mdoc"), "movies": str(session / "frames"), "gain": str(session / "gain_A.mrc")}
    aligned = {"working_size_px": 128, "matching_iterations": 1, "patch_tracking": True, "patches": 2}
    return [
        WorkflowStep("import", imported),
        WorkflowStep("motioncorr", {"local_motion": False, "odd_even": False, "dose_weighting": False}),
        WorkflowStep("align", aligned),
        WorkflowStep("ctf", {"tile_px": 128}),
        WorkflowStep("reconstruct", {}),
        WorkflowStep("export", {"out": str(export)}),
    ]


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(old project folder, new project folder, session)``: the project processed in its first folder, then
    moved with :func:`shutil.move` to another."""
    folder = tmp_path_factory.mktemp("moved")
    session = folder / "session"
    simulate_session(session, SimulateParams(preset="tiny", n_tilts=7, frames_per_tilt=3, seed=3))
    old = folder / "first" / "project"
    with init_project(old) as project:
        outcomes = run_workflow(project, _chain(session, old / "export"))
    assert [o.run.status for o in outcomes] == ["SUCCEEDED"] * 6, outcomes[-1].run.error
    new = folder / "elsewhere" / "renamed"
    new.parent.mkdir()
    shutil.move(old, new)
    assert not old.exists()
    return old.resolve(), new.resolve(), session


def _text_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.name != "log.txt"
            and p.suffix in TEXT_SUFFIXES]  # fmt: skip


def test_no_file_of_the_moved_project_names_its_old_folder(moved) -> None:
    old, new, session = moved
    files = _text_files(new)
    assert {p.suffix for p in files} >= {".star", ".json"}
    assert [p for p in files if str(old) in p.read_text(errors="replace")] == []
    # The raw data stays where it was, and the runs still name it there.
    assert str(session / "frames") in (new / "runs" / "001_import" / "tilt_series" / "TS_01.star").read_text()
    # The index's records (not its events: those are the log) name no path of the old folder either.
    with sqlite3.connect(new / "project.db") as db:
        for table in ("runs", "run_inputs", "units", "artifacts"):
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert rows or table == "artifacts", table
            assert not [row for row in rows if str(old) in repr(row)], table


def test_the_moved_runs_name_their_files_in_the_new_folder(moved) -> None:
    _, new, _ = moved
    with open_project(new, read_only=True) as project:
        align, ctf, reconstruct = (project.latest_successful(s) for s in ("align", "ctf", "reconstruct"))
        (aligned,) = load_tilt_series_set(project.run_dir(align))
        (estimated,) = load_tilt_series_set(project.run_dir(ctf))
        (tomographed,) = load_tilt_series_set(project.run_dir(reconstruct))
    assert aligned.local_alignment_path is not None and aligned.local_alignment_path.is_relative_to(new)
    local = read_local_alignment(aligned.local_alignment_path)
    assert local.shifts_angstrom.shape == (len(local.acquisition_indices), 4, 2)  # 2 × 2 patches
    assert aligned.axis_scores_path is not None and aligned.axis_scores_path.is_relative_to(new)
    for tilt in estimated.tilts:
        assert tilt.motion is not None and tilt.motion.micrograph_path.is_file()
        assert tilt.motion.micrograph_path.is_relative_to(new)
    (tomogram,) = tomographed.tomograms
    assert tomogram.path.is_relative_to(new) and tomogram.path.is_file()


def test_steps_run_on_the_moved_runs(moved) -> None:
    _, new, _ = moved
    out = new.parent / "relion5"
    with open_project(new) as project:
        ctf = project.latest_successful("ctf")
        again = run_step(project, get_step("reconstruct"), {"binning": [8]}, input_run=ctf.id)
        assert again.status == "SUCCEEDED", again.error
        (ts,) = load_tilt_series_set(project.run_dir(again))
        assert ts.tomograms[0].path.is_relative_to(new) and ts.tomograms[0].path.is_file()
        exported = run_step(project, get_step("export"), {"out": out}, input_run=again.id)
        assert exported.status == "SUCCEEDED", exported.error
        assert exported.params["out"] == str(out)  # outside the project: recorded absolute
    _assert_relion5_folder_resolves(out)


def _assert_relion5_folder_resolves(out: Path) -> None:
    """Every path of the RELION 5 folder ``out`` is relative to it and resolves there, the links included."""
    (row,) = starfile.read(out / "tomograms.star").itertuples()
    for path in (row.rlnTomoTiltSeriesStarFile, row.rlnTomoReconstructedTomogram):
        assert not Path(path).is_absolute() and (out / path).is_file(), path
    table = starfile.read(out / row.rlnTomoTiltSeriesStarFile)
    for name in (*table["rlnMicrographName"], *table["rlnMicrographMovieName"]):
        assert not Path(name).is_absolute() and (out / name).is_file(), name


def test_an_export_into_the_project_made_before_the_move_still_resolves(moved) -> None:
    _, new, _ = moved
    export = new / "export"
    _assert_relion5_folder_resolves(export)
    links = [p for p in export.rglob("*") if p.is_symlink()]
    assert links
    for link in links:
        target = Path(os.readlink(link))
        # Files of the project are linked relative, so they moved with it; the raw movies, outside, absolute.
        assert target.is_absolute() == (link.parent.name == "movies"), link
        assert link.resolve().is_file(), link


def test_the_web_ui_plots_of_the_moved_alignment_find_its_axis_scores(moved) -> None:
    _, new, _ = moved
    with open_project(new, read_only=True) as project:
        align = project.latest_successful("align")
    client = TestClient(create_app(new, token=TOKEN))
    answer = client.get(f"/api/runs/{align.label}/series/TS_01/plots", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    searches = answer.json()["alignment"]["axis_scores"]
    written = read_axis_scores(new / align.directory / "TS_01" / "TS_01_axis_scores.star")
    assert searches is not None and [s["method"] for s in searches] == [s.method for s in written]
    assert [s["chosen_deg"] for s in searches] == pytest.approx([s.chosen_deg for s in written])


def test_the_workflow_run_again_on_the_moved_project_finds_every_run_done(moved) -> None:
    _, new, session = moved
    with open_project(new) as project:
        n_runs = len(project.list_runs())
        outcomes = run_workflow(project, _chain(session, new / "export"))
        assert [o.action for o in outcomes] == ["skipped"] * 6
        assert len(project.list_runs()) == n_runs
