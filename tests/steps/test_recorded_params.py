"""A run's path parameters are recorded relative to the project folder where they lie in it, so a moved project
resumes and re-runs where it is now; paths outside it, and records of earlier versions, stay absolute."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tomoprep import __version__
from tomoprep.execution.workflow import same_run
from tomoprep.project import init_project, open_project
from tomoprep.steps import get_step
from tomoprep.steps.recorded_params import absolute_paths, params_from_record, path_fields, recorded_params

EXPORT = get_step("export")


def test_the_path_fields_of_a_step_are_found_from_its_params_types() -> None:
    assert path_fields(EXPORT.params) == ["out"]
    assert set(path_fields(get_step("import").params)) == {"movies", "relion5", "tilt_angles", "gain"}


def test_a_path_in_the_project_is_recorded_relative_and_read_back_in_the_moved_project(tmp_path: Path) -> None:
    with init_project(tmp_path / "project") as project:
        inside = recorded_params(EXPORT.params(out=project.root / "export" / "TS_01"), project.root)
        outside = recorded_params(EXPORT.params(out=tmp_path / "relion5"), project.root)
    assert inside["out"] == "export/TS_01" and outside["out"] == str(tmp_path.resolve() / "relion5")
    shutil.move(tmp_path / "project", tmp_path / "moved")
    with open_project(tmp_path / "moved") as project:
        assert params_from_record(EXPORT.params, inside, project.root)["out"] == str(project.root / "export" / "TS_01")
        assert params_from_record(EXPORT.params, outside, project.root)["out"] == outside["out"]


def test_a_relative_path_is_taken_from_the_working_folder_as_the_step_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_params = get_step("import").params(mdoc="*.mdoc", movies=Path("frames"))
    monkeypatch.chdir(tmp_path)
    assert absolute_paths(import_params).movies == tmp_path.resolve() / "frames"
    with init_project(tmp_path / "project") as project:
        monkeypatch.chdir(project.root)
        assert recorded_params(import_params, project.root)["movies"] == "frames"  # in the project: relative


def test_a_record_with_an_absolute_path_in_the_project_matches_the_same_parameters(tmp_path: Path) -> None:
    with init_project(tmp_path / "project") as project:
        params = EXPORT.params(out=project.root / "export")
        # As an earlier version recorded it: absolute, though in the project.
        older = project.create_run("export", params.model_dump(mode="json"), [], __version__)
        assert same_run(project, EXPORT, recorded_params(params, project.root), None) == older
        assert same_run(project, EXPORT, recorded_params(EXPORT.params(out=tmp_path / "x"), project.root), None) is None
