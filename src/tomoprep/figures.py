"""One figure drawn at a time in a process: matplotlib is not thread-safe.

Its text layout (the mathtext parser's shared state) fails with a bare ``ValueError`` when two threads draw at
once, as the chains of ``tomoprep watch --parallel`` do. Every function that draws and saves a figure is wrapped
in :func:`one_at_a_time`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_DRAWING = threading.RLock()


def one_at_a_time(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """``draw`` holding the process's figure lock (other threads' figures wait; other processes are not held)."""

    @functools.wraps(draw)
    def drawn(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _DRAWING:
            return draw(*args, **kwargs)

    return drawn
