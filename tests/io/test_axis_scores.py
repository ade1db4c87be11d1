"""The alignment's tilt-axis searches survive a round trip through their STAR file; a damaged file is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.io.axis_scores import AxisScores, read_axis_scores, write_axis_scores
from tomoprep.io.star import read_star, write_star


def _searches() -> list[AxisScores]:
    wide = AxisScores("common_lines", np.arange(-184.0, -3.9, 2.0), np.cos(np.radians(np.arange(-184.0, -3.9, 2.0)
                                                                                         + 94.0)), -93.5)  # fmt: skip
    fine = AxisScores("cross_prediction", np.array([-95.25, -95.0, -94.75, -94.5]),
                      np.array([0.21125, 0.234, 0.2395, 0.2275]), -94.8125)  # fmt: skip
    return [wide, fine]


def test_axis_searches_round_trip_in_the_order_they_ran(tmp_path: Path) -> None:
    path = tmp_path / "TS_01_axis_scores.star"
    write_axis_scores(path, _searches())
    blocks = read_star(path)
    assert blocks["axis_searches"]["tpAxisSearch"].tolist() == ["common_lines", "cross_prediction"]
    back = read_axis_scores(path)
    for got, wrote in zip(back, _searches(), strict=True):
        assert (got.method, got.chosen_deg) == (wrote.method, wrote.chosen_deg)
        np.testing.assert_allclose(got.angles_deg, wrote.angles_deg)
        np.testing.assert_allclose(got.scores, wrote.scores, atol=1e-6)  # written with 6 decimals


def test_a_file_without_its_scores_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "TS_01_axis_scores.star"
    write_axis_scores(path, _searches())
    write_star(path, {"axis_searches": read_star(path)["axis_searches"]})
    with pytest.raises(InputError, match="axis_scores"):
        read_axis_scores(path)
