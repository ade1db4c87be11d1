"""Several series' chains at once (``tomoprep watch --parallel N``).

Each chain runs in a thread of its own, with its own connection to the project (SQLite serialises the writes of
connections, docs/project.md), its runs' units on the watch's executor; the watch's own thread scans the session
and starts the chains. Ctrl-C lets the steps in progress finish and stops each chain there (the next watch goes
on with its next step); a second Ctrl-C ends the watch at once and leaves the runs in progress as a kill would
(the next watch resumes them).
"""

from __future__ import annotations

import threading

from tomoprep.live.watch import StopCheck, Watcher, write_state
from tomoprep.project import open_project


def watch_in_parallel(watcher: Watcher) -> None:
    """:meth:`Watcher.watch` with up to ``watcher.settings.parallel`` chains running at once."""
    running: dict[str, threading.Thread] = {}
    stopping = threading.Event()
    try:
        while True:
            watcher.poll()
            for ended in [n for n, thread in running.items() if not thread.is_alive()]:
                del running[ended]
            while len(running) < watcher.settings.parallel and (name := watcher.start_next()) is not None:
                # Daemon threads: a second Ctrl-C ends the process without waiting for them.
                thread = threading.Thread(target=_chain, args=(watcher, name, stopping.is_set), daemon=True)
                thread.start()
                running[name] = thread
            if not running and watcher.idle():
                return watcher.end()
            watcher.sleep(watcher.settings.poll_s)
    except KeyboardInterrupt:
        stopping.set()
        watcher.event("stopping: the steps in progress finish first (Ctrl-C again leaves them as a kill would)")
        for thread in running.values():
            thread.join()
        raise
    finally:
        write_state(watcher.project.root, watcher.state_dict(active=False))


def _chain(watcher: Watcher, name: str, stop: StopCheck) -> None:
    """Run one chain in this thread; an error no step turned into a failed run fails the series, and is told
    (an exception ending a thread would otherwise be lost)."""
    try:
        with open_project(watcher.project.root) as project:
            watcher.run_chain(project, name, poll_between=False, stop=stop)
    except KeyboardInterrupt:
        pass  # a Ctrl-C that reached a worker process stopped the unit: the run and the series say so already
    except Exception as exc:
        watcher.set_state(watcher.series[name], name, "failed", f"{type(exc).__name__}: {exc}")
