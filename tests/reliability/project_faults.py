"""Helpers of the reliability tests: run a command as a user would, and fingerprint a project's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
