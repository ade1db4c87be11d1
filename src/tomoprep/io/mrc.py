"""MRC images, stacks and volumes through ``mrcfile``, with the per-section metadata of extended headers
(decoded by :mod:`tomoprep.io.mrc_extended`).

Files that mrcfile refuses in its strict mode are opened again in its permissive mode when they lack only what
MRC2000 added: FEI/Thermo's tomography software wrote stacks with no ``MAP `` stamp and no machine stamp (and an
extended header of 131072 bytes). Such a file is accepted only when its header describes it: sizes at least 1, a
known mode, and a file length equal to the header, the extended header and the data it implies; what it lacks is
listed in :attr:`MrcHeader.irregularities`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from tomoprep.conventions import IMAGE_DTYPE
from tomoprep.errors import ImageFileError
from tomoprep.io.mrc_extended import SectionMetadata, decode_sections, header_int, serialem_shorts_to_float

__all__ = [
    "HEADER_BYTES",
    "IMOD_STAMP",
    "MrcHeader",
    "SectionMetadata",
    "check_mrc_complete",
    "read_mrc",
    "read_mrc_header",
    "serialem_shorts_to_float",
    "write_mrc",
]

#: Main-header size in bytes.
HEADER_BYTES = 1024
#: ``imodStamp`` value of files written by IMOD or by software following its flag conventions.
IMOD_STAMP = 1146047817
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh")
#: mrcfile's permissive-mode warnings, as the irregularities of the file they stand for.
_LENIENT_WARNINGS = {
    "Map ID string not found": "no 'MAP ' stamp (a header older than MRC2000)",
    "Unrecognised machine stamp": "no machine stamp: read as little-endian",
}
#: Largest sensible size along any axis of an image stack, pixels (a safeguard against reading garbage).
_MAX_AXIS_PX = 1 << 20


@dataclass(frozen=True)
class MrcHeader:
    """What the main and extended headers of an MRC file say.

    Attributes
    ----------
    path
        The file.
    shape
        Data shape in numpy order: ``(nz, ny, nx)``, or ``(ny, nx)`` for a single image.
    dtype
        numpy name of the stored pixel type (``'int16'``, ``'float32'``...).
    mode
        MRC mode number.
    pixel_spacing_angstrom
        Voxel size along x in Å; ``None`` when the header leaves it 0.
    extended_header_type
        ``EXTTYP`` such as 'SERI', 'FEI1', 'FEI2', 'AGAR', 'CCP4', 'MRCO'; '' when unset.
    sections
        One entry per section when the extended header has per-section data, else empty.
    labels
        The text labels, trailing blanks removed.
    irregularities
        What the header lacks that MRC2014 asks for, when the file was read leniently (module notes); empty
        for a regular file.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: str
    mode: int
    pixel_spacing_angstrom: float | None
    extended_header_type: str
    sections: tuple[SectionMetadata, ...]
    labels: tuple[str, ...]
    irregularities: tuple[str, ...] = ()


def read_mrc_header(path: Path) -> MrcHeader:
    """Read the main and extended headers of an MRC file, without its data.

    Works on header-only excerpts of regular files: their data block is neither read nor checked
    (:func:`read_mrc` checks it). A file without the ``MAP `` stamp must be complete (module notes).

    Raises
    ------
    ImageFileError
        If the file is missing, not MRC, or shorter than its header and extended header.
    """
    path = Path(path)
    with _open_mrc(path, header_only=True) as (mrc, irregularities):
        header = mrc.header
        exttyp = _extended_header_type(header)
        # The shortest decimal that gives the stored float32 (7.88, not 7.880000114440918).
        spacing = float(str(mrc.voxel_size.x))
        return MrcHeader(
            path=path,
            shape=tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header)),
            dtype=_pixel_dtype(path, header).name,
            mode=int(header.mode),
            pixel_spacing_angstrom=spacing if spacing > 0 and math.isfinite(spacing) else None,
            extended_header_type=exttyp,
            sections=decode_sections(mrc, exttyp),
            labels=tuple(
                bytes(label).decode("ascii", "replace").rstrip(" \x00") for label in header.label[: int(header.nlabl)]
            ),
            irregularities=irregularities,
        )


def check_mrc_complete(path: Path) -> None:
    """Raise :class:`ImageFileError` if the MRC file is shorter than its header says (a cut copy).

    mrcfile's header-only read does not look at the data block, so this compares sizes itself; gzip/bzip2
    files are left to mrcfile, which notices their truncation when reading.
    """
    path = Path(path)
    with _open_mrc(path, header_only=True) as (mrc, _):
        header = mrc.header
        dtype = _pixel_dtype(path, header)
        shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header))
        expected = _implied_bytes(header, dtype)
    actual = path.stat().st_size
    if not _is_compressed(path) and actual < expected:
        raise ImageFileError(
            path,
            f"is truncated: the file is {actual} bytes, its header implies {expected} ({HEADER_BYTES}-byte "
            f"header, {int(header.nsymbt)}-byte extended header, {dtype.name} data of shape {shape}).",
            "re-copy the file from its source; read_mrc_header still reads the metadata.",
        )


def _is_compressed(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(3).startswith(_COMPRESSED_MAGIC)


def read_mrc(path: Path, *, sections: Sequence[int] | None = None) -> np.ndarray:
    """Read the data of an MRC file (or some of its sections) as float32.

    Parameters
    ----------
    path
        The MRC file.
    sections
        Indices along the first axis of a stack to read; ``None`` reads everything.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` image, ``(n, ny, nx)`` stack or volume, float32. IMOD-written byte files flagged
        unsigned are read as 0..255.

    Raises
    ------
    ImageFileError
        If the file is missing, not MRC, complex-valued, or shorter than its header says (truncated).
    """
    path = Path(path)
    check_mrc_complete(path)
    with _open_mrc(path, header_only=True) as (mrc, _):
        header = mrc.header
        dtype = _pixel_dtype(path, header)
    if dtype.kind == "c":
        raise ImageFileError(path, f"holds complex data (mode {int(header.mode)}).", "convert it to real first.")
    # Memory-mapping keeps only the float32 copy (of the sections asked for) in memory.
    with _open_mrc(path, header_only=False, memory_map=not _is_compressed(path)) as (mrc, _):
        data = mrc.data.view(dtype)
        if sections is not None:
            data = data.reshape(-1, *data.shape[-2:])[list(sections)]
        return np.array(data, dtype=IMAGE_DTYPE)


def write_mrc(path: Path, data: np.ndarray, *, pixel_spacing_angstrom: float, overwrite: bool = False) -> None:
    """Write an image, stack or volume as a float32 MRC file with its voxel size.

    Parameters
    ----------
    path
        Destination, written in place (the caller renames into place for atomicity).
    data
        ``(ny, nx)`` image or ``(n, ny, nx)`` stack/volume; converted to float32.
    pixel_spacing_angstrom
        Voxel size in Å, set on all three axes.
    overwrite
        Replace an existing file instead of raising.

    Raises
    ------
    ImageFileError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        If ``data`` is not 2-D or 3-D, or the pixel spacing is not a positive finite number.
    """
    path = Path(path)
    array = np.asarray(data)
    if array.ndim not in (2, 3):
        raise ValueError(f"MRC data must be 2-D or 3-D, got shape {array.shape}.")
    if not (math.isfinite(pixel_spacing_angstrom) and pixel_spacing_angstrom > 0):
        raise ValueError(f"pixel_spacing_angstrom must be positive and finite, got {pixel_spacing_angstrom}.")
    if path.exists() and not overwrite:
        raise ImageFileError(path, "already exists.", "pass overwrite=True or choose another name.")
    with mrcfile.new(path, overwrite=overwrite) as mrc:
        mrc.set_data(np.ascontiguousarray(array, dtype=IMAGE_DTYPE))
        mrc.voxel_size = pixel_spacing_angstrom


@contextmanager
def _open_mrc(
    path: Path, *, header_only: bool, memory_map: bool = False
) -> Iterator[tuple[MrcInterpreter, tuple[str, ...]]]:
    """Open with mrcfile, strictly, else leniently (module notes); yields the file and its irregularities."""
    if not path.is_file():
        raise ImageFileError(path, "MRC file does not exist.", "check the path.")
    try:
        mrc = _mrcfile_open(path, header_only=header_only, memory_map=memory_map, permissive=False)
        irregularities: tuple[str, ...] = ()
    except (ValueError, OSError) as exc:
        mrc, irregularities = _open_leniently(path, header_only=header_only, memory_map=memory_map, strict_error=exc)
    with mrc:
        yield mrc, irregularities


def _mrcfile_open(path: Path, *, header_only: bool, memory_map: bool, permissive: bool) -> MrcInterpreter:
    if memory_map:
        return mrcfile.mmap(path, mode="r", permissive=permissive)
    return mrcfile.open(path, header_only=header_only, permissive=permissive)


def _open_leniently(
    path: Path, *, header_only: bool, memory_map: bool, strict_error: Exception
) -> tuple[MrcInterpreter, tuple[str, ...]]:
    """mrcfile's permissive mode, accepted only when the header describes the file (module notes)."""
    refused = f"cannot be read as MRC ({strict_error})"
    problem = _extended_header_past_the_end(path)
    if problem is not None:
        raise ImageFileError(path, f"{refused}; {problem}.", "check that the file is a complete MRC image stack.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # The header alone first: a header that is garbage can ask for gigabytes of data.
            mrc = _mrcfile_open(path, header_only=True, memory_map=False, permissive=True)
            problem = _implausible(path, mrc.header)
            if problem is None and not header_only:
                mrc.close()
                mrc = _mrcfile_open(path, header_only=False, memory_map=memory_map, permissive=True)
    except (ValueError, OSError) as exc:
        raise ImageFileError(path, f"{refused}.", "check the file is a complete MRC.") from exc
    if problem is None and not header_only and mrc.data is None:
        problem = "its data block cannot be read"
    if problem is not None:
        mrc.close()
        raise ImageFileError(
            path, f"{refused}; read leniently, {problem}.", "check that the file is a complete MRC image stack."
        ) from strict_error
    messages = [str(w.message) for w in caught]
    return mrc, tuple(next((text for key, text in _LENIENT_WARNINGS.items() if m.startswith(key)), m) for m in messages)


def _extended_header_past_the_end(path: Path) -> str | None:
    """Why the extended-header size (word 24, either byte order) of an uncompressed file cannot be right, before
    mrcfile reads it: a text file named ``.mrc`` has a "size" of hundreds of megabytes, which mrcfile would
    allocate and read first (``None`` when it may be right, or the file is compressed)."""
    if _is_compressed(path):
        return None
    size = path.stat().st_size
    with path.open("rb") as stream:
        word = stream.read(HEADER_BYTES)[92:96]
    if len(word) < 4:
        return f"it is {size} bytes, shorter than the {HEADER_BYTES}-byte header"
    if any(0 <= int.from_bytes(word, order, signed=True) <= size - HEADER_BYTES for order in ("little", "big")):
        return None
    return f"its extended-header size {int.from_bytes(word, 'little', signed=True)} does not fit in its {size} bytes"


def _implausible(path: Path, header: Any) -> str | None:
    """Why a leniently read header cannot describe ``path`` (``None`` when it can)."""
    sizes = [int(header.nx), int(header.ny), int(header.nz)]
    if not all(1 <= n <= _MAX_AXIS_PX for n in sizes):
        return f"its sizes {sizes} are not those of an image stack"
    try:
        dtype = mrcfile.utils.data_dtype_from_header(header)
    except ValueError:
        return f"its mode {int(header.mode)} is not an MRC mode"
    if int(header.nsymbt) < 0:
        return f"its extended-header size {int(header.nsymbt)} is negative"
    expected, actual = _implied_bytes(header, dtype), path.stat().st_size
    if not _is_compressed(path) and actual != expected:
        return (
            f"the file is {actual} bytes, but its header implies {expected} ({HEADER_BYTES}-byte header, "
            f"{int(header.nsymbt)}-byte extended header, {dtype.name} data of {sizes[0]} x {sizes[1]} x {sizes[2]})"
        )
    return None


def _implied_bytes(header: Any, dtype: np.dtype[Any]) -> int:
    """File length the header implies: main header, extended header and data."""
    shape = mrcfile.utils.data_shape_from_header(header)
    return HEADER_BYTES + int(header.nsymbt) + math.prod(int(n) for n in shape) * dtype.itemsize


def _extended_header_type(header: Any) -> str:
    return bytes(header.exttyp).decode("ascii", "replace").strip(" \x00")


def _pixel_dtype(path: Path, header: Any) -> np.dtype[Any]:
    try:
        dtype: np.dtype[Any] = mrcfile.utils.data_dtype_from_header(header)
    except ValueError as exc:
        raise ImageFileError(path, f"has an unsupported MRC mode ({exc}).", "convert it to mode 1 or 2.") from exc
    # IMOD writes mode 0 as unsigned bytes unless flag 1 ("bytes are signed") is set under its stamp.
    imod_unsigned = header_int(header, 152, "i4") == IMOD_STAMP and not header_int(header, 156, "i4") & 1
    if dtype.kind == "i" and dtype.itemsize == 1 and imod_unsigned:
        dtype = np.dtype(np.uint8)
    return dtype
