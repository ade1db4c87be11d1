"""Stack cleaning: planted bad tilts excluded through the command line, exclusions by hand, and clear errors."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tomoprep.cli.docs import step_reference
from tomoprep.cli.main import build_app
from tomoprep.errors import InputError
from tomoprep.execution import run_step
from tomoprep.io.star import read_star
from tomoprep.model import TiltExclusion, TiltSeries
from tomoprep.project import Project, open_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth
from tomoprep.steps import get_step
from tomoprep.steps.clean.manual import parse_tilt_list, read_exclusion_file
from tomoprep.steps.clean.params import CleanParams
from tomoprep.steps.clean.series import CleanPayload, clean_series
from tomoprep.steps.tilt_series_set import load_tilt_series_set

CLEAN = get_step("clean")
DOCS = Path(__file__).parents[2] / "docs" / "reference"
DEMO = {"preset": "demo", "n_tilt_series": 1, "write_tilt_stack": True, "frames_per_tilt": 2,
        "pixel_spacing_angstrom": 10.0, "thickness_min_angstrom": 1500.0, "thickness_max_angstrom": 1500.0,
        "bad_tilts": 3}  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeriesTruth, str]:
    """A demo series (seed 3, tilt axis -95°) imported from its stack and cleaned by ``tomoprep clean``."""
    root = tmp_path_factory.mktemp("clean")
    truth = simulate_session(root / "session", SimulateParams(**DEMO, seed=3, tilt_axis_angle_deg=-95.0))
    stack = root / "session" / "stacks" / "TS_01.st"
    digest = _digest(stack)
    project = str(root / "project")
    assert invoke("init", project).exit_code == 0
    assert invoke("import", "-p", project, "--stack", str(stack)).exit_code == 0
    result = invoke("clean", "-p", project)
    assert result.exit_code == 0, result.output
    return root / "project", truth.tilt_series[0], digest


def _series(project: Project, run_label: str) -> TiltSeries:
    (ts,) = load_tilt_series_set(project.run_dir(project.get_run(run_label)))
    return ts


def _kinds(ts: TiltSeries) -> dict[int, str]:
    """Excluded tilts by acquisition index: the kind of the first automatic reason, or the reason itself."""
    return {
        t.acquisition.acquisition_index: t.exclusion.reason.removeprefix("auto: ").split(":")[0]
        for t in ts.tilts
        if t.exclusion is not None
    }


@pytest.mark.slow  # a simulated session through import, motion correction and cleaning: 20 s
def test_cli_clean_excludes_every_planted_tilt_and_no_other(cleaned) -> None:
    folder, truth, digest = cleaned
    with open_project(folder) as project:
        ts = _series(project, "2")
        run_dir = project.run_dir(project.get_run("2"))
    assert _kinds(ts) == {t.acquisition_index: t.planted_defect for t in truth.tilts if t.planted_defect}
    assert all(t.exclusion.reason.startswith("auto: ") for t in ts.tilts if t.exclusion is not None)
    assert (run_dir / "TS_01" / "TS_01_clean.png").read_bytes()[:4] == b"\x89PNG"
    quality = read_star(run_dir / "TS_01" / "TS_01_quality.star")["quality"]
    assert len(quality) == 31 and quality["tpBad"].sum() == 3
    assert _digest(folder.parent / "session" / "stacks" / "TS_01.st") == digest  # nothing rewritten


@pytest.mark.slow  # on the simulated session of the first test (20 s to make)
def test_exclusion_by_hand_and_reinclusion_round_trip_through_the_star(cleaned) -> None:
    folder, truth, _ = cleaned
    blurred = next(t.acquisition_index for t in truth.tilts if t.planted_defect == "blurred")
    good = sorted(t.acquisition_index for t in truth.tilts if not t.planted_defect)[:2]
    with open_project(folder) as project:
        first = _series(project, "2")
        by_hand = run_step(project, CLEAN, {"auto": False, "exclude": f"TS_01:{good[0]},{good[1]}"}, input_run="2")
        assert by_hand.status == "SUCCEEDED", by_hand.error
        ts = _series(project, by_hand.label)
        # Without --auto the earlier automatic exclusions stand; the new ones are marked as made by hand.
        assert _kinds(ts) == {**_kinds(first), good[0]: "manual", good[1]: "manual"}
        again = run_step(project, CLEAN, {"auto": False, "include": f"TS_01:{blurred},{good[0]}"}, input_run=by_hand.id)
        assert again.status == "SUCCEEDED", again.error
        ts = _series(project, again.label)
    expected = {k: v for k, v in _kinds(first).items() if k != blurred} | {good[1]: "manual"}
    assert _kinds(ts) == expected
    reincluded = next(t for t in ts.tilts if t.acquisition.acquisition_index == blurred)
    assert reincluded.exclusion is None


@pytest.mark.slow
def test_tilts_excluded_before_stay_excluded_and_are_not_measured(cleaned, tmp_path: Path) -> None:
    folder, truth, _ = cleaned
    with open_project(folder) as project:
        imported = _series(project, "1")
    blurred = next(t.acquisition_index for t in truth.tilts if t.planted_defect == "blurred")
    reason = "import: movie TS_01_010.tif is truncated"
    tilts = tuple(replace(t, exclusion=TiltExclusion(reason)) if t.acquisition.acquisition_index == blurred else t
                  for t in imported.tilts)  # fmt: skip
    output = clean_series(CleanPayload(imported.with_tilts(tilts)), CleanParams(), tmp_path)
    kinds = _kinds(output.tilt_series)
    assert kinds.pop(blurred) == "import" and sorted(kinds.values()) == ["dark", "shifted"]
    before = next(t for t in output.tilt_series.tilts if t.acquisition.acquisition_index == blurred)
    assert before.exclusion == TiltExclusion(reason)
    measured = read_star(tmp_path / "TS_01_quality.star")["quality"]["tpAcquisitionIndex"].tolist()
    assert blurred not in measured and len(measured) == 30


@pytest.mark.slow  # on the simulated session of the first test (20 s to make)
def test_wrong_names_and_numbers_are_refused_before_a_run(cleaned, tmp_path: Path) -> None:
    folder, _, _ = cleaned
    bad_file = tmp_path / "exclude.txt"
    bad_file.write_text("# tilts to drop\nTS_01 3 5\nTS_01 seven\n")
    with open_project(folder) as project:
        runs = len(project.list_runs())
        with pytest.raises(InputError, match=r"not in the input: TS_02.*use the names of the input: TS_01"):
            run_step(project, CLEAN, {"exclude": "TS_02:1"})
        with pytest.raises(InputError, match=r"TS_01 has no tilt 31, 40; its tilts are 0-30"):
            run_step(project, CLEAN, {"include": "TS_01:2,31,40"})
        with pytest.raises(InputError, match=r"'x' is not a tilt number"):
            run_step(project, CLEAN, {"exclude": "TS_01:1,x"})
        with pytest.raises(InputError, match=r"exclude.txt: line 3: 'seven'"):
            run_step(project, CLEAN, {"exclusion_file": bad_file})
        with pytest.raises(InputError, match=r"both excluded and included"):
            run_step(project, CLEAN, {"exclude": "TS_01:4", "include": "TS_01:4"})
        assert len(project.list_runs()) == runs
    result = CliRunner().invoke(build_app(), ["clean", "-p", str(folder), "--exclude", "TS_09:1"])
    assert result.exit_code == 2 and "TS_09" in result.output and "Traceback" not in result.output


@pytest.mark.slow  # on the simulated session of the first test (20 s to make)
def test_include_refuses_a_tilt_excluded_by_another_step(cleaned) -> None:
    folder, _, _ = cleaned
    with open_project(folder) as project:
        imported = _series(project, "1")
    tilts = tuple(
        replace(t, exclusion=TiltExclusion("import: unreadable")) if t.acquisition.acquisition_index == 4 else t
        for t in imported.tilts
    )
    with pytest.raises(InputError, match=r"tilt 4 of TS_01 was excluded before cleaning \(import: unreadable\)"):
        CLEAN.plan(CleanParams(include="TS_01:4"), [imported.with_tilts(tilts)])


def test_tilt_lists_and_exclusion_files_parse(tmp_path: Path) -> None:
    assert parse_tilt_list("TS_01:3,5; TS_02:0-2 ;", option="--exclude") == {"TS_01": {3, 5}, "TS_02": {0, 1, 2}}
    assert parse_tilt_list(None, option="--exclude") == {}
    with pytest.raises(InputError, match="names no tilt series"):
        parse_tilt_list("3,5", option="--exclude")
    with pytest.raises(InputError, match="runs backwards"):
        parse_tilt_list("TS_01:5-3", option="--exclude")
    path = tmp_path / "exclude.txt"
    path.write_text("# series then tilts\nTS_01 3 5  # bad ones\n\nTS_02 0-1,4\nTS_01 7\n")
    assert read_exclusion_file(path) == {"TS_01": {3, 5, 7}, "TS_02": {0, 1, 4}}


def test_reference_page_matches_the_params() -> None:
    """docs/reference is generated: `python -m tomoprep.cli.docs docs/reference` refreshes it."""
    assert (DOCS / "clean.md").read_text(encoding="utf-8") == step_reference(CLEAN)
