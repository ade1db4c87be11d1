"""Helpers of the reliability tests: run a command as a user would, and fingerprint a project's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mrcfile
import numpy as np
from typer.testing import CliRunner

from tomoprep.cli.main import build_app


def tomoprep(*args: str):
    """Run one ``tomoprep`` command in this process, as a user would type it."""
    return CliRunner().invoke(build_app(args[0]), list(args), catch_exceptions=False)


def snapshot(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (names in ``skip`` left out)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def run_folders(project: Path) -> dict[str, str]:
    """What the run folders hold (the index left out)."""
    return snapshot(project / "runs")


def flat(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())


def plain_stacks(folder: Path) -> Path:
    """Two MRC stacks without tilt angles; only TS_A has a .rawtlt, so TS_B cannot be imported."""
    folder.mkdir()
    for name in ("TS_A", "TS_B"):
        with mrcfile.new(folder / f"{name}.mrc") as mrc:
            mrc.set_data(np.zeros((2, 16, 16), dtype=np.float32))
            mrc.voxel_size = 2.5
    (folder / "TS_A.rawtlt").write_text("-3\n3\n")
    return folder


def import_plain_stacks(tmp_path: Path, pattern: str):
    """A new project ``tmp_path/p`` and the import of the :func:`plain_stacks` matching ``pattern`` (axis 85°,
    3 e/Å² per tilt): ``(project folder, the import's CLI result)``."""
    stacks = plain_stacks(tmp_path / "stacks")
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    result = tomoprep("import", "-p", str(project), "--stack", str(stacks / pattern), "--tilt-axis-angle-deg", "85",
                      "--dose-per-tilt-e-per-angstrom2", "3")  # fmt: skip
    return project, result
