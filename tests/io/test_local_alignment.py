"""The local-alignment STAR file: written and read back, bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.io.local_alignment import LocalAlignment, read_local_alignment, write_local_alignment
from tomoprep.io.star import read_star, write_star


def _local(n: int = 5, p: int = 4) -> LocalAlignment:
    rng = np.random.default_rng(0)
    return LocalAlignment(
        acquisition_indices=np.array([3, 1, 0, 2, 4])[:n],
        tilts_deg=np.linspace(-40, 40, n),
        patches_angstrom=rng.normal(scale=1000, size=(p, 3)),
        shifts_angstrom=rng.normal(scale=5, size=(n, p, 2)),
        scores=rng.uniform(size=(n, p)),
        measured=rng.uniform(size=(n, p)) > 0.2,
    )


def test_round_trip_keeps_tilt_order_and_values(tmp_path: Path) -> None:
    local = _local()
    write_local_alignment(tmp_path / "TS_01_local.star", local)
    back = read_local_alignment(tmp_path / "TS_01_local.star")
    np.testing.assert_array_equal(back.acquisition_indices, local.acquisition_indices)
    np.testing.assert_allclose(back.tilts_deg, local.tilts_deg, atol=1e-5)
    np.testing.assert_allclose(back.patches_angstrom, local.patches_angstrom, atol=1e-5)
    np.testing.assert_allclose(back.shifts_angstrom, local.shifts_angstrom, atol=1e-5)
    np.testing.assert_allclose(back.scores, local.scores, atol=1e-5)
    np.testing.assert_array_equal(back.measured, local.measured)
    assert len(read_star(tmp_path / "TS_01_local.star")["local_alignment"]) == 20


def test_rows_shuffled_in_the_file_are_put_back_in_place(tmp_path: Path) -> None:
    local = _local()
    write_local_alignment(tmp_path / "a.star", local)
    table = read_star(tmp_path / "a.star")["local_alignment"]
    write_star(tmp_path / "b.star", {"local_alignment": table.iloc[::-1].reset_index(drop=True)})
    back = read_local_alignment(tmp_path / "b.star")
    order = [list(local.acquisition_indices).index(i) for i in back.acquisition_indices]
    np.testing.assert_allclose(back.shifts_angstrom, local.shifts_angstrom[order], atol=1e-5)


def test_missing_rows_and_blocks_are_named(tmp_path: Path) -> None:
    write_local_alignment(tmp_path / "a.star", _local())
    table = read_star(tmp_path / "a.star")["local_alignment"]
    write_star(tmp_path / "short.star", {"local_alignment": table.iloc[:-1]})
    with pytest.raises(InputError, match=r"short\.star.*19 rows, not 4 patches for each of 5 tilts"):
        read_local_alignment(tmp_path / "short.star")
    write_star(tmp_path / "other.star", {"global": table})
    with pytest.raises(InputError, match="no data_local_alignment"):
        read_local_alignment(tmp_path / "other.star")
    write_star(tmp_path / "cols.star", {"local_alignment": table.drop(columns=["tpPatchScore"])})
    with pytest.raises(InputError, match="tpPatchScore"):
        read_local_alignment(tmp_path / "cols.star")
