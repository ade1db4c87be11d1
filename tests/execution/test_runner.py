"""The runner: records, per-unit failures, inputs, executors, and resuming after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from toy_steps import CONSUMER, TOY, ToyParams

from tomoprep.errors import StepError
from tomoprep.execution import local_executor, resume_run, run_step
from tomoprep.project import init_project, open_project
from tomoprep.steps.tilt_series_set import load_tilt_series_set


@pytest.fixture
def project(tmp_path: Path):
    with init_project(tmp_path / "p") as proj:
        yield proj


def test_run_records_params_with_defaults_units_and_outputs(project) -> None:
    run = run_step(project, TOY, {"names": ["A", "B"]})
    assert run.status == "SUCCEEDED" and run.error is None
    assert run.params["seconds_per_unit"] == 0.0 and run.params["names"] == ["A", "B"]
    assert set(run.units) == {"A", "B"}
    folder = project.run_dir(run)
    assert (folder / "A" / "result.txt").read_text() == "A"
    assert [ts.name for ts in load_tilt_series_set(folder)] == ["A", "B"]
    assert "made A" in (folder / "log.txt").read_text()
    kinds = {(unit, kind) for unit, kind, _ in project.artifacts(run.id)}
    assert ("A", "txt") in kinds and ("A", "star") in kinds


def test_one_failing_unit_does_not_stop_the_others(project) -> None:
    run = run_step(project, TOY, ToyParams(names=("A", "B", "C"), fail=("B",), unplannable=("C",)))
    assert run.status == "SUCCEEDED"
    assert run.units["A"].status == "SUCCEEDED"
    assert run.units["B"].status == "FAILED" and "told to fail" in (run.units["B"].error or "")
    assert run.units["C"].status == "FAILED" and run.units["C"].error == "cannot plan"
    assert [ts.name for ts in load_tilt_series_set(project.run_dir(run))] == ["A"]
    assert "2 of 3 units failed" in (run.error or "")


def test_a_run_where_every_unit_fails_is_failed(project) -> None:
    run = run_step(project, TOY, {"names": ["A"], "fail": ["A"]})
    assert run.status == "FAILED"
    assert (project.run_dir(run) / "FAILED").is_file()


def test_invalid_params_name_the_field(project) -> None:
    with pytest.raises(StepError, match="--seconds-per-unit: "):
        run_step(project, TOY, {"seconds_per_unit": -1})
    assert project.list_runs() == []


def test_consumer_takes_newest_successful_run_or_the_one_asked(project, install_plugin_steps) -> None:
    # The runs' steps are found by name, as a project's are: the toy steps join as an installed plugin.
    install_plugin_steps({"toy": "toy_steps:TOY", "consumer": "toy_steps:CONSUMER"})
    with pytest.raises(StepError, match="needs toy, but no successful run holds toy"):
        run_step(project, CONSUMER)
    first = run_step(project, TOY, {"names": ["A"]})
    second = run_step(project, TOY, {"names": ["B", "C"]})
    out = run_step(project, CONSUMER)
    assert out.inputs == (second.id,)
    assert sorted(out.units) == ["B", "C"]
    assert all(ts.n_tilts == 2 for ts in load_tilt_series_set(project.run_dir(out)))
    picked = run_step(project, CONSUMER, input_run=first.id)
    assert sorted(picked.units) == ["A"]


def test_process_pool_executor_runs_units_in_other_processes(project, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with local_executor(2) as executor:
        run = run_step(project, TOY, {"names": ["A", "B", "C", "D"], "call_log": str(log)}, executor=executor)
    assert run.status == "SUCCEEDED" and len(run.units) == 4
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert str(os.getpid()) not in pids


KILLED_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    from toy_steps import TOY
    from tomoprep.execution import run_step
    from tomoprep.project import open_project
    names = [f"TS_{i:02d}" for i in range(6)]
    run_step(open_project(sys.argv[1]), TOY, {"names": names, "seconds_per_unit": 0.4, "call_log": sys.argv[2]})
""")


@pytest.mark.slow  # a run killed with SIGKILL in a subprocess, then resumed: 3 s
def test_kill_9_then_resume_completes_without_redoing_finished_units(project, tmp_path: Path) -> None:
    script, log = tmp_path / "killed.py", tmp_path / "calls.log"
    script.write_text(KILLED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(project.root), str(log), str(Path(__file__).parent)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = project.list_runs()
        if runs and sum(u.status == "SUCCEEDED" for u in runs[0].units.values()) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = project.get_run(1)
    done_before = {n for n, u in interrupted.units.items() if u.status == "SUCCEEDED"}
    assert interrupted.status == "RUNNING" and 2 <= len(done_before) < 6

    with open_project(project.root) as again:
        finished = resume_run(again, 1, step=TOY)
    assert finished.status == "SUCCEEDED"
    assert all(u.status == "SUCCEEDED" for u in finished.units.values()) and len(finished.units) == 6
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    for name in done_before:
        assert calls.count(name) == 1, f"{name} was redone"
    assert len(calls) <= 6 + 1  # at most the unit running at the kill is run twice
    names = [ts.name for ts in load_tilt_series_set(project.run_dir(finished))]
    assert names == [f"TS_{i:02d}" for i in range(6)]
    assert "resumed: " in (project.run_dir(finished) / "log.txt").read_text()
