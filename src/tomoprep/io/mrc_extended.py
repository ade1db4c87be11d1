"""Per-section metadata of MRC extended headers, decoded into :class:`SectionMetadata`.

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
No type, ``nint`` = 0, ``nreal`` = 32 (FEI/Thermo tomography before ``FEI1``: Xplore3D, Tomo 4, Inspect3D)
    Agard's layout as FEI filled it: 128 bytes per section, always 1024 records (131072 bytes) whatever the
    number of sections. The 32 float32 are ``a_tilt`` (degrees), ``b_tilt``, ``x_stage``, ``y_stage``,
    ``z_stage``, ``x_shift``, ``y_shift``, ``defocus``, ``exp_time``, ``mean_int``, ``tilt_axis``,
    ``pixel_size`` (metres) and ``magnification``, then 19 unassigned. The tilt, the pixel size and the
    magnification are decoded; the others, whose units the definition leaves open and whose values real files
    contradict (NIST's HAADF.mrc: ``exp_time`` 1 for a 10 s exposure, ``tilt_axis`` 0 for a 90° axis), are kept
    under these names in ``extra``, with every non-zero unassigned value as ``real_<k>``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

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
#: The layout of FEI's tomography files before ``FEI1``: ``nint`` and ``nreal``, and the names of the reals.
FEI_OLD_NINT_NREAL = (0, 32)
_FEI_OLD_NAMES = (
    "a_tilt", "b_tilt", "x_stage", "y_stage", "z_stage", "x_shift", "y_shift", "defocus", "exp_time", "mean_int",
    "tilt_axis", "pixel_size", "magnification",
)  # fmt: skip
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


def header_int(header: Any, offset: int, dtype: str) -> int:
    """A field of IMOD's use of the header's ``extra`` space, by its absolute byte offset."""
    # extra2 starts at byte 112 of the 1024-byte header (mrcfile's HEADER_DTYPE).
    start = offset - 112
    raw = bytes(header.extra2)[start : start + np.dtype(dtype).itemsize]
    return int(np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(header.mode.dtype.byteorder))[0])


def decode_sections(mrc: MrcInterpreter, exttyp: str) -> tuple[SectionMetadata, ...]:
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
    nint, nreal = header_int(header, 128, "i2"), header_int(header, 130, "i2")
    byteorder: _ByteOrder = header.mode.dtype.byteorder
    if _is_serialem_layout(nint, nreal):
        sections = _serialem_sections(raw, nint, nreal, n_sections, byteorder)
    elif (nint, nreal) == FEI_OLD_NINT_NREAL and exttyp != "AGAR":
        sections = [_fei_old_section(reals) for reals in _agard_reals(raw, 32, n_sections, byteorder)]
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


def _agard_reals(raw: np.ndarray, nreal: int, n_sections: int, byteorder: _ByteOrder) -> np.ndarray:
    """``(n, nreal)`` float64: the reals of the first ``n`` sections of an Agard layout without ints."""
    n = min(n_sections, raw.size // (4 * nreal))
    dtype = np.dtype(np.float32).newbyteorder(byteorder)
    return raw[: n * 4 * nreal].view(dtype).reshape(n, nreal).astype(np.float64)


def _fei_old_section(reals: np.ndarray) -> SectionMetadata:
    """One section of FEI's pre-``FEI1`` layout (module notes); values that are 0 are unset."""
    named = dict(zip(_FEI_OLD_NAMES, (float(v) for v in reals), strict=False))
    pixel_m, magnification = named.pop("pixel_size"), named.pop("magnification")
    tilt = named.pop("a_tilt")
    extra: dict[str, float | int | str] = dict(named)
    extra.update({f"real_{k}": float(v) for k, v in enumerate(reals) if k >= len(_FEI_OLD_NAMES) and v != 0})
    plausible_pixel = math.isfinite(pixel_m) and 1e-12 < pixel_m < 1e-6  # 0.01 Å to 1 µm
    return SectionMetadata(
        tilt_angle_deg=tilt if math.isfinite(tilt) else None,
        pixel_spacing_angstrom=round(float(str(np.float32(pixel_m))) * 1e10, 6) if plausible_pixel else None,
        magnification=magnification if magnification > 0 else None,
        extra=extra,
    )


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
