"""The watch on a real project with an import-only workflow and a clock of its own: which series it takes, that
it takes each once, and that a new watch goes on from what the project records (quick)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest
from live_session import movie_names, write_movie, write_series

from tomoprep.errors import InputError
from tomoprep.execution.workflow import WorkflowStep
from tomoprep.live.chains import chain_state, chain_template, default_workflow
from tomoprep.live.session import mdoc_glob_of
from tomoprep.live.watch import STATE_FILE, Watcher, WatchSettings, read_state
from tomoprep.project import Project, init_project, open_project

IMPORT_ONLY = [WorkflowStep("import", {"dose_per_tilt_e_per_angstrom2": 3.0})]


class Clock:
    """A monotonic clock that only a sleep moves on."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds


def _watch(project: Project, session: Path, settings: WatchSettings) -> Watcher:
    template = chain_template(IMPORT_ONLY, mdoc_glob=mdoc_glob_of(session, "*.mdoc"), movies_dir=None,
                              project_root=project.root, source=None)  # fmt: skip
    clock = Clock()
    watcher = Watcher(project, template, settings, clock=clock, sleep=clock.sleep)
    watcher.watch()
    return watcher


def _imports_by_series(project: Project) -> dict[str, list[str]]:
    runs: dict[str, list[str]] = {}
    for run in project.list_runs(step="import"):
        (name,) = run.params["series"]
        runs.setdefault(name, []).append(run.status)
    return runs


def test_each_complete_series_is_imported_alone_once_and_the_incomplete_one_waits(tmp_path: Path) -> None:
    session = tmp_path / "session"
    write_series(session, "TS_01")
    write_series(session, "TS_02")
    write_series(session, "TS_03", leave_out=1)
    settings = WatchSettings(settle_s=3.0, poll_s=1.0, until_idle_s=10.0)
    with init_project(tmp_path / "project") as project:
        watcher = _watch(project, session, settings)
        assert _imports_by_series(project) == {"TS_01": ["SUCCEEDED"], "TS_02": ["SUCCEEDED"]}
        for run in project.list_runs(step="import"):
            assert list(run.units) == run.params["series"]  # the run imported its series and no other
        assert watcher.counts() == {"waiting": 1, "queued": 0, "running": 0, "done": 2, "failed": 0}
        state = read_state(project.root)
        assert state["active"] is False and state["series"]["TS_03"]["state"] == "waiting"
        assert movie_names("TS_03")[-1] in state["series"]["TS_03"]["note"]
        # A second watch finds both done in the project and runs nothing.
        again = _watch(project, session, settings)
        assert _imports_by_series(project) == {"TS_01": ["SUCCEEDED"], "TS_02": ["SUCCEEDED"]}
        assert {n: s.note for n, s in again.series.items() if s.state == "done"} == {
            "TS_01": "done before this watch", "TS_02": "done before this watch"}  # fmt: skip


def test_a_failed_series_fails_alone_and_the_next_watch_resumes_its_run(tmp_path: Path) -> None:
    session = tmp_path / "session"
    write_series(session, "TS_01")
    write_series(session, "TS_02", leave_out=1)
    # Taken with its movie missing: its import fails, TS_01's does not.
    settings = WatchSettings(settle_s=2.0, poll_s=1.0, until_idle_s=6.0, missing_timeout_s=4.0)
    with init_project(tmp_path / "project") as project:
        watcher = _watch(project, session, settings)
        assert _imports_by_series(project) == {"TS_01": ["SUCCEEDED"], "TS_02": ["FAILED"]}
        assert watcher.series["TS_02"].state == "failed" and "import failed" in watcher.series["TS_02"].note
        assert chain_state(project, watcher.template.for_series("TS_02")).status == "failed"
    write_movie(session / movie_names("TS_02")[-1], seed=2)
    with open_project(tmp_path / "project") as project:
        again = _watch(project, session, WatchSettings(settle_s=2.0, poll_s=1.0, until_idle_s=6.0))
        # The same run, resumed by the project's resume machinery: still one import of TS_02, now done.
        assert _imports_by_series(project) == {"TS_01": ["SUCCEEDED"], "TS_02": ["SUCCEEDED"]}
        assert again.series["TS_02"].state == "done"
        assert any("resumed" in m for *_, m in project.events(project.list_runs(step="import")[-1].id))


def test_the_state_file_is_whole_json_with_the_counts(tmp_path: Path) -> None:
    session = tmp_path / "session"
    write_series(session, "TS_01")
    with init_project(tmp_path / "project") as project:
        _watch(project, session, WatchSettings(settle_s=1.0, poll_s=1.0, until_idle_s=3.0))
        state = json.loads((project.root / STATE_FILE).read_text())
        assert state["counts"]["done"] == 1 and state["series"]["TS_01"]["runs"] == ["001_import"]
        assert "TS_01" in state["newest_event"] or "idle" in state["newest_event"]


def test_workflows_the_watch_cannot_chain_are_refused_naming_the_file(tmp_path: Path) -> None:
    def refuse(steps: list[WorkflowStep], expected: str) -> None:
        with pytest.raises(InputError) as raised:
            chain_template(steps, mdoc_glob=str(tmp_path / "*.mdoc"), movies_dir=None, project_root=tmp_path,
                           source=tmp_path / "workflow.toml")  # fmt: skip
        assert "workflow.toml" in str(raised.value) and expected in str(raised.value)

    refuse([WorkflowStep("motioncorr", {})], "does not start with [import]")
    refuse([WorkflowStep("import", {"stack": "stacks/*.mrc"})], "stack")
    refuse([WorkflowStep("import", {}), WorkflowStep("align", {})], "[align]")  # movies, no tilt images yet


def test_the_default_workflow_chains_every_step_and_exports_each_series_to_its_own_folder(tmp_path: Path) -> None:
    template = chain_template(default_workflow(), mdoc_glob=str(tmp_path / "*.mdoc"), movies_dir=None,
                              project_root=tmp_path, source=None)  # fmt: skip
    chain = template.for_series("TS_07")
    assert [s.name for s in chain][:2] == ["import", "motioncorr"] and chain[-1].name == "export"
    assert chain[0].values["series"] == ["TS_07"] and chain[0].values["mdoc"] == str(tmp_path / "*.mdoc")
    assert chain[-1].values["out"] == str(tmp_path.resolve() / "export" / "TS_07")


def test_the_web_ui_gives_the_watch_state_as_json_and_on_the_project_page(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tomoprep.web.app import create_app

    session = tmp_path / "session"
    write_series(session, "TS_01", leave_out=1)
    with init_project(tmp_path / "project") as project:
        client = TestClient(create_app(project.root, token="t"))
        headers = {"Authorization": "Bearer t"}
        assert client.get("/api/watch", headers=headers).json() == {"active": False, "series": {}}  # never watched
        assert "Live session" not in client.get("/", headers=headers).text
        _watch(project, session, WatchSettings(settle_s=1.0, poll_s=1.0, until_idle_s=2.0))
        shown = client.get("/api/watch", headers=headers).json()
        assert shown["series"]["TS_01"]["state"] == "waiting" and shown["counts"]["waiting"] == 1
        page = client.get("/", headers=headers).text  # the project page shows the same
        assert "Live session" in page and "<b>ended</b>" in page
        assert '<td>TS_01</td><td class="watch-waiting">waiting</td>' in page


def test_files_that_change_after_their_series_was_taken_are_warned_of_once(tmp_path: Path) -> None:
    session = tmp_path / "session"
    movies = write_series(session, "TS_01")
    template = chain_template(IMPORT_ONLY, mdoc_glob=mdoc_glob_of(session, "*.mdoc"), movies_dir=None,
                              project_root=tmp_path / "project", source=None)  # fmt: skip
    clock, events = Clock(), []

    class EnoughError(Exception):
        """Ends the watch: its session never goes quiet."""

    def sleep(seconds: float) -> None:  # the microscope goes on writing into the series after it was imported
        clock.sleep(seconds)
        if watcher.series["TS_01"].state == "done":
            with open(movies[0], "ab") as handle:
                handle.write(b"\0" * 16)
        if clock.now_s > 30.0:
            raise EnoughError

    with init_project(tmp_path / "project") as project:
        settings = WatchSettings(settle_s=2.0, poll_s=1.0)
        watcher = Watcher(project, template, settings, clock=clock, sleep=sleep,
                          say=lambda text, status: None if status else events.append(text))  # fmt: skip
        with pytest.raises(EnoughError):
            watcher.watch()
        warnings = [text for text in events if "changed after it was taken" in text]
        assert len(warnings) == 1 and "TS_01" in warnings[0] and "--settle" in warnings[0]
        assert len(project.list_runs(step="import")) == 1


def test_on_a_terminal_the_status_line_is_rewritten_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    from tomoprep.cli.watch import _say

    say = _say(on_terminal=True)
    say("1 waiting, 0 queued", True)
    say("10:00:00 TS_01: complete, queued", False)
    say("0 waiting, 1 queued", True)
    out = capsys.readouterr().out
    assert out == ("\r\x1b[2K1 waiting, 0 queued" "\r\x1b[2K10:00:00 TS_01: complete, queued\n"
                   "\r\x1b[2K0 waiting, 1 queued")  # fmt: skip


def test_the_command_refuses_a_bad_workflow_naming_the_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tomoprep.cli.main import build_app

    (tmp_path / "session").mkdir()
    workflow = tmp_path / "workflow.toml"
    workflow.write_text("[align]\n")
    command = ["watch", str(tmp_path / "session"), "-p", str(tmp_path / "project"), "--workflow", str(workflow)]
    result = CliRunner().invoke(build_app("watch"), command)
    assert result.exit_code == 2 and "workflow.toml" in result.output and "[import]" in result.output
    missing = CliRunner().invoke(build_app("watch"), ["watch", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "nowhere" in missing.output


def test_the_state_of_a_watch_whose_process_is_gone_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tomoprep.live.watch import write_state

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    session = tmp_path / "session"
    write_series(session, "TS_01", leave_out=1)
    with init_project(tmp_path / "project") as project:
        watcher = _watch(project, session, WatchSettings(settle_s=1.0, poll_s=1.0, until_idle_s=2.0))
        write_state(project.root, watcher.state_dict(active=True))  # as a watch leaves it while it runs
        assert read_state(project.root)["active"] is True  # this process: alive
        write_state(project.root, {**watcher.state_dict(active=True), "pid": dead_pid})  # as a killed one leaves it
        state = read_state(project.root)
        assert state["active"] is False and state["gone"] is True and state["series"]["TS_01"]["state"] == "waiting"


def test_a_series_of_one_mdoc_per_movie_is_taken_once_its_last_movie_has_settled(tmp_path: Path) -> None:
    """SerialEM's frame-set mdocs: each movie arrives with its own mdoc, one per tick of the test's clock."""
    from tomoprep.steps.tilt_series_set import load_tilt_series_set

    session = tmp_path / "session"
    session.mkdir()
    template = chain_template(IMPORT_ONLY, mdoc_glob=mdoc_glob_of(session, "*.mdoc"), movies_dir=None,
                              project_root=tmp_path / "project", source=None)  # fmt: skip
    clock, written = Clock(), []

    def microscope(seconds: float) -> None:
        clock.sleep(seconds)
        if len(written) < 4:
            z = len(written)
            name = f"TS_03_{z:03d}_{3 * z}.0.mrc"
            write_movie(session / name, seed=z)
            (session / f"{name}.mdoc").write_text(
                "T = SerialEM: test scope\nVoltage = 300\n\n[FrameSet = 0]\n"
                f"TiltAngle = {3.0 * z}\nExposureDose = 2.5\nPixelSpacing = 1.2\nRotationAngle = 175\n"
                f"SubFramePath = D:\\frames\\{name}\nNumSubFrames = 2\nDateTime = 01-Jan-24  10:00:{10 + z}\n"
            )
            written.append(clock.now_s)

    with init_project(tmp_path / "project") as project:
        settings = WatchSettings(settle_s=2.5, poll_s=1.0, until_idle_s=5.0)
        watcher = Watcher(project, template, settings, clock=clock, sleep=microscope)
        watcher.watch()
        (run,) = project.list_runs(step="import")
        (series,) = load_tilt_series_set(project.run_dir(run))
        assert series.name == "TS_03" and series.n_tilts == 4


def test_a_movie_mdoc_caught_while_being_written_is_no_series_of_its_own(tmp_path: Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    name = "TS_04_000_0.0.mrc"
    text = ("T = SerialEM: test scope\nVoltage = 300\n\n[FrameSet = 0]\nTiltAngle = 0.0\nExposureDose = 2.5\n"
            f"PixelSpacing = 1.2\nRotationAngle = 175\nSubFramePath = D:\\frames\\{name}\nNumSubFrames = 2\n"
            "DateTime = 01-Jan-24  10:00:10\n")  # fmt: skip
    (session / f"{name}.mdoc").write_text(text[: text.index("TiltAngle")] + "Tilt")  # cut mid-line
    write_movie(session / name)
    template = chain_template(IMPORT_ONLY, mdoc_glob=mdoc_glob_of(session, "*.mdoc"), movies_dir=None,
                              project_root=tmp_path / "project", source=None)  # fmt: skip
    with init_project(tmp_path / "project") as project:
        watcher = Watcher(project, template, WatchSettings(settle_s=2.0))
        watcher.poll()
        assert watcher.series["TS_04_000_0.0"].note == "its mdoc cannot be read yet"
        (session / f"{name}.mdoc").write_text(text)
        watcher.poll()
        assert list(watcher.series) == ["TS_04"] and watcher.counts()["waiting"] == 1


def test_chains_run_in_parallel_threads_import_each_series_once(tmp_path: Path) -> None:
    session = tmp_path / "session"
    for name in ("TS_01", "TS_02", "TS_03"):
        write_series(session, name)
    write_series(session, "TS_04", leave_out=1)
    settings = WatchSettings(settle_s=2.0, poll_s=1.0, until_idle_s=4.0, parallel=2)
    with init_project(tmp_path / "project") as project:
        watcher = _watch(project, session, settings)
        assert _imports_by_series(project) == {name: ["SUCCEEDED"] for name in ("TS_01", "TS_02", "TS_03")}
        assert watcher.counts() == {"waiting": 1, "queued": 0, "running": 0, "done": 3, "failed": 0}
        assert read_state(project.root)["active"] is False


class _LongStep(Executor):
    """Runs each unit here as a step of ``step_s`` seconds of ``clock``, begun once ``ready()`` (or after 5 s of
    real time, where it never is)."""

    def __init__(self, clock: Clock, step_s: float, ready: Callable[[], bool]) -> None:
        self.clock, self.step_s, self.ready = clock, step_s, ready

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        deadline = time.monotonic() + 5.0
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.clock.sleep(self.step_s)
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def test_a_series_completed_during_a_long_step_settles_from_its_last_change_not_from_the_step_end(
    tmp_path: Path,
) -> None:
    """TS_02 is written whole as TS_01's import begins, and that import takes 60 s: TS_02 has been still for
    longer than the settle time when it ends, so it is taken at once, not a settle time later."""
    session = tmp_path / "session"
    write_series(session, "TS_01")
    template = chain_template(IMPORT_ONLY, mdoc_glob=mdoc_glob_of(session, "*.mdoc"), movies_dir=None,
                              project_root=tmp_path / "project", source=None)  # fmt: skip
    clock, taken_s = Clock(), {}
    settings = WatchSettings(settle_s=3.0, poll_s=0.25, until_idle_s=5.0)

    def say(text: str, status: bool) -> None:
        if not status and "TS_01: running its chain" in text:
            write_series(session, "TS_02")  # the microscope writes the next series during the step
        if not status and ": complete, queued" in text:
            taken_s[text.split()[1].rstrip(":")] = clock.now_s

    with init_project(tmp_path / "project") as project:
        # The step begins once a scan has seen TS_02, which is first seen when TS_01 is taken (at 3 s).
        step = _LongStep(clock, 60.0, ready=lambda: (watcher.tracker.quiet_since_s() or 0.0) >= 3.0)
        watcher = Watcher(project, template, settings, executor=step, clock=clock, sleep=clock.sleep, say=say)
        watcher.watch()
        assert _imports_by_series(project) == {"TS_01": ["SUCCEEDED"], "TS_02": ["SUCCEEDED"]}
    assert taken_s["TS_01"] == pytest.approx(3.0)
    # TS_01's import ends at 63 s; TS_02, still since 3 s, is taken by the poll after that step.
    assert taken_s["TS_02"] < 63.0 + settings.settle_s
