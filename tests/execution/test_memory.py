"""Large arrays kept on the heap while a unit runs, and given back when it ends."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tomoprep.execution import memory
from tomoprep.execution.runner import run_unit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings are Linux-only")
def test_heap_settings_take_effect_on_glibc() -> None:
    if memory._glibc() is None:
        pytest.skip("not a glibc system")
    assert memory.heap_for_large_arrays() is True
    blocks = [np.ones(20_000_000, dtype=np.float32) for _ in range(3)]  # 80 MB each: above glibc's own threshold
    assert all(float(b.sum()) == 20_000_000 for b in blocks)
    del blocks
    memory.release_free_memory()


def test_run_unit_runs_the_step_function_and_passes_errors_on(tmp_path: Path) -> None:
    def unit(payload: object, params: object, out_dir: Path) -> tuple[object, object, Path]:
        return payload, params, out_dir

    assert run_unit(unit, "TS_01", {"a": 1}, tmp_path) == ("TS_01", {"a": 1}, tmp_path)

    def failing(payload: object, params: object, out_dir: Path) -> None:
        raise ValueError("bad tilt")

    with pytest.raises(ValueError, match="bad tilt"):
        run_unit(failing, None, None, tmp_path)
