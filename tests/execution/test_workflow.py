"""A workflow file runs its steps in order on a real project, skips what is done, resumes what was interrupted."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from small_project import write_stacks
from tomoprep.cli.main import build_app
from tomoprep.errors import InputError, StepError
from tomoprep.execution import workflow as workflow_module
from tomoprep.execution.workflow import WorkflowStep, read_workflow, run_workflow, template
from tomoprep.project import init_project, open_project
from tomoprep.steps import BUILTIN_STEP_MODULES, get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set


def _workflow_file(tmp_path: Path) -> Path:
    glob = write_stacks(tmp_path / "stacks")
    path = tmp_path / "workflow.toml"
    path.write_text(
        f'[import]\nstack = "{glob}"\ntilt_axis_angle_deg = 85.0\ndose_per_tilt_e_per_angstrom2 = 3.0\n\n'
        '[clean]\nauto = false\nexclude = "TS_A:1;TS_B:0,4"\n'
    )
    return path


def _series_tables(project_dir: Path) -> dict[str, str]:
    """The text of every tilt-series STAR file of the project (its comment lines, which hold the time, left out),
    by path within the project."""
    files = sorted(project_dir.glob("runs/*/tilt_series/*.star"))
    return {str(p.relative_to(project_dir)): "".join(line for line in p.read_text().splitlines(keepends=True)
                                                      if not line.startswith("#")) for p in files}  # fmt: skip


def test_the_template_names_every_step_and_parameter_and_reads_back_as_the_defaults_plus_its_values() -> None:
    text = template()
    document = tomllib.loads(text)
    names = list(BUILTIN_STEP_MODULES)
    assert list(document) == names  # every built-in step, in workflow order, even those the template sets nothing in
    for name in names:
        for field in get_step(name).params.model_fields:
            assert f"{field} =" in text, f"[{name}] {field} is missing from the template"
    assert document["import"]["mdoc"] == "session/*.mdoc"
    assert all(len(line) <= 120 for line in text.splitlines())


def test_a_workflow_runs_in_order_and_a_second_run_does_nothing_and_says_so(tmp_path: Path) -> None:
    path = _workflow_file(tmp_path)
    project_dir = tmp_path / "project"
    app = build_app("workflow")
    first = CliRunner().invoke(app, ["workflow", "run", str(path), "-p", str(project_dir)])
    assert first.exit_code == 0, first.output
    assert "import: ran: run 001_import SUCCEEDED" in first.output
    assert "clean: ran: run 002_clean SUCCEEDED" in first.output
    second = CliRunner().invoke(app, ["workflow", "run", str(path), "-p", str(project_dir)])
    assert second.exit_code == 0, second.output
    assert "import: already done, not run again: run 001_import" in second.output
    assert "nothing ran" in second.output
    with open_project(project_dir) as project:
        assert [r.label for r in project.list_runs()] == ["001_import", "002_clean"]
        clean = project.get_run("002_clean")
        assert clean.inputs == (1,)
        cleaned = {ts.name: ts for ts in load_tilt_series_set(project.run_dir(clean))}
    excluded = [t.acquisition.acquisition_index for t in cleaned["TS_B"].tilts if t.excluded]
    assert excluded == [0, 4]  # the values of the file reached the step


def test_a_changed_parameter_runs_that_step_and_those_after_it_again(tmp_path: Path) -> None:
    path = _workflow_file(tmp_path)
    with init_project(tmp_path / "project") as project:
        steps = read_workflow(path)
        assert [o.action for o in run_workflow(project, steps)] == ["ran", "ran"]
        steps[1] = WorkflowStep("clean", {**steps[1].values, "exclude": "TS_A:2"})
        outcomes = run_workflow(project, steps)
        assert [o.action for o in outcomes] == ["skipped", "ran"]
        assert outcomes[1].run.inputs == (outcomes[0].run.id,)


def test_an_interrupted_workflow_resumes_and_ends_as_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    path = _workflow_file(tmp_path)
    steps = read_workflow(path)
    with init_project(tmp_path / "straight") as project:
        run_workflow(project, steps)
    clean = get_step("clean")

    def interrupted(payload, params, out_dir):
        if out_dir.name == "TS_B":
            raise KeyboardInterrupt  # as a user's Ctrl-C, or a kill, reaches a unit
        return clean.run(payload, params, out_dir)

    def steps_with_interrupted_clean(name: str):
        return dataclasses.replace(clean, run=interrupted) if name == "clean" else get_step(name)

    monkeypatch.setattr(workflow_module, "get_step", steps_with_interrupted_clean)
    with init_project(tmp_path / "stopped") as project, pytest.raises(KeyboardInterrupt):
        run_workflow(project, steps)
    monkeypatch.undo()
    with open_project(tmp_path / "stopped") as project:
        assert project.get_run("002_clean").status == "FAILED"
        outcomes = run_workflow(project, steps)
        assert [o.action for o in outcomes] == ["skipped", "resumed"]
        assert outcomes[1].run.status == "SUCCEEDED" and outcomes[1].run.label == "002_clean"
        assert len(project.list_runs()) == 2
    stopped, straight = _series_tables(tmp_path / "stopped"), _series_tables(tmp_path / "straight")
    assert len(stopped) == 4 and stopped == straight


def test_bad_workflow_files_are_refused_naming_the_file_and_every_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text("[import]\nstack = 'x'\n[aling]\n")
    with pytest.raises(InputError, match=r"w\.toml.*'aling'.*use one of: align"):
        read_workflow(path)
    path.write_text("[import\n")
    with pytest.raises(InputError, match="not valid TOML"):
        read_workflow(path)
    with pytest.raises(InputError, match="does not exist"):
        read_workflow(tmp_path / "missing.toml")
    path.write_text("[clean]\nshift_fraction = 'a lot'\n[align]\nworking_size_px = -5\n")
    with init_project(tmp_path / "project") as project, pytest.raises(StepError) as refused:
        run_workflow(project, read_workflow(path))
    message = str(refused.value)
    assert "[clean]" in message and "--shift-fraction" in message and "[align]" in message
    with open_project(tmp_path / "project") as project:
        assert project.list_runs() == []  # nothing ran before the parameters were all checked


TOY_PLUGIN = (Path(__file__).parent / "toy_steps.py").read_text()


@pytest.mark.slow
def test_a_workflow_killed_mid_step_and_run_again_ends_as_an_uninterrupted_one(
    tmp_path: Path, install_plugin_steps, monkeypatch
) -> None:
    """`tomoprep workflow run` killed with SIGKILL in the middle of a step's second unit, then run again: the step
    resumes (its first unit is not run again) and the files equal those of a workflow never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = install_plugin_steps({"toy": "toy_steps:TOY"}, {"toy_steps.py": TOY_PLUGIN})
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def workflow(name: str, seconds: float) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[toy]\nnames = ["TS_01", "TS_02", "TS_03"]\nseconds_per_unit = {seconds}\n'
                        f'call_log = "{tmp_path / name}.calls"\n')  # fmt: skip
        return path

    command = [sys.executable, "-m", "tomoprep", "workflow", "run"]
    straight = subprocess.run([*command, str(workflow("straight", 0.0)), "-p", str(tmp_path / "straight")],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert straight.returncode == 0, straight.stdout + straight.stderr
    killed = workflow("killed", 2.0)
    process = subprocess.Popen([*command, str(killed), "-p", str(tmp_path / "killed")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    calls = tmp_path / "killed.calls"
    deadline = time.monotonic() + 120
    while not (calls.is_file() and "TS_02" in calls.read_text()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # in the middle of TS_02: no chance to record anything
    process.wait(timeout=30)
    again = subprocess.run([*command, str(killed), "-p", str(tmp_path / "killed")], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert again.returncode == 0 and "toy: resumed: run 001_toy SUCCEEDED" in again.stdout, again.stdout
    names = [line.split()[0] for line in calls.read_text().splitlines()]
    assert names == ["TS_01", "TS_02", "TS_02", "TS_03"]  # TS_01 was done before the kill and kept
    assert _series_tables(tmp_path / "killed") == _series_tables(tmp_path / "straight")
