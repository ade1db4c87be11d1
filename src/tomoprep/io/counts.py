"""Exact counts of groups of movie frames: their types and sums, EER strips decoded into counts, and the ordered
prefetch that the parallel movie decoders of :mod:`tomoprep.io.movies` share."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import imagecodecs
import numpy as np

from tomoprep.conventions import IMAGE_DTYPE

#: Adding more binary frames than this into the uint16 accumulator could overflow it.
UINT16_SAFE_FRAMES = 65535
_Item = TypeVar("_Item")
_Handle = TypeVar("_Handle")


def group_dtype(dtype: np.dtype[Any], n_frames: int) -> np.dtype[Any]:
    """The type of the exact sum of ``n_frames`` frames of ``dtype``: unsigned counts stay integers (widened as
    the sum needs; one frame keeps its own type), anything else float32."""
    if dtype.kind != "u":
        return np.dtype(IMAGE_DTYPE)
    if n_frames == 1:
        return dtype
    top = int(np.iinfo(dtype).max) * n_frames
    return np.dtype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)


def group_sum(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The exact sum of ``(k, y, x)`` frames, of :func:`group_dtype` (into ``out`` when given)."""
    dtype = group_dtype(frames.dtype, frames.shape[0])
    if out is None:
        out = np.empty(frames.shape[1:], dtype=dtype)
    if frames.shape[0] == 1:
        np.copyto(out, frames[0], casting="same_kind")
    else:
        frames.sum(axis=0, dtype=dtype, out=out)
    return out


def decode_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def prefetched(submit: Callable[[_Item], _Handle], items: Iterable[_Item], ahead: int) -> Iterator[_Handle]:
    """``submit(item)`` for each item, in order, each yielded once it is at the head of at most ``ahead + 1``
    submitted: work on the next items goes on while the caller uses this one, and memory stays bounded."""
    pending: deque[_Handle] = deque()
    queue = iter(items)
    for item in queue:
        pending.append(submit(item))
        if len(pending) > ahead:
            break
    while pending:
        head = pending.popleft()
        following = next(queue, None)
        if following is not None:
            pending.append(submit(following))
        yield head


def eer_counts_dtype(n_frames: int) -> type[np.unsignedinteger]:
    """The counts type that ``n_frames`` raw EER frames cannot overflow (uint16 wraps in the decoder itself
    beyond 65535 frames: :func:`decode_eer_strips` widens)."""
    return np.uint8 if n_frames <= np.iinfo(np.uint8).max else np.uint16


def add_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` for counts (``a`` may be reused), widened where the type of ``a`` could overflow."""
    top = int(a.max()) + int(b.max())
    if a.dtype.kind == "u" and (b.dtype.itemsize > a.dtype.itemsize or top > np.iinfo(a.dtype).max):
        a = a.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)
    a += b
    return a


def decode_eer_strips(
    strips: Sequence[bytes], counts: np.ndarray, bits: tuple[int, int, int], upsampling: int
) -> np.ndarray:
    """Counts of the events of ``strips`` (raw frames) added to the zeroed ``counts`` (uint8 for up to 255
    frames, else uint16): that array, or a uint32 one beyond 65535 frames."""
    shape = counts.shape
    total: np.ndarray | None = None
    for n_added, strip in enumerate(strips, start=1):
        # Given a uint8 or uint16 ``out``, imagecodecs adds the frame's events to it in place.
        imagecodecs.eer_decode(strip, shape, *bits, superres=upsampling - 1, out=counts)
        if n_added % UINT16_SAFE_FRAMES == 0:
            total = counts.astype(np.uint32) if total is None else total + counts
            counts[:] = 0
    return counts if total is None else total + counts
