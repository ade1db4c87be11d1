"""Read raw tilt movies: TIFF, MRC/MRCS frame stacks and EER.

Every reader returns float32 ``(n_frames, y, x)`` in MRC row order (row 0 is the first row of an MRC file,
shown at the bottom by IMOD's 3dmod and at the top by relion_display):

- MRC/MRCS: the frames as stored.
- TIFF: the stored rows reversed (``np.flipud`` of tifffile's array). IMOD, EMAN2, SerialEM, MotionCor2 and
  RELION flip the Y axis whenever they read or write a TIFF (RELION ``rwTIFF.h``), so this matches an MRC gain
  reference, a SerialEM tilt-axis angle and RELION's motion-corrected output for the same movie.
- EER: the frames as decoded (row 0 = first row of the EER raster), as RELION's EER renderer does.

EER movies (Thermo Fisher Falcon; format notes in :mod:`tomoprep.simulate.eer`) hold hundreds of binary
frames. :func:`read_movie` decodes one raw frame at a time with imagecodecs' ``eer_decode`` (tifffile locates
the strips) and adds it into its group (:func:`.eer_groups.eer_group_ranges`), so raw frames are never all in
memory.
Raw frames that do not fill a last group are added to the last group, not dropped (RELION and eerfile drop
them): the last group holds up to ``2 * eer_group_frames - 1`` frames, so take per-group doses from
:func:`.eer_groups.eer_group_ranges`. ``eer_upsampling=2`` places each event in one of the 2x2 half-pixels of
its sensor pixel from its sub-pixel bits (8192² for a 4096² sensor); binning 2x2 gives the 1x rendering exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Literal
from xml.etree import ElementTree

import numpy as np
import tifffile

from tomoprep.conventions import IMAGE_DTYPE
from tomoprep.errors import ImageFileError, InputError
from tomoprep.io.counts import (
    add_counts,
    decode_eer_strips,
    decode_workers,
    eer_counts_dtype,
    group_dtype,
    group_sum,
    prefetched,
)
from tomoprep.io.eer_groups import eer_group_ranges
from tomoprep.io.mrc import check_mrc_complete, read_mrc, read_mrc_header

MovieFormat = Literal["tiff", "mrc", "eer"]
EerUpsampling = Literal[1, 2]

_SUFFIXES: dict[str, MovieFormat] = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".eer": "eer",
}
_EER_COMPRESSIONS = (65000, 65001, 65002)
_RECOPY = "re-copy the movie from its source (the copy is incomplete)."


@dataclass(frozen=True)
class MovieHeader:
    """What a movie's header says, read without decoding the frames.

    Attributes
    ----------
    path
        The file.
    format
        ``"tiff"``, ``"mrc"`` or ``"eer"``.
    n_frames
        Frames stored; for EER the raw detector frames (before grouping).
    shape_yx
        Frame shape in pixels; for EER at upsampling 1 (sensor pixels, e.g. 4096 x 4096).
    dtype
        numpy name of the stored pixel type (``"bool"`` for EER events).
    pixel_spacing_angstrom
        Pixel spacing in Å where the header has one (MRC voxel size; EER ``sensorPixelSize.width`` in m),
        else ``None`` (TIFF movies carry none).
    eer_metadata
        EER acquisition XML items (tag 65001) as strings, with ``"<name>.unit"`` keys for units; else empty.
    """

    path: Path
    format: MovieFormat
    n_frames: int
    shape_yx: tuple[int, int]
    dtype: str
    pixel_spacing_angstrom: float | None
    eer_metadata: Mapping[str, str] = field(default_factory=dict)


def movie_format(path: Path) -> MovieFormat:
    """The movie format from the file suffix (``.tif``/``.tiff``, ``.mrc``/``.mrcs``, ``.eer``, any case).

    Raises
    ------
    ImageFileError
        For any other suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES:
        fix = "give a .tif/.tiff, .mrc/.mrcs or .eer movie (convert DM4 with IMOD dm2mrc)."
        raise ImageFileError(path, f"has suffix {path.suffix!r}, which is not a movie format tomoprep reads.", fix)
    return _SUFFIXES[path.suffix.lower()]


def read_movie_header(path: Path) -> MovieHeader:
    """Read a movie's header and check that the file is complete, without decoding pixels.

    Raises
    ------
    ImageFileError
        If the file is missing, unreadable, or truncated: shorter than its header implies, a frame's strip
        cut, the directory chain cut, or (EER) fewer frames than the metadata's ``numberOfFrames``.
    """
    path = Path(path)
    fmt = movie_format(path)
    if not path.is_file():
        raise ImageFileError(path, "does not exist.", "check the movie path.")
    if fmt == "mrc":
        return _mrc_header(path)
    with _open_tiff(path) as tif:
        return _eer_header(path, tif) if fmt == "eer" else _tiff_header(path, tif)


def read_movie(
    path: Path,
    *,
    eer_group_frames: int | None = None,
    eer_upsampling: EerUpsampling = 1,
    frames: slice | None = None,
) -> np.ndarray:
    """Read a movie's frames as float32.

    Parameters
    ----------
    path
        ``.tif``/``.tiff``, ``.mrc``/``.mrcs`` or ``.eer`` movie.
    eer_group_frames
        EER only, and required there: raw EER frames summed into each returned frame
        (see :func:`tomoprep.io.eer_groups.eer_frames_per_group`); remainder frames join the last group.
    eer_upsampling
        EER only: 1 renders sensor pixels (4096²), 2 half-pixels (8192²).
    frames
        Which returned frames to read (for EER: which groups). ``read_movie(p, frames=s)`` equals
        ``read_movie(p)[s]`` but reads and decodes only the selection.

    Returns
    -------
    numpy.ndarray
        ``(n, y, x)`` float32 in MRC row order (module notes); EER values are electron counts.

    Raises
    ------
    ImageFileError
        If the file is unreadable or truncated.
    InputError
        If the EER options are missing or out of range, or given for a TIFF/MRC movie.
    """
    header = read_movie_header(path)
    group_frames = _checked_options(header, eer_group_frames, eer_upsampling)
    selection = frames if frames is not None else slice(None)
    if header.format == "eer":
        ranges = eer_group_ranges(header.n_frames, group_frames)
        chosen = [ranges[i] for i in range(len(ranges))[selection]]
        return _read_eer(header, chosen, upsampling=eer_upsampling)
    indices = list(range(header.n_frames)[selection])
    return _read_mrc(header, indices) if header.format == "mrc" else _read_tiff(header, indices)


def _checked_options(header: MovieHeader, group_frames: int | None, upsampling: int) -> int:
    """Validate the EER options against the format; return the group size (0 for TIFF/MRC)."""
    if header.format != "eer":
        if group_frames is not None or upsampling != 1:
            problem = "eer_group_frames and eer_upsampling apply only to EER movies."
            raise InputError(header.path, problem, "leave them unset for TIFF and MRC movies.")
        return 0
    if group_frames is None:
        problem = f"is an EER movie of {header.n_frames} raw frames and needs eer_group_frames."
        raise InputError(header.path, problem, "compute it with eer_frames_per_group() from the dose per tilt.")
    if upsampling not in (1, 2):
        raise InputError(header.path, f"eer_upsampling = {upsampling!r} is not 1 or 2.", "use 1 or 2.")
    return group_frames


# --- TIFF and EER -------------------------------------------------------------------------------------


@contextmanager
def _open_tiff(path: Path) -> Iterator[tifffile.TiffFile]:
    """Open with tifffile; its parse and decode errors, often from a cut file, become ImageFileError."""
    try:
        with tifffile.TiffFile(path) as tif:
            yield tif
    # TiffFileError is a ValueError; IndexError: no page at all; RuntimeError: imagecodecs decode errors.
    except (ValueError, RuntimeError, IndexError, struct.error, OSError) as exc:
        problem = f"cannot be read as TIFF ({exc}); the file is {path.stat().st_size} bytes."
        raise ImageFileError(path, problem, _RECOPY) from exc


def _tiff_pages(tif: tifffile.TiffFile, start: int = 0) -> list[Any]:
    """Pages from ``start`` on as TiffFrames, which parse only what locating the data needs (fast)."""
    tif.pages.useframes = True
    tif.pages.set_keyframe(start)
    return [tif.pages[i] for i in range(start, len(tif.pages))]


def _check_tiff_complete(path: Path, tif: tifffile.TiffFile, pages: Sequence[Any]) -> None:
    """Raise if a strip lies beyond the end of the file or the directory chain is cut."""
    size = path.stat().st_size
    if not pages:
        raise ImageFileError(path, f"holds no readable frame (the file is {size} bytes).", _RECOPY)
    for index, page in enumerate(pages):
        end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True))
        if end > size:
            problem = f"is truncated: the file is {size} bytes, its header implies {end} (frame {index})."
            raise ImageFileError(path, problem, _RECOPY)
    # tifffile stops quietly at a next-directory offset beyond the end; a complete chain ends with 0.
    fmt, stream = tif.tiff, tif.filehandle
    stream.seek(pages[-1].offset)
    n_tags = struct.unpack(fmt.tagnoformat, stream.read(fmt.tagnosize))[0]
    stream.seek(pages[-1].offset + fmt.tagnosize + n_tags * fmt.tagsize)
    raw = stream.read(fmt.offsetsize)
    following = struct.unpack(fmt.offsetformat, raw)[0] if len(raw) == fmt.offsetsize else size + 1
    if following:
        problem = (
            f"is truncated: the file is {size} bytes, its header implies more (frame {len(pages) - 1} links "
            f"to a next frame at byte {following}, which is missing or cut)."
        )
        raise ImageFileError(path, problem, _RECOPY)


def _tiff_header(path: Path, tif: tifffile.TiffFile) -> MovieHeader:
    first = tif.pages.first
    if first.compression in _EER_COMPRESSIONS:
        raise ImageFileError(path, "is an EER movie with a TIFF suffix.", "rename it to .eer.")
    if len(first.shape) != 2 or first.dtype is None:
        problem = f"has frames of shape {first.shape}, not grey-level images."
        raise ImageFileError(path, problem, "give a movie of single-channel frames.")
    pages = _tiff_pages(tif)
    _check_tiff_complete(path, tif, pages)
    return MovieHeader(path, "tiff", len(pages), _yx(first.shape), first.dtype.name, None, {})


def _read_tiff(header: MovieHeader, indices: Sequence[int]) -> np.ndarray:
    out = np.empty((len(indices), *header.shape_yx), dtype=IMAGE_DTYPE)
    with _open_tiff(header.path) as tif:
        for k, index in enumerate(indices):
            out[k] = tif.pages[index].asarray()[::-1]  # TIFF rows to MRC row order (module notes)
    return out


def _eer_pages(path: Path, tif: tifffile.TiffFile) -> tuple[Any, list[Any]]:
    """The first EER frame page (fully parsed) and all EER frame pages."""
    # TIA can write an uncompressed integrated image before the frames (EPU does not): skip it.
    start = 1 if tif.pages.first.compression == 1 and len(tif.pages) > 1 else 0
    keyframe = tif.pages[start]
    if not tif.is_bigtiff or keyframe.compression not in _EER_COMPRESSIONS:
        problem = f"is not an EER movie (BigTIFF: {tif.is_bigtiff}, compression {keyframe.compression})."
        raise ImageFileError(path, problem, "check the file; give a TIFF movie a .tif name.")
    return keyframe, _tiff_pages(tif, start)


def _eer_header(path: Path, tif: tifffile.TiffFile) -> MovieHeader:
    keyframe, pages = _eer_pages(path, tif)
    _check_tiff_complete(path, tif, pages)
    metadata = _eer_metadata(path, tif.pages.first.tags.valueof(65001))
    expected = metadata.get("numberOfFrames", "")
    if expected.isdigit() and int(expected) > len(pages):
        problem = (
            f"is truncated: the file is {path.stat().st_size} bytes and holds {len(pages)} EER frames, its "
            f"acquisition metadata implies {expected} (numberOfFrames)."
        )
        raise ImageFileError(path, problem, _RECOPY)
    spacing = None
    if "sensorPixelSize.width" in metadata and metadata.get("sensorPixelSize.width.unit", "m") == "m":
        spacing = float(metadata["sensorPixelSize.width"]) * 1e10
    shape = (int(keyframe.imagelength), int(keyframe.imagewidth))
    return MovieHeader(path, "eer", len(pages), shape, "bool", spacing, metadata)


def _eer_metadata(path: Path, raw: Any) -> dict[str, str]:
    """The acquisition XML as ``{name: text}`` plus ``{name + ".unit": unit}``."""
    if not isinstance(raw, bytes | str):
        return {}
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise ImageFileError(path, f"has unreadable EER acquisition metadata ({exc}).", _RECOPY) from exc
    items: dict[str, str] = {}
    for item in root.iter("item"):
        name, unit = item.get("name"), item.get("unit")
        if name:
            items[name] = (item.text or "").strip()
            if unit is not None:
                items[f"{name}.unit"] = unit
    return items


def _eer_code_bits(keyframe: Any) -> tuple[int, int, int]:
    """Run-length, horizontal and vertical sub-pixel bits (tags 65007-65009 for compression 65002)."""
    if keyframe.compression == 65002:
        tags = keyframe.tags
        return int(tags.valueof(65007, 7)), int(tags.valueof(65008, 2)), int(tags.valueof(65009, 2))
    return (8 if keyframe.compression == 65000 else 7), 2, 2


def _read_eer(header: MovieHeader, groups: Sequence[range], *, upsampling: int) -> np.ndarray:
    shape = (header.shape_yx[0] * upsampling, header.shape_yx[1] * upsampling)
    out = np.zeros((len(groups), *shape), dtype=IMAGE_DTYPE)
    for g, counts in enumerate(_eer_group_sums(header, groups, upsampling=upsampling)):
        out[g] = counts
    return out


def iter_movie_groups(
    path: Path, *, eer_group_frames: int | None = None, eer_upsampling: EerUpsampling = 1, group_frames: int = 1
) -> Iterator[np.ndarray]:
    """The movie's groups of frames one at a time, ``(y, x)`` float32 each, from one opening of the file.

    EER: sums of ``eer_group_frames`` raw frames (remainder frames join the last group), decoded on all cores.
    TIFF/MRC: sums of ``group_frames`` frames (remainder frames join the last group).
    """
    for group in iter_movie_counts(
        path, eer_group_frames=eer_group_frames, eer_upsampling=eer_upsampling, group_frames=group_frames
    ):
        yield group.astype(IMAGE_DTYPE, copy=False)


def iter_movie_counts(
    path: Path, *, eer_group_frames: int | None = None, eer_upsampling: EerUpsampling = 1, group_frames: int = 1
) -> Iterator[np.ndarray]:
    """As :func:`iter_movie_groups`, but groups of counts come as the integers they are, which a caller can keep
    at a quarter of the memory of float32 or less: EER groups as uint8 up to 255 raw frames (a frame holds at
    most one event per pixel), uint16 beyond (uint32 beyond 65535), unsigned TIFF frames in their own type (sums
    of several widened as needed). Signed or float TIFF frames and MRC movies come as float32. EER and TIFF
    groups are decoded on all cores."""
    header = read_movie_header(path)
    n = _checked_options(header, eer_group_frames, eer_upsampling)
    if header.format == "eer":
        yield from _eer_group_sums(header, eer_group_ranges(header.n_frames, n), upsampling=eer_upsampling)
        return
    ranges = eer_group_ranges(header.n_frames, group_frames)
    if header.format == "mrc":
        for group in ranges:
            yield _read_mrc(header, list(group)).sum(axis=0, dtype=IMAGE_DTYPE)
        return
    yield from _tiff_group_sums(header, ranges)


def _tiff_group_sums(header: MovieHeader, groups: Sequence[range]) -> Iterator[np.ndarray]:
    """Decode TIFF groups in order on all cores, each worker with its own open file (imagecodecs releases the
    GIL): 4K LZW frames decode 1.7x faster on 2 cores than one after the other."""
    workers = decode_workers()
    with ExitStack() as stack:
        files: Queue[tifffile.TiffFile] = Queue()
        for _ in range(workers):
            files.put(stack.enter_context(_open_tiff(header.path)))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))

        def decode(group: range, frames: np.ndarray, out: np.ndarray) -> np.ndarray:
            tif = files.get()
            try:
                for k, index in enumerate(group):
                    tif.pages[index].asarray(out=frames[k], maxworkers=1)
            finally:
                files.put(tif)
            return group_sum(frames[:, ::-1], out)  # TIFF rows to MRC row order (module notes)

        def submit(group: range) -> Future[np.ndarray]:
            # Arrays made here, not in the workers: glibc would serve each worker's from fresh pages.
            frames = np.empty((len(group), *header.shape_yx), dtype=header.dtype)
            out = np.empty(header.shape_yx, dtype=group_dtype(frames.dtype, len(group)))
            return pool.submit(decode, group, frames, out)

        # A decode error leaves through the files' _open_tiff, which names the file.
        for future in prefetched(submit, groups, workers):
            yield future.result()


def _eer_group_sums(header: MovieHeader, groups: Sequence[range], *, upsampling: int) -> Iterator[np.ndarray]:
    """Decode EER groups in order, as integer counts, on all cores (imagecodecs releases the GIL).

    Whole groups are decoded in parallel, each into its own counts, and at most ``workers + 1`` groups are in
    flight, so memory stays bounded on long movies; a movie with fewer groups than workers has each group split
    between workers. An EER frame holds at most one event per pixel, so a group of up to 255 raw frames is
    decoded into uint8 counts (exact, and 40% faster to decode than into uint16).
    """
    shape = (header.shape_yx[0] * upsampling, header.shape_yx[1] * upsampling)
    workers = decode_workers()
    parts = max(1, -(-workers // max(1, len(groups))))
    with _open_tiff(header.path) as tif, ThreadPoolExecutor(max_workers=workers) as pool:
        keyframe, pages = _eer_pages(header.path, tif)
        bits = _eer_code_bits(keyframe)

        def submit(group: range) -> list[Future[np.ndarray]]:
            strips = [
                b"".join(_read_bytes(tif, o, n) for o, n in zip(p.dataoffsets, p.databytecounts, strict=True))
                for p in (pages[i] for i in group)
            ]
            chunks = [strips[k::parts] for k in range(parts) if strips[k::parts]]
            # The counts are allocated here, not in the workers: glibc serves a worker thread's large blocks
            # from fresh pages each time (its arenas hold 64 MB), this thread's from the reused heap.
            return [
                pool.submit(
                    decode_eer_strips, chunk, np.zeros(shape, dtype=eer_counts_dtype(len(chunk))), bits, upsampling
                )
                for chunk in chunks
            ]

        for futures in prefetched(submit, groups, workers):
            total = futures[0].result()
            for future in futures[1:]:
                total = add_counts(total, future.result())
            yield total


def _read_bytes(tif: tifffile.TiffFile, offset: int, count: int) -> bytes:
    tif.filehandle.seek(offset)
    return bytes(tif.filehandle.read(count))


def _yx(shape: Sequence[int]) -> tuple[int, int]:
    return int(shape[-2]), int(shape[-1])


# --- MRC ----------------------------------------------------------------------------------------------


def _mrc_header(path: Path) -> MovieHeader:
    header = read_mrc_header(path)
    check_mrc_complete(path)
    shape = header.shape if len(header.shape) == 3 else (1, *header.shape)
    return MovieHeader(path, "mrc", int(shape[0]), _yx(shape), header.dtype, header.pixel_spacing_angstrom, {})


def _read_mrc(header: MovieHeader, indices: Sequence[int]) -> np.ndarray:
    return read_mrc(header.path, sections=indices).reshape(len(indices), *header.shape_yx)
