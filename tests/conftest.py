"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REAL_DATA = TESTS / "data" / "real"
#: Real files that are not redistributed with tomoprep (GPL-licensed); tests on them skip when absent.
SHARED_REAL_DATA = TESTS.parent.parent / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    """Folder of real instrument/program files shipped with the tests (see its SOURCES.md)."""
    return REAL_DATA


@pytest.fixture
def shared_real_data() -> Path:
    """Folder of further real files beside the checkout; the test is skipped when it is absent."""
    if not SHARED_REAL_DATA.is_dir():
        pytest.skip(f"{SHARED_REAL_DATA} is not present")
    return SHARED_REAL_DATA


@pytest.fixture
def install_plugin_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A function that installs steps as a plugin distribution: ``install({"name": "module:ATTR"}, modules)``
    writes ``modules`` (``{file name: source}``) and a ``.dist-info`` with those ``tomoprep.steps`` entry points
    into a folder put first on ``sys.path``, where :mod:`importlib.metadata` finds them as it finds pip-installed
    plugins. Returns the folder."""

    def install(entries: dict[str, str], modules: dict[str, str] | None = None) -> Path:
        folder = tmp_path / "plugin_site"
        folder.mkdir(exist_ok=True)
        for name, source in (modules or {}).items():
            (folder / name).write_text(source)
        info = folder / "tomoprep_test_steps-0.1.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tomoprep-test-steps\nVersion: 0.1\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
        (info / "entry_points.txt").write_text(f"[tomoprep.steps]\n{lines}")
        monkeypatch.syspath_prepend(str(folder))
        return folder

    return install
