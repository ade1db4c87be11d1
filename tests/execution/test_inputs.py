"""Input runs are picked by the kinds of data a step needs, worked out from the run records of the built-in steps.

The records are made as the runner makes them (step name, parameters, input runs), with nothing about kinds in
them, as in a project recorded before kinds existed; the selection reads nothing else.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoprep import __version__
from tomoprep.errors import StepError
from tomoprep.execution import run_step
from tomoprep.execution.inputs import HeldKinds, resolve_input
from tomoprep.project import Project, RunRecord, init_project
from tomoprep.steps import get_step
from tomoprep.steps.kinds import ALIGNMENT, EXCLUSIONS, MOVIES, ODD_EVEN, TILT_IMAGES, TILT_SERIES


@pytest.fixture
def project(tmp_path: Path):
    with init_project(tmp_path / "p") as proj:
        yield proj


def _record(project: Project, step: str, params: dict, inputs: list[int], status: str = "SUCCEEDED") -> RunRecord:
    run = project.create_run(step, params, inputs, __version__)
    return project.set_run_status(run.id, status)  # type: ignore[arg-type]


def _pick(project: Project, step: str, input_run: int | None = None, **params: object) -> RunRecord | None:
    chosen = get_step(step)
    return resolve_input(project, chosen, chosen.params.model_validate(params), input_run)


@pytest.fixture
def workflow(project: Project) -> dict[str, RunRecord]:
    """import (movies) -> motioncorr -> clean -> align, all succeeded, and a failed motioncorr after them."""
    runs = {"import": _record(project, "import", {"mdoc": "mdoc/*.mdoc"}, [])}
    runs["motioncorr"] = _record(project, "motioncorr", {}, [runs["import"].id])
    runs["clean"] = _record(project, "clean", {}, [runs["motioncorr"].id])
    runs["align"] = _record(project, "align", {}, [runs["clean"].id])
    _record(project, "motioncorr", {}, [runs["align"].id], status="FAILED")
    return runs


def test_a_run_holds_what_its_step_needs_and_makes_and_what_its_input_holds(project, workflow) -> None:
    held = HeldKinds(project)
    assert held(workflow["import"]) == {TILT_SERIES, MOVIES}
    assert held(workflow["motioncorr"]) == {TILT_SERIES, MOVIES, TILT_IMAGES, ODD_EVEN}
    assert held(workflow["align"]) == {TILT_SERIES, MOVIES, TILT_IMAGES, ODD_EVEN, EXCLUSIONS, ALIGNMENT}
    no_halves = _record(project, "motioncorr", {"odd_even": False}, [workflow["motioncorr"].id])
    assert HeldKinds(project)(no_halves) == {TILT_SERIES, MOVIES, TILT_IMAGES}  # its input's halves are replaced


def test_each_step_takes_the_newest_successful_run_that_holds_what_it_needs(project, workflow) -> None:
    assert _pick(project, "align").id == workflow["align"].id  # the newest run holding tilt images
    cleaned_again = _record(project, "clean", {}, [workflow["align"].id])
    assert _pick(project, "align").id == cleaned_again.id  # align after clean takes the cleaning
    assert _pick(project, "clean").id == cleaned_again.id  # a cleaning of a cleaning
    assert ALIGNMENT in HeldKinds(project)(cleaned_again)  # cleaning an aligned series keeps its alignment


def test_motioncorr_skips_runs_whose_alignment_it_would_make_stale(project, workflow) -> None:
    assert _pick(project, "motioncorr").id == workflow["clean"].id  # not the newer align run
    with pytest.raises(StepError, match=r"run 004_align holds alignment, which step 'motioncorr' would make stale"):
        _pick(project, "motioncorr", input_run=workflow["align"].id)


def test_an_explicit_input_that_lacks_a_needed_kind_is_refused_naming_the_run_and_the_kind(project, workflow) -> None:
    with pytest.raises(StepError) as caught:
        _pick(project, "align", input_run=workflow["import"].id)
    message = str(caught.value)
    assert "run 001_import holds tilt-series metadata, movies, but not tilt images, which step 'align' needs" in message
    assert "give a run that holds them (the newest: 004_align)" in message
    # A cleaning by hand alone needs no tilt images: the import of movies will do.
    assert _pick(project, "clean", input_run=workflow["import"].id, auto=False).id == workflow["import"].id


def test_motioncorr_refuses_an_imported_stack_by_default_and_when_named(project, tmp_path: Path) -> None:
    stack = tmp_path / "TS_A.mrc"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(np.zeros((2, 16, 16), dtype=np.float32))
        mrc.voxel_size = 2.5
    (tmp_path / "TS_A.rawtlt").write_text("-3\n3\n")
    imported = run_step(project, get_step("import"), {"stack": str(stack), "tilt_axis_angle_deg": 85.0})
    assert imported.status == "SUCCEEDED", imported.error
    with pytest.raises(StepError) as default:
        run_step(project, get_step("motioncorr"))
    assert "step 'motioncorr' needs tilt-series metadata, movies, but no successful run holds movies" in str(
        default.value
    )
    assert "001_import holds tilt-series metadata, tilt images" in str(default.value)
    assert "run a step that makes them first: import (movies)" in str(default.value)
    with pytest.raises(StepError, match=r"run 001_import holds tilt-series metadata, tilt images, but not movies"):
        run_step(project, get_step("motioncorr"), input_run=imported.id)
    assert [r.label for r in project.list_runs()] == ["001_import"]


def test_a_run_whose_input_folder_is_gone_holds_what_its_step_needs_and_makes(project) -> None:
    corrected = _record(project, "motioncorr", {}, [])  # as `tomoprep repair` leaves it
    assert HeldKinds(project)(corrected) == {TILT_SERIES, MOVIES, TILT_IMAGES, ODD_EVEN}
    assert _pick(project, "clean").id == corrected.id


def test_a_run_of_a_step_no_longer_installed_holds_nothing(project, workflow) -> None:
    gone = _record(project, "denoise", {"strength": 3}, [workflow["align"].id])
    assert HeldKinds(project)(gone) == frozenset()
    assert _pick(project, "align").id == workflow["align"].id


def test_a_run_recorded_with_parameters_of_an_older_version_keeps_its_kinds(project) -> None:
    """An option since renamed or removed makes the stored parameters invalid today; the record still counts."""
    old = _record(project, "import", {"stack": "stacks/*.mrc", "apix": 1.35}, [])
    assert HeldKinds(project)(old) == {TILT_SERIES, TILT_IMAGES}
    assert _pick(project, "align").id == old.id
