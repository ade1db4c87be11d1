"""Fixtures of the web UI's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from small_project import build_processed_project


@pytest.fixture(scope="session")
def processed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny simulated session imported, motion-corrected, cleaned, aligned and CTF-estimated (about a minute,
    once per session: for slow tests only). Tests must not add runs to it."""
    return build_processed_project(tmp_path_factory.mktemp("processed"))
