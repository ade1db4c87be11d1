"""A small real project to break: one real tilt stack (MRC with its mdoc) imported, then motion corrected,
through the command line. It is built once and copied for each test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from project_faults import tomoprep


@pytest.fixture(autouse=True)
def crash_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash logs of each test go to a folder of its own, not to the user's cache."""
    folder = tmp_path / "crash-logs"
    monkeypatch.setenv("TOMOPREP_LOG_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def stack_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a real two-tilt MRC stack and its mdoc (see tests/data/real/SOURCES.md)."""
    real = Path(__file__).parents[1] / "data" / "real" / "nist-etspy"
    folder = tmp_path_factory.mktemp("stacks")
    for name in ("test_000.mrc", "test_000.mrc.mdoc"):
        shutil.copy(real / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def two_runs_template(tmp_path_factory: pytest.TempPathFactory, stack_files: Path) -> Path:
    project = tmp_path_factory.mktemp("template") / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    stack = str(stack_files / "test_000.mrc")
    imported = tomoprep("import", "-p", str(project), "--stack", stack, "--dose-per-tilt-e-per-angstrom2", "2")
    assert imported.exit_code == 0, imported.output
    corrected = tomoprep("motioncorr", "-p", str(project))
    assert corrected.exit_code == 0, corrected.output
    return project


@pytest.fixture
def two_runs(tmp_path: Path, two_runs_template: Path) -> Path:
    """A project of its own with ``001_import`` and ``002_motioncorr``, both SUCCEEDED."""
    return Path(shutil.copytree(two_runs_template, tmp_path / "p"))
