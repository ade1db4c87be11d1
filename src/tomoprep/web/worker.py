"""The process the web UI starts to run (or resume) a step, so that a run can be stopped without stopping the
server: ``python -m tomoprep.web.worker ROOT run STEP PARAMS_JSON [INPUT]`` or ``... ROOT resume RUN``.

Its first line of output is ``RUN <label>`` as soon as the run is recorded; SIGINT stops it as Ctrl-C stops a
command (the run is recorded FAILED and can be resumed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tomoprep.cli.execution import project_executor
from tomoprep.errors import TomoprepError
from tomoprep.execution import resume_run, run_step
from tomoprep.project import RunRecord, open_project
from tomoprep.steps import get_step


def _announce(run: RunRecord) -> None:
    print(f"RUN {run.label}", flush=True)


def main(argv: list[str]) -> int:
    """Run or resume as ``argv`` says, where the project's settings say units run (``tomoprep config``); the exit
    status is 0 when the run succeeded, 1 otherwise."""
    root, action, *rest = argv
    with open_project(Path(root)) as project, project_executor(project, {}) as (executor, note):
        if action == "run":
            step_name, params_file, *input_run = rest
            params = json.loads(Path(params_file).read_text())
            run = run_step(project, get_step(step_name), params, input_run=input_run[0] if input_run else None,
                           executor=executor, on_created=_announce, execution_note=note)  # fmt: skip
        else:
            _announce(project.get_run(rest[0]))
            run = resume_run(project, rest[0], executor=executor, execution_note=note)
    return 0 if run.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TomoprepError as exc:  # a step's own clear error, before the run was recorded: the launcher shows it
        print(f"error: {exc}", flush=True)
        sys.exit(2)
