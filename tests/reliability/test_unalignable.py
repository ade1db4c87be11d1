"""A series that cannot be aligned (too few tilts, none tilted) is refused by align with what is needed."""

from __future__ import annotations

from pathlib import Path

from project_faults import flat, run_folders, tomoprep


def test_align_says_what_a_series_of_two_untilted_images_lacks(two_runs: Path, stack_files: Path) -> None:
    """The real stack has two images, both at -0.000488°."""
    before = run_folders(two_runs)
    result = tomoprep("align", "-p", str(two_runs))
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text
    stack = stack_files / "test_000.mrc"
    assert f"{stack}: tilt series test_000 has 2 tilts to align, at [-0.000488, -0.000488]°" in text
    assert "alignment needs at least 3, some of them at |tilt| ≥ 15°" in text
    assert "Fix: import the whole tilt series with its tilt angles" in text
    assert "no tilt has" not in text
    after = run_folders(two_runs)
    assert {k: v for k, v in after.items() if not k.startswith("003_")} == before
