"""The alignment's tilt-axis searches, as a STAR file: every angle tried, its score, and the angle each chose.

Two blocks (angles in degrees, counter-clockwise from the image Y axis, ``rlnTomoZRot``'s convention)::

    data_axis_searches    one row per search, in the order they ran
        tpAxisSearch            common_lines or cross_prediction
        tpTiltAxisAngle         the angle the search chose (a parabola's vertex, not always an angle tried)
    data_axis_scores      one row per angle tried, by search, then angle
        tpAxisSearch
        tpTiltAxisAngle
        tpAxisScore             the search's own score (common lines: their agreement; cross-prediction: the mean
                                correlation of each half of the tilts with the reprojection of the other half)

The scores of different searches are on different scales. RELION 5 has no field for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomoprep.errors import InputError
from tomoprep.io.star import read_star, write_star

SEARCHES_BLOCK = "axis_searches"
SCORES_BLOCK = "axis_scores"
METHOD_LABEL = "tpAxisSearch"
ANGLE_LABEL = "tpTiltAxisAngle"
SCORE_LABEL = "tpAxisScore"


@dataclass(frozen=True)
class AxisScores:
    """One tilt-axis search: ``method`` (``common_lines`` or ``cross_prediction``), the ``(m,)`` angles tried
    (degrees, ascending) and their ``(m,)`` scores, and the angle it chose (degrees)."""

    method: str
    angles_deg: np.ndarray
    scores: np.ndarray
    chosen_deg: float


def write_axis_scores(path: Path, searches: Sequence[AxisScores]) -> None:
    """Write ``searches`` (at least one) as the two STAR blocks of the module docstring."""
    chosen = pd.DataFrame({METHOD_LABEL: [s.method for s in searches], ANGLE_LABEL: [s.chosen_deg for s in searches]})
    scores = pd.DataFrame(
        {
            METHOD_LABEL: [s.method for s in searches for _ in s.angles_deg],
            ANGLE_LABEL: np.concatenate([np.asarray(s.angles_deg, dtype=float) for s in searches]),
            SCORE_LABEL: np.concatenate([np.asarray(s.scores, dtype=float) for s in searches]),
        }
    )
    write_star(path, {SEARCHES_BLOCK: chosen, SCORES_BLOCK: scores})


def read_axis_scores(path: Path) -> list[AxisScores]:
    """Read a file written by :func:`write_axis_scores`, searches in the order they ran.

    Raises
    ------
    InputError
        If a block or column is missing, or a search has no scores.
    """
    blocks = read_star(path)
    for block, labels in ((SEARCHES_BLOCK, (METHOD_LABEL, ANGLE_LABEL)),
                          (SCORES_BLOCK, (METHOD_LABEL, ANGLE_LABEL, SCORE_LABEL))):  # fmt: skip
        missing = [label for label in labels if block not in blocks or label not in blocks[block].columns]
        if missing:
            raise InputError(path, f"lacks data_{block} or its columns {', '.join(missing)}.",
                             "give the axis scores written by tomoprep align, or re-run it.")  # fmt: skip
    table = blocks[SCORES_BLOCK]
    methods = table[METHOD_LABEL].astype(str)
    searches = []
    for method, chosen in zip(blocks[SEARCHES_BLOCK][METHOD_LABEL].astype(str),
                              blocks[SEARCHES_BLOCK][ANGLE_LABEL].astype(float), strict=True):  # fmt: skip
        rows = table[methods == method].sort_values(ANGLE_LABEL, kind="stable")
        if rows.empty:
            raise InputError(path, f"has no scores for the {method} search.", "re-run tomoprep align.")
        searches.append(AxisScores(method, rows[ANGLE_LABEL].to_numpy(float), rows[SCORE_LABEL].to_numpy(float),
                                   float(chosen)))  # fmt: skip
    return searches
