"""Every step turns its ``--device`` choice into a torch device by one rule."""

from __future__ import annotations

import pytest
import torch

from tomoprep.errors import InputError
from tomoprep.steps.device import device_for


def test_auto_takes_cuda_when_present_and_cpu_is_always_cpu() -> None:
    assert device_for("cpu") == torch.device("cpu")
    assert device_for("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_cuda_device_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"--device cuda was asked for but no CUDA device is available.*--device auto"):
        device_for("cuda")


def test_an_unknown_choice_is_named() -> None:
    with pytest.raises(InputError, match="--device 'gpu' is no device choice"):
        device_for("gpu")
