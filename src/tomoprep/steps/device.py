"""Where a step computes: the torch device of a ``--device`` choice, one rule for every step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tomoprep.errors import InputError

if TYPE_CHECKING:
    import torch


def device_for(choice: str) -> torch.device:
    """The torch device for ``--device`` ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``.

    Raises
    ------
    InputError
        ``cuda`` was asked for and no CUDA device is available.
    """
    import torch

    if choice not in ("auto", "cpu", "cuda"):
        raise InputError(None, f"--device {choice!r} is no device choice.", "use --device auto, cpu or cuda.")
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda was asked for but no CUDA device is available.", "use --device auto.")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")
