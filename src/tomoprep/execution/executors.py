"""Executors that run units of work: in this process, in a local process pool, or (later) on Dask.

All are standard :class:`concurrent.futures.Executor` objects, so a Dask ``Client.get_executor()`` fits too.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process; errors are kept in the returned future."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # a unit's failure, KeyboardInterrupt aside, belongs to its future
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


def local_executor(jobs: int) -> Executor:
    """A serial executor for ``jobs <= 1``, else a pool of ``jobs`` worker processes.

    Workers start through a fork server, not by forking this process, because forking a process that
    has started torch's thread pools can deadlock.
    """
    if jobs <= 1:
        return SerialExecutor()
    context: Any = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context)
