"""Shared fixtures of the step tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth

#: The simulator's tiny preset (11 tilts of 256² at 4 Å/px, ±50°) with a tilt stack and its mdoc, seed 1.
TINY_STACK = SimulateParams(preset="tiny", write_tilt_stack=True, frames_per_tilt=2, seed=1)


@pytest.fixture(scope="session")
def tiny_stack_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeriesTruth]:
    """A session of :data:`TINY_STACK` (movies, tilt stack, mdoc), simulated once for every step test that reads
    it, and its series' truth; tests copy what they change, never the session itself."""
    folder = tmp_path_factory.mktemp("tiny_stack") / "session"
    return folder, simulate_session(folder, TINY_STACK).tilt_series[0]


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
