"""Movie files, written fraction by fraction: EER (streamed raw frame by raw frame), TIFF and MRC.

TIFF movies are LZW-compressed uint8 (uint16 when counts could exceed 255), written with rows reversed so that
:func:`tomoprep.io.movies.read_movie` (which reverses TIFF rows, as RELION and IMOD do) returns them in MRC row
order. MRC movies are int8 (uint16 when counts could exceed 127). EER movies are streamed raw frame by raw frame
(:class:`EerWriter`), so a 4K movie of hundreds of frames never sits in memory; a fraction's counts are spread
over its raw frames with at most one event per pixel and frame (:func:`spread_over_raw_frames`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import mrcfile
import numpy as np
import tifffile

from tomoprep.simulate.eer import EerCompression, eer_metadata_xml, encode_eer_frame

MovieFormat = Literal["eer", "tiff", "mrc"]

_SUFFIXES = {"eer": ".eer", "tiff": ".tif", "mrc": ".mrc"}


class FrameSink(Protocol):
    """Receives a movie fraction by fraction."""

    def add_fraction(self, counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Store one fraction of ``(y, x)`` integer counts recorded over ``n_frames`` frames.

        Returns the counts as stored (clipped where the file type or EER's one event per frame needs it).
        """

    def close(self) -> None:
        """Finish the file."""


def movie_suffix(movie_format: MovieFormat) -> str:
    """File suffix of a movie format (``.eer``, ``.tif``, ``.mrc``)."""
    return _SUFFIXES[movie_format]


def open_movie(
    path: Path,
    *,
    movie_format: MovieFormat,
    shape_yx: tuple[int, int],
    n_frames: int,
    max_counts_per_frame: float,
    pixel_spacing_angstrom: float,
    eer_metadata: Mapping[str, str] | None = None,
) -> FrameSink:
    """A writer for one movie; ``max_counts_per_frame`` decides the integer type of TIFF and MRC frames."""
    if movie_format == "eer":
        return EerWriter(path, shape_yx=shape_yx, n_frames=n_frames, metadata=eer_metadata or {})
    if movie_format == "tiff":
        return _TiffWriter(path, dtype=np.uint8 if max_counts_per_frame <= 255 else np.uint16)
    dtype = np.int8 if max_counts_per_frame <= 127 else np.uint16
    return _MrcWriter(path, (n_frames, *shape_yx), dtype, pixel_spacing_angstrom)


class _TiffWriter:
    def __init__(self, path: Path, *, dtype: type[np.integer]) -> None:
        self._writer = tifffile.TiffWriter(path, bigtiff=False)
        self._dtype = dtype

    def add_fraction(self, counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        frame = np.minimum(counts, np.iinfo(self._dtype).max).astype(self._dtype)
        # Rows reversed: TIFF readers (RELION, IMOD, tomoprep) flip them back into MRC row order.
        self._writer.write(frame[::-1], compression="lzw", photometric="minisblack", contiguous=False)
        return frame

    def close(self) -> None:
        self._writer.close()


class _MrcWriter:
    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: type[np.integer], spacing: float) -> None:
        mode = 0 if dtype is np.int8 else 6
        self._mrc = mrcfile.new_mmap(path, shape=shape, mrc_mode=mode, overwrite=True)
        self._mrc.voxel_size = spacing
        self._dtype = dtype
        self._index = 0

    def add_fraction(self, counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        frame = np.minimum(counts, np.iinfo(self._dtype).max).astype(self._dtype)
        self._mrc.data[self._index] = frame
        self._index += 1
        return frame

    def close(self) -> None:
        self._mrc.update_header_stats()
        self._mrc.close()


def spread_over_raw_frames(counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Spread a fraction's counts over ``n_frames`` raw EER frames, at most one event per pixel and frame.

    Each pixel's events land in a uniformly random set of distinct frames (selection sampling: in frame ``k`` a
    pixel with ``r`` events left fires with probability ``r / (n_frames - k)``).

    Parameters
    ----------
    counts
        ``(y, x)`` non-negative integer counts, at most ``n_frames`` per pixel.

    Yields
    ------
    numpy.ndarray
        ``n_frames`` boolean ``(y, x)`` frames whose sum is ``counts``.
    """
    flat = counts.ravel()
    pixels = np.flatnonzero(flat)
    remaining = flat[pixels].astype(np.int32)
    for k in range(n_frames):
        fire = rng.random(pixels.size) * (n_frames - k) < remaining
        frame = np.zeros(flat.size, dtype=bool)
        frame[pixels[fire]] = True
        remaining -= fire
        keep = remaining > 0
        pixels, remaining = pixels[keep], remaining[keep]
        yield frame.reshape(counts.shape)


class EerWriter:
    """Stream raw frames into an EER file (the BigTIFF layout of :mod:`tomoprep.simulate.eer`).

    Parameters
    ----------
    path
        Destination (overwritten).
    shape_yx
        Sensor shape.
    n_frames
        Raw frames that will be written (``numberOfFrames`` of the acquisition XML).
    metadata
        Further acquisition XML items (``sensorPixelSize.width`` in m, ``exposureTime`` in s, ...).
    compression
        65001 (7-bit run lengths, current Falcon cameras) or 65000.
    """

    def __init__(
        self,
        path: Path,
        *,
        shape_yx: tuple[int, int],
        n_frames: int,
        metadata: Mapping[str, str],
        compression: EerCompression = 65001,
    ) -> None:
        self._shape = shape_yx
        self._compression = compression
        items = {"numberOfFrames": str(n_frames), "sensorImageWidth": str(shape_yx[1])}
        items |= {"sensorImageHeight": str(shape_yx[0]), **metadata}
        self._xml: bytes | None = eer_metadata_xml(items)
        # Kept open between calls: the movie is written frame by frame (close() ends it).
        self._stream: BinaryIO = Path(path).open("wb")  # noqa: SIM115
        self._stream.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))  # BigTIFF header, IFD offset patched
        self._pointer_at = 8

    def add_fraction(self, counts: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Spread one fraction over ``n_frames`` raw frames (at most one event per pixel each) and write them."""
        stored = np.minimum(counts, n_frames)
        for frame in spread_over_raw_frames(stored, n_frames, rng):
            self.write_frame(frame)
        return stored

    def write_frame(self, frame: np.ndarray) -> None:
        """Append one raw ``(y, x)`` frame of 0/1 events: its strip, then its directory (IFD)."""
        strip = encode_eer_frame(frame, compression=self._compression)
        stream = self._stream
        strip_offset = stream.tell()
        stream.write(strip)
        xml, self._xml = self._xml, None  # the acquisition XML belongs to the first frame only
        ifd_offset = stream.tell()
        body, next_pointer_at = self._ifd(ifd_offset, strip_offset, len(strip), xml)
        stream.write(body)
        end = stream.tell()
        stream.seek(self._pointer_at)  # link the previous directory (or the header) to this one
        stream.write(struct.pack("<Q", ifd_offset))
        stream.seek(end)
        self._pointer_at = next_pointer_at

    def _ifd(self, ifd_offset: int, strip_offset: int, strip_bytes: int, xml: bytes | None) -> tuple[bytes, int]:
        """A BigTIFF directory at ``ifd_offset`` and where its next-directory pointer lies."""
        ny, nx = self._shape
        short, long, long8 = 3, 4, 16
        entries = [
            (256, long, nx), (257, long, ny), (258, short, 1), (259, short, self._compression), (262, short, 1),
            (273, long8, strip_offset), (277, short, 1), (278, long, ny), (279, long8, strip_bytes), (284, short, 1),
        ]  # fmt: skip
        n_entries = len(entries) + (xml is not None)
        body = bytearray(struct.pack("<Q", n_entries))
        for tag, kind, value in entries:
            field = struct.pack({short: "<H", long: "<I", long8: "<Q"}[kind], value)
            body += struct.pack("<HHQ", tag, kind, 1) + field.ljust(8, b"\0")
        if xml is not None:  # tag 65001 (UNDEFINED): its value lies right after the directory
            body += struct.pack("<HHQQ", 65001, 7, len(xml), ifd_offset + 8 + 20 * n_entries + 8)
        next_pointer_at = ifd_offset + len(body)
        body += struct.pack("<Q", 0)
        if xml is not None:
            body += xml + b"\0" * (len(xml) % 2)
        return bytes(body), next_pointer_at

    def close(self) -> None:
        """Close the file."""
        self._stream.close()
