"""Writing a movie's sums: MRC files written on a background thread, and thumbnails for the series' picture."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from tomoprep.algorithms.thumbnail import thumbnail
from tomoprep.io.mrc import write_mrc

#: File-name suffix of each kind of sum (RELION's and Warp's names for the odd/even halves).
SUFFIXES = {"sum": "", "odd": "_ODD", "even": "_EVN", "dose_weighted": "_DW"}
#: Longer side of the thumbnails of the series' picture.
THUMBNAIL_PX = 160


class SumWriter:
    """Writes the sums of each movie on a background thread while the next movie is decoded and aligned.

    A 4K float32 sum is 64 MB (four of them with odd/even and dose-weighted sums): 0.1-0.2 s of writing per
    movie that no longer holds up the processing. At most one movie's sums wait to be written; leaving the
    ``with`` block waits for the last and raises any error of the writes. The thumbnail of each plain sum is
    kept (``thumbnails``), so the series' picture needs not read the files back.
    """

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tomoprep-sums")
        self.pending: Future[None] | None = None
        self.thumbnails: dict[int, np.ndarray] = {}

    def write(
        self, key: int, images: dict[str, np.ndarray], output_dir: Path, stem: str, spacing: float
    ) -> dict[str, Path]:
        """Start writing ``images`` (by kind: ``sum``, ``odd``, ...) as ``<stem><suffix>.mrc``; returns the paths
        they will have."""
        self.wait()
        paths = {name: output_dir / f"{stem}{SUFFIXES[name]}.mrc" for name in images}
        self.pending = self.pool.submit(self._write, key, images, paths, spacing)
        return paths

    def _write(self, key: int, images: dict[str, np.ndarray], paths: dict[str, Path], spacing: float) -> None:
        for name, image in images.items():
            write_mrc(paths[name], image, pixel_spacing_angstrom=spacing, overwrite=True)
        if "sum" in images:
            self.thumbnails[key] = thumbnail(images["sum"], size_px=THUMBNAIL_PX)

    def wait(self) -> None:
        """Block until the sums submitted so far are written (raising their error, if any)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> SumWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown()
