"""A live session: a simulated session copied into the watched folder movie by movie while `tomoprep watch` runs,
the watch killed (SIGKILL) in the middle of a run and started again; real steps on tiny series (slow)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tomoprep
from tomoprep.live.watch import read_state
from tomoprep.project import Project, RunRecord, open_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session

COMPLETE = ("TS_01", "TS_02")
INCOMPLETE = "TS_03"
STEPS = ("import", "motioncorr", "clean", "align", "ctf", "reconstruct", "export")
#: The template's steps; the alignment's refinements are left out to keep the test short (they have tests of their
#: own), and one binning.
WORKFLOW = """
[import]
movies = "{movies}"
[motioncorr]
[clean]
[align]
refine_axis = false
refine_tilt_offset = false
matching_iterations = 1
[ctf]
[reconstruct]
binning = [8]
[export]
"""
PACE_S = 0.6


def _feed(source: Path, session: Path, written: dict[str, float]) -> None:
    """Copy each series as the microscope writes it: the mdoc, then one movie after another (the incomplete series
    never gets its last movie); ``written`` gets the time each series' last file was written."""
    frames = session / "frames"
    frames.mkdir(parents=True)
    shutil.copy(source / "gain_A.mrc", session)
    for name in (*COMPLETE, INCOMPLETE):
        shutil.copy(source / f"{name}.mrc.mdoc", session)
        movies = sorted((source / "frames").glob(f"{name}_*"))
        for movie in movies[:-1] if name == INCOMPLETE else movies:
            time.sleep(PACE_S)
            shutil.copy(movie, frames)
        written[name] = time.time()


def _watch(session: Path, project: Path, workflow: Path, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(Path(tomoprep.__file__).parents[1])}
    command = [sys.executable, "-m", "tomoprep", "watch", str(session), "-p", str(project), "--workflow",
               str(workflow), "--settle", "2", "--poll", "0.5", *extra]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop_a_watch_mid_run(
    session: Path, root: Path, workflow: Path, *extra: str, stop: signal.Signals, steps_done: int, timeout_s: float
) -> tuple[RunRecord, int, str]:
    """Start a watch, send it ``stop`` (SIGINT for a Ctrl-C) once ``steps_done`` runs have succeeded and another is
    in progress, and wait for it to end: ``(the run that was in progress, exit status, output)``. Each wait lasts
    ``timeout_s`` at most; the watch is killed whatever happens, so that no test leaves it running."""
    watch = _watch(session, root, workflow, *extra)
    try:
        in_progress = _wait_for_running(root, steps_done=steps_done, timeout_s=timeout_s)
        watch.send_signal(stop)
        output, _ = watch.communicate(timeout=timeout_s)
    finally:
        watch.kill()
    return in_progress, watch.returncode, output


def _watch_until_idle(session: Path, root: Path, workflow: Path, *extra: str, idle_s: int, timeout_s: float) -> None:
    """Run a watch that ends after ``idle_s`` seconds with nothing to do; it must end well."""
    watch = _watch(session, root, workflow, *extra, "--until-idle", str(idle_s))
    output, _ = watch.communicate(timeout=timeout_s)
    assert watch.returncode == 0, output


def _one_session(simulated: Path, tmp_path: Path, workflow_text: str, series: tuple[str, ...]) -> tuple[Path, ...]:
    """A copy of the simulated session holding only ``series`` (the others' mdocs removed), a project folder, and
    a workflow file of ``workflow_text`` (``{movies}`` standing for the session's movie folder)."""
    session, root, workflow = tmp_path / "session", tmp_path / "project", tmp_path / "workflow.toml"
    shutil.copytree(simulated, session)
    for name in {*COMPLETE, INCOMPLETE} - set(series):
        (session / f"{name}.mrc.mdoc").unlink()
    workflow.write_text(workflow_text.format(movies=session / "frames"))
    return session, root, workflow


def _chains(project: Project) -> dict[str, list[RunRecord]]:
    """Each series' runs, found by following the inputs from its import."""
    runs = project.list_runs()
    chains = {}
    for run in (r for r in runs if r.step == "import"):
        chain = [run]
        while followers := [r for r in runs if r.inputs == (chain[-1].id,)]:
            assert len(followers) == 1, f"{chain[-1].label} was taken as input twice: {followers}"
            chain.append(followers[0])
        (name,) = run.params["series"]
        assert name not in chains, f"{name} was imported twice"
        chains[name] = chain
    return chains


def _wait_for_running(project_root: Path, *, steps_done: int, timeout_s: float) -> RunRecord:
    """The run in progress once ``steps_done`` runs have succeeded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (project_root / "project.db").is_file():
            with open_project(project_root, read_only=True) as project:
                runs = project.list_runs()
            running = [r for r in runs if r.status == "RUNNING"]
            if running and sum(r.status == "SUCCEEDED" for r in runs) >= steps_done:
                return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no run was in progress after {steps_done} runs within {timeout_s} s")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated session of three tiny series (movies, mdocs, gain), written once for the module."""
    source = tmp_path_factory.mktemp("live") / "simulated"
    simulate_session(source, SimulateParams(preset="tiny", n_tilt_series=3, n_tilts=7, frames_per_tilt=3, seed=3))
    return source


@pytest.mark.slow
def test_a_watch_killed_half_way_and_started_again_processes_each_complete_series_once(
    simulated: Path, tmp_path: Path
) -> None:
    source = simulated
    session, root, workflow = tmp_path / "session", tmp_path / "project", tmp_path / "workflow.toml"
    workflow.write_text(WORKFLOW.format(movies=session / "frames"))
    written: dict[str, float] = {}
    feeder = threading.Thread(target=_feed, args=(source, session, written))
    session.mkdir()
    feeder.start()
    try:  # TS_01's alignment, say
        interrupted, *_ = _stop_a_watch_mid_run(session, root, workflow, stop=signal.SIGKILL, steps_done=3,
                                                timeout_s=300)  # fmt: skip
    finally:
        feeder.join()
    with open_project(root, read_only=True) as project:
        assert project.get_run(interrupted.id).status == "RUNNING"  # killed: nothing could record its end
    assert read_state(root)["gone"] is True  # the state file it left says it is no longer there

    _watch_until_idle(session, root, workflow, idle_s=3, timeout_s=900)

    with open_project(root, read_only=True) as project:
        chains = _chains(project)
        assert sorted(chains) == list(COMPLETE)  # the incomplete series waits, never imported
        for name, chain in chains.items():
            assert [r.step for r in chain] == list(STEPS), name  # one run per step: no series processed twice
            assert all(r.status == "SUCCEEDED" and list(r.units) == [name] for r in chain), name
            tomograms = list((project.run_dir(chain[-2]) / name / "tomograms").glob("*.mrc"))
            assert tomograms, f"{name}: no tomogram in {project.run_dir(chain[-2])}"
            # Recorded relative to the project folder, as it lies in it.
            assert chain[-1].params["out"] == f"export/{name}"
            export = root.resolve() / "export" / name
            assert name in (export / "tomograms.star").read_text()
        resumed = project.get_run(interrupted.id)
        assert resumed.status == "SUCCEEDED"
        assert any("resumed" in message for *_, message in project.events(resumed.id))
        first_import = chains[COMPLETE[0]][0]
    # The first series was taken while the session was still being written.
    assert first_import.started_at < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(written[INCOMPLETE]))
    state = read_state(root)
    assert state["series"][INCOMPLETE]["state"] == "waiting" and "waiting for" in state["series"][INCOMPLETE]["note"]
    assert state["counts"] == {"waiting": 1, "queued": 0, "running": 0, "done": 2, "failed": 0}


@pytest.mark.slow
def test_ctrl_c_stops_the_run_in_progress_and_the_next_watch_resumes_it(simulated: Path, tmp_path: Path) -> None:
    # One series is enough here.
    paths = _one_session(simulated, tmp_path, '[import]\nmovies = "{movies}"\n[motioncorr]\n', ("TS_01",))
    root = paths[1]
    # Ctrl-C during the motion correction.
    interrupted, status, output = _stop_a_watch_mid_run(*paths, stop=signal.SIGINT, steps_done=1, timeout_s=120)
    assert status == 130 and "Run the same command again" in output, output
    with open_project(root, read_only=True) as project:
        stopped = project.get_run(interrupted.id)
        assert stopped.status == "FAILED" and "KeyboardInterrupt" in (stopped.error or "")
    assert read_state(root)["active"] is False

    _watch_until_idle(*paths, idle_s=1, timeout_s=300)
    with open_project(root, read_only=True) as project:
        assert [(r.step, r.status) for r in project.list_runs()] == [("import", "SUCCEEDED"),
                                                                      ("motioncorr", "SUCCEEDED")]  # fmt: skip
        assert project.get_run(interrupted.id).status == "SUCCEEDED"


@pytest.mark.slow
def test_with_parallel_chains_two_series_are_processed_at_once_each_once(simulated: Path, tmp_path: Path) -> None:
    paths = _one_session(simulated, tmp_path, WORKFLOW, COMPLETE)
    _watch_until_idle(*paths, "--parallel", "2", "--jobs", "2", idle_s=2, timeout_s=900)
    root = paths[1]
    with open_project(root, read_only=True) as project:
        chains = _chains(project)
    assert sorted(chains) == list(COMPLETE)
    for name, chain in chains.items():
        assert [r.step for r in chain] == list(STEPS) and all(r.status == "SUCCEEDED" for r in chain), name
    first, second = (chains[name] for name in COMPLETE)
    # The chains overlap in time: each began before the other ended.
    assert first[0].started_at < (second[-1].finished_at or "") and second[0].started_at < (first[-1].finished_at or "")


@pytest.mark.slow
def test_ctrl_c_with_parallel_chains_lets_the_steps_finish_and_the_next_watch_goes_on(
    simulated: Path, tmp_path: Path
) -> None:
    paths = _one_session(simulated, tmp_path, '[import]\nmovies = "{movies}"\n[motioncorr]\n[clean]\n', COMPLETE)
    root = paths[1]
    in_progress, status, output = _stop_a_watch_mid_run(*paths, "--parallel", "2", stop=signal.SIGINT, steps_done=1,
                                                        timeout_s=300)  # fmt: skip
    assert status == 130 and "steps in progress finish first" in output, output
    with open_project(root, read_only=True) as project:
        assert project.get_run(in_progress.id).status == "SUCCEEDED"  # finished, not cut short
        assert not [r for r in project.list_runs() if r.status != "SUCCEEDED"]
        assert len(project.list_runs()) < 2 * 3  # the chains stopped after their steps

    _watch_until_idle(*paths, "--parallel", "2", idle_s=1, timeout_s=600)
    with open_project(root, read_only=True) as project:
        chains = _chains(project)
    assert sorted(chains) == list(COMPLETE)
    for name, chain in chains.items():
        assert [(r.step, r.status) for r in chain] == [(s, "SUCCEEDED") for s in STEPS[:3]], name
