"""STAR files: absent numbers are written so that RELION reads them as numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tomoprep.io.star import read_star, write_star


def test_absent_numbers_are_written_nan_and_read_back(tmp_path):
    path = tmp_path / "t.star"
    write_star(
        path, {"TS_01": pd.DataFrame({"rlnMicrographPreExposure": [0.0, np.nan], "tpExposureDose": [pd.NA, 3.0]})}
    )
    rows = [line.split() for line in path.read_text().splitlines() if line[:1].isdigit() or line.startswith("nan")]
    assert [row[0] for row in rows] == ["0.000000", "nan"]
    assert rows[0][1] == "nan" and float(rows[1][1]) == 3.0
    table = read_star(path)["TS_01"]
    assert math.isnan(table["rlnMicrographPreExposure"][1]) and math.isnan(float(table["tpExposureDose"][0]))
