"""Launching, stopping and resuming runs from the web UI, each in a process of its own (:mod:`.worker`).

The server keeps the processes it started, by run; only those can be stopped from a page (a run started on the
command line is stopped where it runs). A stopped run is recorded FAILED with the interruption and resumes as any
interrupted run does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tomoprep.steps.base import Step

#: How long a launched process may take to record its run (reading its input and planning) before it is given up.
START_TIMEOUT_S = 120.0


class LaunchError(Exception):
    """A run could not be started; the message says why (the worker's own output)."""


def field_errors(step: Step, values: dict[str, Any]) -> list[dict[str, str]]:
    """Every problem of ``values`` as the step's Params see them, at once: ``[{"field", "message"}]``."""
    try:
        step.params.model_validate(values)
    except ValidationError as exc:
        return [{"field": ".".join(str(p) for p in err["loc"]) or "(form)", "message": err["msg"]}
                for err in exc.errors()]  # fmt: skip
    return []


class Launcher:
    """The worker processes one server started, by run label."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.lock = threading.Lock()

    def _start(self, args: list[str]) -> str:
        command = [sys.executable, "-m", "tomoprep.web.worker", str(self.root), *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        first = _first_line(process, START_TIMEOUT_S)
        if not first.startswith("RUN "):
            process.kill()
            rest = process.stdout.read() if process.poll() is not None else ""
            raise LaunchError((first + rest).strip() or "the run could not be started")
        label = first.split(" ", 1)[1].strip()
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
        with self.lock:
            self.processes[label] = process
        return label

    def run(self, step: Step, values: dict[str, Any], input_run: str | None) -> str:
        """Start a run of ``step``; returns its label once it is recorded."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(values, handle)
        try:
            return self._start(["run", step.name, handle.name, *([input_run] if input_run else [])])
        finally:
            Path(handle.name).unlink(missing_ok=True)

    def resume(self, label: str) -> str:
        """Resume run ``label`` in a new process."""
        return self._start(["resume", label])

    def running_here(self, label: str) -> bool:
        """Whether run ``label`` is running in a process this server started."""
        with self.lock:
            process = self.processes.get(label)
        return process is not None and process.poll() is None

    def finish(self, label: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for run ``label``'s process (if this server started one) to end; whether it
        has (a stopped run is recorded as such a moment before its process exits)."""
        with self.lock:
            process = self.processes.get(label)
        if process is None:
            return True
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, label: str) -> bool:
        """Interrupt run ``label`` as Ctrl-C would; ``False`` when this server is not running it."""
        with self.lock:
            process = self.processes.get(label)
        if process is None or process.poll() is not None:
            return False
        process.send_signal(signal.SIGINT)
        return True


def _first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first line of output, or what it wrote before it ended; '' after ``timeout_s``."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout_s)
    return found[0] if found else ""
