"""The watch: take each tilt series of a session folder once it is complete and run its chain, while collection
goes on.

Each poll scans the session (:mod:`tomoprep.live.session`); a series seen for the first time is looked up in the
project (:func:`tomoprep.live.chains.chain_state`): one done is left alone, one started (a run interrupted, a
step left, a run failed in an earlier watch) is queued at once to be finished, and a new one waits until it is
complete. Queued series run one after another in the order they were taken, each chain with
:func:`~tomoprep.execution.workflow.run_workflow`, and the session is scanned again after every step, and
every poll during a step for when files change (or several at once in threads, :mod:`tomoprep.live.parallel`).
A chain that fails marks its series failed for the rest of this watch and the others carry on.

What the watch knows of each series lives in the project; the state file it writes for others to read
(``watch.json`` in the project, :func:`write_state`) is never read back by a watch.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tomoprep.errors import TomoprepError
from tomoprep.execution.workflow import StepOutcome, run_workflow
from tomoprep.live.chains import ChainTemplate, chain_state
from tomoprep.live.session import CompletenessTracker, MdocCache, SeriesFiles, describe_wait, scan_session
from tomoprep.project import Project
from tomoprep.project.records import now, write_text_atomic

#: The file in the project folder where a watch shows what it is doing (read by ``/api/watch`` of the web UI).
STATE_FILE = "watch.json"

#: Asked after each step of a chain: whether to stop the chain there.
StopCheck = Callable[[], bool]

SeriesState = Literal["waiting", "queued", "running", "done", "failed"]
STATES: tuple[SeriesState, ...] = ("waiting", "queued", "running", "done", "failed")


@dataclass(frozen=True)
class WatchSettings:
    """How the watch polls and when it ends (times in seconds).

    ``until_idle_s``: end once nothing is queued or running and no file has changed for this long (``None``:
    until stopped). ``settle_s`` and ``missing_timeout_s`` as :class:`~tomoprep.live.session.CompletenessTracker`.
    ``parallel``: how many series' chains run at once.
    """

    settle_s: float = 120.0
    poll_s: float = 5.0
    until_idle_s: float | None = None
    missing_timeout_s: float | None = None
    parallel: int = 1


class StopRequestedError(Exception):
    """A chain stopped after a step, at the watch's request (its next steps run at the next watch)."""


@dataclass
class _Series:
    state: SeriesState
    note: str = ""
    runs: list[str] = field(default_factory=list)
    taken: bool = False  # by this watch, when it was complete
    warned: bool = False


class Watcher:
    """Watch a session folder and run each complete series' chain in ``project``.

    Parameters
    ----------
    project
        The open project the chains run in.
    template
        The chains' workflow and the session's files (:func:`tomoprep.live.chains.chain_template`).
    settings
        Poll interval, settle time, and when to end.
    executor
        Where each run's units run (as for any step).
    say
        Called with each event line and with the status line (``status=True``) whenever it changes.
    execution_note
        Where units run and where each setting came from, for each run's log (as ``workflow run`` writes it).
    clock, sleep
        A monotonic clock (s) and a sleep, replaceable for tests.
    """

    def __init__(
        self,
        project: Project,
        template: ChainTemplate,
        settings: WatchSettings,
        *,
        executor: Executor | None = None,
        say: Callable[[str, bool], None] | None = None,
        execution_note: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project, self.template, self.settings = project, template, settings
        self.executor, self.execution_note, self.clock, self.sleep = executor, execution_note, clock, sleep
        self.say = say or (lambda text, status: None)
        self.tracker = CompletenessTracker(settings.settle_s, settings.missing_timeout_s)
        self.mdocs = MdocCache()
        self.series: dict[str, _Series] = {}
        self.queue: list[str] = []
        self.newest_event = "watching"
        self.started_s = clock()
        self._last_status = ""
        #: Held while the series and the state file change: chains may run in threads (live/parallel.py).
        self.lock = threading.RLock()
        #: Held from a scan of the session to its update of the tracker: a scan taken during a step
        #: (:meth:`observe`) must not land after a newer one.
        self._scanning = threading.Lock()
        self._changed: set[str] = set()  # series whose files a scan during a step saw change

    def counts(self) -> dict[str, int]:
        """How many series are in each state."""
        return {state: sum(s.state == state for s in self.series.values()) for state in STATES}

    def status_line(self) -> str:
        """One line: the counts and the newest event."""
        counts = ", ".join(f"{n} {state}" for state, n in self.counts().items())
        return f"{counts} | {self.newest_event}"

    def event(self, text: str) -> None:
        """Tell ``text`` as the newest event: printed, and in the status line and the state file."""
        with self.lock:
            self.newest_event = f"{time.strftime('%H:%M:%S', time.gmtime())} {text}"
            self.say(self.newest_event, False)
            self._show()

    def _show(self) -> None:
        with self.lock:
            line = self.status_line()
            if line != self._last_status:
                self._last_status = line
                self.say(line, True)
            write_state(self.project.root, self.state_dict(active=True))

    def poll(self) -> None:
        """Scan the session, learn new series from the project, and queue those complete."""
        with self._scanning:
            scan = scan_session(self.template.mdoc_glob, self.template.movies_dir, self.mdocs)
            with self.lock:
                self._learn(scan)

    def observe(self) -> None:
        """Scan the session and note when each series' files changed, without the project: from any thread."""
        with self._scanning:
            scan = scan_session(self.template.mdoc_glob, self.template.movies_dir, self.mdocs)
            with self.lock:
                self._changed |= self.tracker.update(scan, self.clock())

    def _learn(self, scan: list[SeriesFiles]) -> None:
        now_s = self.clock()
        changed = self.tracker.update(scan, now_s) | self._changed
        self._changed = set()
        for files in scan:
            known = self.series.get(files.name)
            if known is None:
                known = self.series[files.name] = self._first_sight(files)
            elif files.name in changed and known.taken and not known.warned:
                known.warned = True  # once: its files may go on changing
                self.event(f"warning: {files.name}: its files changed after it was taken; the runs use the files "
                            "as they were (a --settle shorter than the time between two tilts?)")  # fmt: skip
            if known.state == "waiting":
                if self.tracker.is_complete(files, now_s):
                    self._take(files.name, "complete" if not files.missing else "taken with movies missing")
                else:
                    known.note = describe_wait(files)
        # A series no longer there while it waited was no series: a movie's mdoc read while being written, say.
        present = {files.name for files in scan}
        for name in [n for n, s in self.series.items() if s.state == "waiting" and n not in present]:
            del self.series[name]
        self._show()

    def _first_sight(self, files: SeriesFiles) -> _Series:
        state = chain_state(self.project, self.template.for_series(files.name))
        runs = [r.label for r in state.runs]
        if state.status == "done":
            return _Series("done", "done before this watch", runs)
        if state.status in ("started", "failed"):
            self.queue.append(files.name)
            self.event(f"{files.name}: chain found unfinished at {runs[-1]}, queued to finish it")
            return _Series("queued", "to be finished", runs)
        return _Series("waiting", describe_wait(files))

    def _take(self, name: str, why: str) -> None:
        self.series[name].state, self.series[name].note = "queued", why
        self.series[name].taken = True
        self.queue.append(name)
        self.event(f"{name}: {why}, queued")

    def run_next(self) -> bool:
        """Run the chain of the first queued series here; return whether there was one."""
        name = self.start_next()
        if name is None:
            return False
        with self._observing():
            self.run_chain(self.project, name, poll_between=True)
        return True

    @contextmanager
    def _observing(self) -> Iterator[None]:
        """Scan the session every poll while this thread runs a chain: the settle time of a series whose last
        file came during a long step then counts from when its files stopped changing, not from the step's end."""
        done = threading.Event()

        def observe_until_done() -> None:
            while not done.wait(self.settings.poll_s):
                with suppress(OSError, TomoprepError):  # the poll after the step meets them and tells what is wrong
                    self.observe()

        thread = threading.Thread(target=observe_until_done, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def start_next(self) -> str | None:
        """Take the first queued series off the queue, marked running; ``None`` when none is queued."""
        with self.lock:
            if not self.queue:
                return None
            name = self.queue.pop(0)
            self.series[name].state, self.series[name].note = "running", "starting"
            self.event(f"{name}: running its chain")
            return name

    def run_chain(self, project: Project, name: str, *, poll_between: bool, stop: StopCheck | None = None) -> None:
        """Run the chain of series ``name`` in ``project`` (this thread's connection to it), scanning the session
        after each step where ``poll_between``; ``stop`` is asked after each step whether to stop there."""
        entry = self.series[name]

        def after_step(outcome: StepOutcome) -> None:
            with self.lock:
                entry.runs = [*dict.fromkeys([*entry.runs, outcome.run.label])]
                entry.note = f"{outcome.name} {outcome.action} ({outcome.run.label} {outcome.run.shown_status})"
                self.event(f"{name}: {entry.note}")
            if poll_between:
                self.poll()
            if stop is not None and stop() and outcome.run.status == "SUCCEEDED":
                raise StopRequestedError

        chain = self.template.for_series(name)
        try:
            outcomes = run_workflow(
                project, chain, executor=self.executor, on_step=after_step, execution_note=self.execution_note
            )
        except StopRequestedError:
            return self.set_state(entry, name, "queued", "stopped between two steps: the next watch goes on")
        except TomoprepError as exc:
            return self.set_state(entry, name, "failed", str(exc).splitlines()[0])
        except KeyboardInterrupt:
            # The runner has recorded the run stopped; the next watch finds the chain unfinished and resumes it.
            self.set_state(entry, name, "failed", "interrupted: the next watch resumes it")
            raise
        last = outcomes[-1].run
        if last.status == "SUCCEEDED" and not last.failed_units and len(outcomes) == len(chain):
            return self.set_state(entry, name, "done", f"done ({last.label})")
        error = (last.error or last.status).splitlines()[0]
        return self.set_state(entry, name, "failed", f"{outcomes[-1].name} failed ({last.label}): {error}")

    def set_state(self, entry: _Series, name: str, state: SeriesState, note: str) -> None:
        """Set a series' state and note, and tell it as an event."""
        with self.lock:
            entry.state, entry.note = state, note
            self.event(f"{name}: {note}")

    def idle(self) -> bool:
        """Whether the watch is to end: nothing queued, and no file changed for ``until_idle_s``."""
        if self.settings.until_idle_s is None or self.queue:
            return False
        last_change = self.tracker.quiet_since_s()
        quiet_s = self.clock() - max(self.started_s, last_change if last_change is not None else self.started_s)
        return quiet_s >= self.settings.until_idle_s

    def watch(self) -> None:
        """Poll, run what is queued, and sleep when there is nothing to do, until idle (or interrupted); with
        ``settings.parallel`` above 1, several chains at once (:func:`tomoprep.live.parallel.watch_in_parallel`)."""
        if self.settings.parallel > 1:
            from tomoprep.live.parallel import watch_in_parallel

            return watch_in_parallel(self)
        try:
            while True:
                self.poll()
                if self.run_next():
                    continue
                if self.idle():
                    return self.end()
                self.sleep(self.settings.poll_s)
        finally:
            write_state(self.project.root, self.state_dict(active=False))

    def end(self) -> None:
        """Say that the watch ends, naming the series still incomplete."""
        waiting = [n for n, s in self.series.items() if s.state == "waiting"]
        self.event("idle: ending" + (f" ({', '.join(waiting)} still incomplete)" if waiting else ""))

    def state_dict(self, *, active: bool) -> dict[str, Any]:
        """What the watch shows: counts, newest event and each series' state, note and runs."""
        return {
            "active": active,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "session": self.template.mdoc_glob,
            "updated_at": now(),
            "counts": self.counts(),
            "newest_event": self.newest_event,
            "series": {name: {"state": s.state, "note": s.note, "runs": s.runs} for name, s in self.series.items()},
        }


def write_state(project_root: Path, state: dict[str, Any]) -> None:
    """Write the watch's state to ``watch.json`` in the project (atomically: a reader sees a whole file)."""
    write_text_atomic(project_root / STATE_FILE, json.dumps(state, indent=1) + "\n")


def read_state(project_root: Path) -> dict[str, Any]:
    """The last state a watch wrote in the project, or ``{"active": False, "series": {}}`` if none ever did.

    A watch killed (SIGKILL, a lost machine) could not say it ended: where its process, on this host, is gone,
    the state says ``"active": false`` and ``"gone": true``."""
    try:
        state = dict(json.loads((project_root / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return {"active": False, "series": {}}
    if state.get("active") and state.get("host") == socket.gethostname() and not _alive(int(state.get("pid", 0))):
        state.update(active=False, gone=True)
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return pid > 0
