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
