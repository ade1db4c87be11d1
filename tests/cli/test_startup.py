"""What each command imports before it does anything: the heavy libraries only where they are used.

torch (1-2 s to import) only where a tensor is made, matplotlib only where a picture is drawn, pandas and
starfile only where a table is read or written. Each case runs in a fresh interpreter, as the console script
does, and lists the heavy modules it found loaded.
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
#: Runs the console script's entry point with ``argv`` and prints the heavy modules loaded when it exits.
PROBE = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: print("LOADED " + json.dumps(sorted(m for m in heavy if m in sys.modules))))
sys.argv = ["tomoprep", *{argv!r}]
from tomoprep.cli.main import main
main()
"""


def _loaded(*argv: str, cwd: Path | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, argv=list(argv))],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120"},
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize("command", [None, *PROJECT_COMMANDS, *BUILTIN_STEP_MODULES])
def test_help_imports_no_heavy_library(command: str | None) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    assert _loaded(*argv) == []


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
