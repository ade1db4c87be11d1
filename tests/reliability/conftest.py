"""Small real things to break, each built once and copied for each test: a project (one real tilt stack, MRC
with its mdoc, imported then cleaned through the command line) and a simulated session of movies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from project_faults import tomoprep

from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session


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
    cleaned = tomoprep("clean", "-p", str(project))
    assert cleaned.exit_code == 0, cleaned.output
    return project


@pytest.fixture
def two_runs(tmp_path: Path, two_runs_template: Path) -> Path:
    """A project of its own with ``001_import`` and ``002_clean``, both SUCCEEDED."""
    return Path(shutil.copytree(two_runs_template, tmp_path / "p"))


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated session: 3 tilts of 6-frame 128² MRC movies with their mdoc and gain reference."""
    folder = tmp_path_factory.mktemp("sim") / "session"
    params = {"preset": "tiny", "n_tilts": 3, "movie_format": "mrc", "detector_size_px": 128, "seed": 3}
    simulate_session(folder, SimulateParams.model_validate(params))
    return folder


@pytest.fixture
def session(tmp_path: Path, simulated: Path) -> Path:
    """A copy of :func:`simulated` of the test's own, free to spoil."""
    return Path(shutil.copytree(simulated, tmp_path / "session"))
