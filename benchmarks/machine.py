"""One line naming the machine a benchmark ran on (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine(threads: int, *, packages: str = "") -> str:
    """CPU model, cores, memory, GPU and torch version, ``packages`` (if any) and the thread count."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    extra = f"; {packages}" if packages else ""
    hardware = f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {gpu}"
    return f"{hardware}; torch {torch.__version__}{extra}; {threads} threads"
