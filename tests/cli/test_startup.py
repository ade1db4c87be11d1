"""What each command imports before it does anything: the heavy libraries only where they are used.

torch (1-2 s to import) only where a tensor is made, matplotlib only where a picture is drawn, pandas and
starfile only where a table is read or written. Each case runs in a fresh interpreter, as the console script
does, and lists the heavy modules it found loaded (the help of every command runs in one: see ``PROBE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tomoprep.cli.main import PROJECT_COMMANDS
from tomoprep.steps import BUILTIN_STEP_MODULES

HEAVY = ("torch", "matplotlib", "pandas", "starfile", "scipy", "tifffile", "imagecodecs")
#: Runs the console script's entry point with each of ``argvs`` in turn and prints, after each, the heavy modules
#: loaded by then. Modules stay loaded, so one fresh interpreter for commands that must each load none tells which
#: command loaded one first, as an interpreter a command would: the first to load one and every one after it show it.
PROBE = """
import json, sys
heavy = {heavy!r}
from tomoprep.cli.main import main
for argv in {argvs!r}:
    sys.argv = ["tomoprep", *argv]
    try:
        main()
    except SystemExit:
        pass
    print("LOADED " + json.dumps([argv, sorted(m for m in heavy if m in sys.modules)]), flush=True)
"""


def _loaded_after_each(*argvs: list[str], cwd: Path | None = None) -> dict[tuple[str, ...], list[str]]:
    """The heavy modules loaded once each command of ``argvs`` has run, in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, argvs=[list(argv) for argv in argvs])],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120"},
    )
    lines = [
        json.loads(line.removeprefix("LOADED ")) for line in done.stdout.splitlines() if line.startswith("LOADED ")
    ]
    assert len(lines) == len(argvs), done.stdout + done.stderr
    return {tuple(argv): loaded for argv, loaded in lines}


def _loaded(*argv: str, cwd: Path | None = None) -> list[str]:
    return _loaded_after_each(list(argv), cwd=cwd)[argv]


HELP_COMMANDS = [None, *PROJECT_COMMANDS, *BUILTIN_STEP_MODULES]


def _help_argv(command: str | None) -> tuple[str, ...]:
    return ("--help",) if command is None else (command, "--help")


@pytest.fixture(scope="module")
def loaded_by_help() -> dict[tuple[str, ...], list[str]]:
    """The heavy modules loaded after each command's ``--help``, all run in one fresh interpreter."""
    return _loaded_after_each(*(list(_help_argv(command)) for command in HELP_COMMANDS))


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_help_imports_no_heavy_library(command: str | None, loaded_by_help) -> None:
    assert loaded_by_help[_help_argv(command)] == []


def test_status_of_a_new_project_reads_no_table(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "tomoprep.cli", "init", str(tmp_path / "p")], check=True)
    assert _loaded("status", "-p", str(tmp_path / "p")) == []


def test_a_stack_import_needs_no_torch_nor_matplotlib(tmp_path: Path, real_data: Path) -> None:
    subprocess.run([sys.executable, "-m", "tomoprep.cli", "init", str(tmp_path / "p")], check=True)
    stack = str(real_data / "nist-etspy" / "HAADF.mrc")
    loaded = _loaded("import", "-p", str(tmp_path / "p"), "--stack", stack, "--tilt-axis-angle-deg", "90")
    assert "torch" not in loaded and "matplotlib" not in loaded
    assert {"pandas", "starfile"} <= set(loaded)  # it writes the tilt-series tables


@pytest.mark.parametrize("module", ["tomoprep", "tomoprep.cli"])
def test_the_package_runs_as_a_module(module: str) -> None:
    """``python -m tomoprep`` is the command too, for environments where the console script is not on PATH."""
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: tomoprep" in done.stdout
