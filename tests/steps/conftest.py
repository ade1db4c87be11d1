"""Shared fixtures of the step tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _known_gap(request: pytest.FixtureRequest) -> None:
    """A test module's ``KNOWN_GAPS`` ``{(test name, case): figure}`` names goals not yet met, with the figures
    measured: those cases are strict expected failures (the tolerance stays the goal, and a case that passes fails,
    so its entry must then go). The case is the parameter of the module's ``aligned`` fixture."""
    gaps = getattr(request.module, "KNOWN_GAPS", None)
    callspec = getattr(request.node, "callspec", None)
    if not gaps or callspec is None:
        return
    reason = gaps.get((request.node.originalname, callspec.params.get("aligned")))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"goal not yet met: {reason}"))
