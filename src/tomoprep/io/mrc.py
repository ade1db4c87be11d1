"""MRC images, stacks and volumes through ``mrcfile``, with the per-section metadata of extended headers.

Extended headers decoded into :class:`SectionMetadata`:

``SERI`` (SerialEM, also ``AGAR`` and untyped files in the same layout)
    IMOD's packed-short layout: ``nint`` is the number of bytes per section and ``nreal`` a set of bit
    flags, each flag adding one item in flag order (IMOD ``mrc_format.txt``, ``b3dHeaderItemBytes``)::

        1   tilt angle x 100                       2 bytes
        2   montage piece coordinates X, Y, Z       6 bytes
        4   stage position X, Y in µm x 25          4 bytes
        8   magnification / 100                     2 bytes
        16  intensity (C2) x 25000                  2 bytes
        32  exposure dose in e/Å², packed float     4 bytes
        64, 256, 1024 / 128, 512: reserved 2- / 4-byte items

    The layout applies only when the item sizes of the set flags add up to ``nint``; otherwise IMOD reads
    the extended header as Agard's ``nint`` int32 then ``nreal`` float32 per section, the first real being
    the tilt angle, and so do we.
``FEI1`` / ``FEI2`` (Thermo Fisher EPU, Tomo, Velox)
    One record per section, typed by ``mrcfile`` (``indexed_extended_header``). Values are SI: metres,
    volts, e/m², seconds. Each of four bitmasks flags, bit by bit in field order, which of the fields
    after it hold a value (the 48 unused bytes count as six); unflagged fields are left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mrcfile
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from tomoprep.conventions import IMAGE_DTYPE
from tomoprep.errors import ImageFileError

#: Main-header size in bytes.
HEADER_BYTES = 1024
#: ``imodStamp`` value of files written by IMOD or by software following its flag conventions.
IMOD_STAMP = 1146047817
#: Bytes of the item behind each SerialEM flag bit, bit 0 first (IMOD ``b3dHeaderItemBytes``).
SERIALEM_ITEM_BYTES = (2, 6, 4, 2, 2, 4, 2, 4, 2, 4, 2)
#: Extended-header types whose layout is given by ``nint``/``nreal`` rather than by the type itself.
_NINT_NREAL_TYPES = ("SERI", "AGAR", "")
#: FEI fields that span several bitmask bits.
_FEI_BIT_SPAN = {"Unused range": 6}
#: FEI field -> (SectionMetadata attribute, factor from the file's SI unit); the rest goes to ``extra``.
_FEI_ATTRIBUTES = {
    "Alpha tilt": ("tilt_angle_deg", 1.0),  # degrees
    "Applied defocus": ("defocus_angstrom", -1e10),  # metres, negative = underfocus
    "Pixel size X": ("pixel_spacing_angstrom", 1e10),  # metres
    "Dose": ("dose_e_per_angstrom2", 1e-20),  # e/m²
    "Integration time": ("exposure_time_s", 1.0),  # seconds
    "Magnification": ("magnification", 1.0),
    "HT": ("voltage_kv", 1e-3),  # volts
}
#: Parts of the names of FEI fields without meaning (padding, reserved), kept out of ``extra``.
_FEI_SKIPPED = ("Unused", "reserved")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh")
_ByteOrder = Literal["<", ">", "="]


@dataclass(frozen=True)
class SectionMetadata:
    """Acquisition metadata of one section (z slice) from an extended header; ``None`` where absent.

    Attributes
    ----------
    tilt_angle_deg
        Stage tilt (alpha) in degrees.
    defocus_angstrom
        Nominal defocus in Å, positive for underfocus. FEI: the ``Applied defocus`` EPU/Tomo asked for
        (negative metres there), not the lens readout ``Defocus``, which has an arbitrary zero and is
        kept in ``extra``.
    pixel_spacing_angstrom
        Pixel spacing in Å.
    dose_e_per_angstrom2
        Electron dose of this exposure in e⁻/Å².
    exposure_time_s
        Exposure (integration) time in seconds.
    magnification
        Nominal magnification.
    voltage_kv
        Acceleration voltage in kV.
    extra
        Every other decoded field by name. FEI fields keep ``mrcfile``'s names and the file's SI units;
        SerialEM fields carry their unit in the name (``stage_x_um``).
    """

    tilt_angle_deg: float | None = None
    defocus_angstrom: float | None = None
    pixel_spacing_angstrom: float | None = None
    dose_e_per_angstrom2: float | None = None
    exposure_time_s: float | None = None
    magnification: float | None = None
    voltage_kv: float | None = None
    extra: Mapping[str, float | int | str] = field(default_factory=dict)


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
    """

    path: Path
    shape: tuple[int, ...]
    dtype: str
    mode: int
    pixel_spacing_angstrom: float | None
    extended_header_type: str
    sections: tuple[SectionMetadata, ...]
    labels: tuple[str, ...]


def read_mrc_header(path: Path) -> MrcHeader:
    """Read the main and extended headers of an MRC file, without its data.

    Works on header-only excerpts: the data block is neither read nor checked (:func:`read_mrc` checks it).

    Raises
    ------
    ImageFileError
        If the file is missing, not MRC, or shorter than its header and extended header.
    """
    path = Path(path)
    with _open_mrc(path, header_only=True) as mrc:
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
            sections=_decode_sections(mrc, exttyp),
            labels=tuple(
                bytes(label).decode("ascii", "replace").rstrip(" \x00") for label in header.label[: int(header.nlabl)]
            ),
        )


def check_mrc_complete(path: Path) -> None:
    """Raise :class:`ImageFileError` if the MRC file is shorter than its header says (a cut copy).

    mrcfile's header-only read does not look at the data block, so this compares sizes itself; gzip/bzip2
    files are left to mrcfile, which notices their truncation when reading.
    """
    path = Path(path)
    with _open_mrc(path, header_only=True) as mrc:
        header = mrc.header
        dtype = _pixel_dtype(path, header)
        shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header))
        expected = HEADER_BYTES + int(header.nsymbt) + math.prod(shape) * dtype.itemsize
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
    with _open_mrc(path, header_only=True) as mrc:
        header = mrc.header
        dtype = _pixel_dtype(path, header)
    if dtype.kind == "c":
        raise ImageFileError(path, f"holds complex data (mode {int(header.mode)}).", "convert it to real first.")
    # Memory-mapping keeps only the float32 copy (of the sections asked for) in memory.
    with _open_mrc(path, header_only=False, memory_map=not _is_compressed(path)) as mrc:
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
def _open_mrc(path: Path, *, header_only: bool, memory_map: bool = False) -> Iterator[MrcInterpreter]:
    """Open with mrcfile, turning its errors into :class:`ImageFileError`."""
    if not path.is_file():
        raise ImageFileError(path, "MRC file does not exist.", "check the path.")
    try:
        mrc = mrcfile.mmap(path, mode="r") if memory_map else mrcfile.open(path, header_only=header_only)
    except (ValueError, OSError) as exc:
        raise ImageFileError(path, f"cannot be read as MRC ({exc}).", "check the file is a complete MRC.") from exc
    with mrc:
        yield mrc


def _extended_header_type(header: Any) -> str:
    return bytes(header.exttyp).decode("ascii", "replace").strip(" \x00")


def _header_int(header: Any, offset: int, dtype: str) -> int:
    """A field of IMOD's use of the header's ``extra`` space, by its absolute byte offset."""
    # extra2 starts at byte 112 of the 1024-byte header (mrcfile's HEADER_DTYPE).
    start = offset - 112
    raw = bytes(header.extra2)[start : start + np.dtype(dtype).itemsize]
    return int(np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(header.mode.dtype.byteorder))[0])


def _pixel_dtype(path: Path, header: Any) -> np.dtype[Any]:
    try:
        dtype: np.dtype[Any] = mrcfile.utils.data_dtype_from_header(header)
    except ValueError as exc:
        raise ImageFileError(path, f"has an unsupported MRC mode ({exc}).", "convert it to mode 1 or 2.") from exc
    # IMOD writes mode 0 as unsigned bytes unless flag 1 ("bytes are signed") is set under its stamp.
    imod_unsigned = _header_int(header, 152, "i4") == IMOD_STAMP and not _header_int(header, 156, "i4") & 1
    if dtype.kind == "i" and dtype.itemsize == 1 and imod_unsigned:
        dtype = np.dtype(np.uint8)
    return dtype


def _decode_sections(mrc: MrcInterpreter, exttyp: str) -> tuple[SectionMetadata, ...]:
    header = mrc.header
    n_sections = int(header.nz)
    if int(header.nsymbt) == 0 or n_sections <= 0:
        return ()
    if exttyp in ("FEI1", "FEI2"):
        records = mrc.indexed_extended_header  # None (with mrcfile's warning) when not interpretable
        return () if records is None else tuple(_fei_section(record) for record in records)
    if exttyp not in _NINT_NREAL_TYPES:
        return ()
    raw = np.frombuffer(bytes(mrc.extended_header), dtype=np.uint8)
    nint, nreal = _header_int(header, 128, "i2"), _header_int(header, 130, "i2")
    byteorder: _ByteOrder = header.mode.dtype.byteorder
    if _is_serialem_layout(nint, nreal):
        sections = _serialem_sections(raw, nint, nreal, n_sections, byteorder)
    elif nint >= 0 and nreal >= 0 and nint + nreal > 0:
        sections = _agard_sections(raw, nint, nreal, n_sections, byteorder)
    else:
        return ()
    # A short extended header covers only the first sections; the others have no metadata.
    return tuple(sections) + (SectionMetadata(),) * (n_sections - len(sections)) if sections else ()


def _is_serialem_layout(nint: int, nreal: int) -> bool:
    """IMOD's test: the flags' item sizes add up to ``nint`` and no unknown flag is set."""
    if nint < 0 or nreal < 0 or nint + nreal == 0 or nreal >= 1 << len(SERIALEM_ITEM_BYTES):
        return False
    return sum(size for bit, size in enumerate(SERIALEM_ITEM_BYTES) if nreal & (1 << bit)) == nint


def _serialem_sections(
    raw: np.ndarray, nbytes: int, flags: int, n_sections: int, byteorder: _ByteOrder
) -> list[SectionMetadata]:
    n = min(n_sections, raw.size // nbytes)
    records = raw[: n * nbytes].reshape(n, nbytes)
    int16 = np.dtype(np.int16).newbyteorder(byteorder)
    items: dict[int, np.ndarray] = {}
    offset = 0
    for bit, size in enumerate(SERIALEM_ITEM_BYTES):
        if flags & (1 << bit):
            items[1 << bit] = records[:, offset : offset + size]
            offset += size
    shorts = {flag: np.ascontiguousarray(b).view(int16).astype(np.int64) for flag, b in items.items()}
    return [_serialem_section(shorts, items, i) for i in range(n)]


def _serialem_section(shorts: dict[int, np.ndarray], raw: dict[int, np.ndarray], i: int) -> SectionMetadata:
    extra: dict[str, float | int | str] = {}
    if 2 in shorts:
        # IMOD reads piece X and Y as unsigned (montages can exceed 32767 pixels), Z as signed.
        x, y, z = (int(v) for v in shorts[2][i])
        extra.update(piece_x=x % 65536, piece_y=y % 65536, piece_z=z)
    if 4 in shorts:
        extra.update(stage_x_um=float(shorts[4][i, 0] / 25), stage_y_um=float(shorts[4][i, 1] / 25))
    if 16 in shorts:
        extra["intensity"] = float(shorts[16][i, 0] / 25000)
    for flag in (64, 128, 256, 512, 1024):
        if flag in raw:  # reserved by IMOD: no meaning to decode, but not to be dropped either
            extra[f"reserved_flag_{flag}_hex"] = bytes(raw[flag][i]).hex()
    return SectionMetadata(
        tilt_angle_deg=float(shorts[1][i, 0] / 100) if 1 in shorts else None,
        magnification=float(shorts[8][i, 0] * 100) if 8 in shorts else None,
        dose_e_per_angstrom2=serialem_shorts_to_float(*shorts[32][i]) if 32 in shorts else None,
        extra=extra,
    )


def serialem_shorts_to_float(s1: int, s2: int) -> float:
    """Unpack the float SerialEM stores in two int16 values (IMOD ``SEMshortsToFloat``).

    ``value = sign(s1) * (|s1| * 256 + |s2| mod 256) * 2 ** (sign(s2) * (|s2| div 256))``
    """
    s1, s2 = int(s1), int(s2)
    mantissa = abs(s1) * 256 + abs(s2) % 256
    exponent = abs(s2) // 256
    value = math.ldexp(mantissa, -exponent if s2 < 0 else exponent)
    return -value if s1 < 0 else value


def _agard_sections(
    raw: np.ndarray, nint: int, nreal: int, n_sections: int, byteorder: _ByteOrder
) -> list[SectionMetadata]:
    record = np.dtype([("ints", "i4", (nint,)), ("reals", "f4", (nreal,))]).newbyteorder(byteorder)
    n = min(n_sections, raw.size // record.itemsize)
    sections = []
    for values in raw[: n * record.itemsize].view(record):
        extra: dict[str, float | int | str] = {f"int_{k}": int(v) for k, v in enumerate(values["ints"])}
        extra.update({f"real_{k}": float(v) for k, v in enumerate(values["reals"]) if k > 0})
        tilt = float(values["reals"][0]) if nreal > 0 else None
        sections.append(SectionMetadata(tilt_angle_deg=tilt, extra=extra))
    return sections


def _fei_section(record: np.void) -> SectionMetadata:
    valid: dict[str, float | int | str] = {}
    mask, bit = 0, 0
    for name in record.dtype.names or ():
        if name.startswith("Bitmask"):
            mask, bit = int(record[name]), 0
            continue
        # Each bitmask flags the fields after it, in order; an unflagged field holds no value.
        if mask & (1 << bit):
            value = record[name].item()
            valid[name] = value.decode("ascii", "replace").strip(" \x00") if isinstance(value, bytes) else value
        bit += _FEI_BIT_SPAN.get(name, 1)
    named: dict[str, Any] = {
        attr: float(valid[name]) * scale for name, (attr, scale) in _FEI_ATTRIBUTES.items() if name in valid
    }
    extra = {
        name: value
        for name, value in valid.items()
        if name not in _FEI_ATTRIBUTES and not any(part in name for part in _FEI_SKIPPED)
    }
    return dataclasses.replace(SectionMetadata(extra=extra), **named)
