"""Write real EER (Electron Event Representation) movies from per-frame electron events.

The files follow the EER layout as tifffile + imagecodecs, RELION and Thermo Fisher's EerReaderLib read it:

- a little-endian BigTIFF, one page per raw detector frame, one strip per page, ``BitsPerSample = 1``;
- ``Compression`` 65001 (7-bit run lengths) or 65000 (8-bit run lengths, the prototype variant);
- the strip is an LSB-first bit stream of codes. A code starts with a run length ``r`` (the number of
  pixels without an event, in raster order). If ``r`` is all ones (127 or 255) the run continues in the next
  code and nothing else follows; otherwise an event follows at the next pixel and the code carries 2 + 2
  sub-pixel bits (horizontal, then vertical). After an event the pixel counter moves on by one, so a pixel
  holds at most one event per frame. The stream ends with a run that reaches the last pixel;
- the acquisition metadata as XML (``<metadata><item name="..." unit="...">value</item>...``) in tag 65001
  (type UNDEFINED) of the first page; tifffile's ``TiffFile.eer_metadata`` parses it.

Sub-pixel bits are written as 0. Decoders XOR each 2-bit field with ``0b10`` (imagecodecs' ``eer_decode``;
RELION's ``^ 0x0A``), so 0 decodes to sub-pixel 2 of 4 (the centre in the ``N // 2`` convention of
:mod:`tomoprep.conventions`), i.e. to half-pixel (1, 1), the (+y, +x) one, of each 2x2 block at 2x.

tifffile cannot write EER-compressed strips (its writer looks up an encoder for the compression and has
none for 65000/65001), so the BigTIFF structure is written here.

Known disagreement for 65000: after an all-ones run, imagecodecs consumes only the 8 run-length bits, while
RELION consumes 12 (EerReaderLib notes that old prototype files, the 8-bit ones, waste the sub-pixel bits
of such codes). The 65000 files written here follow imagecodecs, so RELION reads them correctly only if no
run of 255 or more empty pixels occurs (checked with RELION 3.1.3). 65001 files read the same everywhere.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Literal
from xml.etree import ElementTree

import numpy as np

from tomoprep.errors import InputError

EerCompression = Literal[65000, 65001]

#: Run-length bits per compression; each event code adds 2 + 2 sub-pixel bits.
RUN_LENGTH_BITS: dict[int, int] = {65000: 8, 65001: 7}
SUBPIXEL_BITS = 4
#: Tag holding the acquisition XML (Thermo's "AcquisitionMetadata").
ACQUISITION_METADATA_TAG = 65001
#: Units Thermo writes for the metadata keys that have one.
_KNOWN_UNITS = {
    "sensorPixelSize.width": "m",
    "sensorPixelSize.height": "m",
    "exposureTime": "s",
    "totalDose": "e/pixel",
    "meanDoseRate": "e/pixel/s",
    "sensorImageWidth": "pixels",
    "sensorImageHeight": "pixels",
}
# TIFF field types.
_SHORT, _LONG, _UNDEFINED, _LONG8 = 3, 4, 7, 16
_FORMATS = {_SHORT: "<H", _LONG: "<I", _LONG8: "<Q"}


def write_eer(
    path: Path,
    counts: np.ndarray,
    *,
    compression: EerCompression = 65001,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write electron events as an EER movie.

    Parameters
    ----------
    path
        Destination file (overwritten).
    counts
        ``(n_frames, y, x)`` integer or bool array: electron events per sensor pixel and raw frame, each 0
        or 1 (EER cannot store two events in one pixel of one frame: spread the dose over more frames).
    compression
        65001 (7-bit run lengths, what current Falcon detectors write) or 65000 (8-bit, prototype files).
    metadata
        Acquisition XML items. ``numberOfFrames``, ``sensorImageWidth`` and ``sensorImageHeight`` are filled
        from ``counts``; given values replace them (so a test can write inconsistent metadata on purpose).
        Values are strings; a key ``"<name>.unit"`` sets the unit attribute of item ``<name>``, otherwise
        Thermo's unit is used for the keys that have one (``sensorPixelSize.width``: m, ``totalDose``:
        e/pixel, ``exposureTime``: s, ...).

    Raises
    ------
    InputError
        If ``counts`` is not a 3-D integer array of zeros and ones, or ``compression`` is not 65000/65001.
    """
    path = Path(path)
    frames = _validated_counts(path, counts, compression)
    n_frames, ny, nx = frames.shape
    items = {"numberOfFrames": str(n_frames), "sensorImageWidth": str(nx), "sensorImageHeight": str(ny)}
    items.update(metadata or {})
    xml = eer_metadata_xml(items)
    with path.open("wb") as stream:
        # BigTIFF header: byte order, version 43, offset size 8, padding; the first IFD offset is patched.
        stream.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
        next_pointer = 8
        for index in range(n_frames):
            strip = encode_eer_frame(frames[index], compression=compression)
            next_pointer = _write_page(
                stream,
                strip,
                next_pointer,
                shape_yx=(ny, nx),
                compression=compression,
                xml=xml if index == 0 else None,
            )


def encode_eer_frame(frame: np.ndarray, *, compression: EerCompression = 65001) -> bytes:
    """Encode one raw frame of 0/1 events as an EER strip.

    Parameters
    ----------
    frame
        ``(y, x)`` array of 0 and 1 (not checked here; :func:`write_eer` checks).
    compression
        65001 or 65000, as in :func:`write_eer`.

    Returns
    -------
    bytes
        The strip, padded with zero bits to an even number of bytes (imagecodecs rejects odd lengths) and with
        at least one code's worth of padding after the last code (decoders read whole codes).
    """
    run_bits = RUN_LENGTH_BITS[compression]
    code_bits = run_bits + SUBPIXEL_BITS
    overflow = (1 << run_bits) - 1
    events = np.flatnonzero(np.asarray(frame).ravel())
    # Empty pixels before each event, then after the last one (the closing run ends the frame).
    runs = np.append(np.diff(events, prepend=-1) - 1, frame.size - (events[-1] + 1 if events.size else 0))
    n_overflow = runs // overflow
    codes_per_run = n_overflow + 1
    values = np.full(int(codes_per_run.sum()), overflow, dtype=np.int64)
    widths = np.full(values.size, run_bits, dtype=np.int64)
    last_code = np.cumsum(codes_per_run) - 1
    # The remainder run of each event, with its sub-pixel bits left 0 (decodes to the pixel centre).
    values[last_code] = runs % overflow
    widths[last_code[:-1]] = code_bits
    return _pack_codes(values, widths, padding_bits=code_bits)


def eer_metadata_xml(items: Mapping[str, str]) -> bytes:
    """The acquisition XML of tag 65001 for ``items`` (``"<name>.unit"`` keys become unit attributes).

    Returns
    -------
    bytes
        UTF-8 XML starting with ``<metadata>`` and no declaration, as tifffile's EER detection expects.
    """
    root = ElementTree.Element("metadata")
    units = {key[: -len(".unit")]: value for key, value in items.items() if key.endswith(".unit")}
    for name, value in items.items():
        if name.endswith(".unit"):
            continue
        item = ElementTree.SubElement(root, "item", {"name": name})
        unit = units.get(name, _KNOWN_UNITS.get(name))
        if unit is not None:
            item.set("unit", unit)
        item.text = str(value)
    return ElementTree.tostring(root, encoding="unicode").encode("utf-8")


def _validated_counts(path: Path, counts: np.ndarray, compression: int) -> np.ndarray:
    if compression not in RUN_LENGTH_BITS:
        raise InputError(path, f"EER compression {compression!r} cannot be written.", "use 65001 or 65000.")
    array = np.asarray(counts)
    if array.ndim != 3 or array.dtype.kind not in "biu" or 0 in array.shape:
        problem = f"EER counts must be a 3-D integer array (n_frames, y, x), not {array.dtype} {array.shape}."
        raise InputError(path, problem, "pass integer electron counts per frame.")
    bad = np.argwhere((array < 0) | (array > 1))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        raise InputError(
            path,
            f"EER stores at most one event per pixel and frame, but counts{list(where)} = {array[where]}"
            f" ({len(bad)} such pixels).",
            "spread the dose over more frames.",
        )
    return array


def _pack_codes(values: np.ndarray, widths: np.ndarray, *, padding_bits: int) -> bytes:
    """Concatenate codes LSB-first: code k occupies ``widths[k]`` bits holding ``values[k]``."""
    starts = np.cumsum(widths) - widths
    n_bits = int(starts[-1] + widths[-1]) + padding_bits
    n_bytes = -(-n_bits // 8)
    n_bytes += n_bytes % 2
    bits = np.zeros(n_bytes * 8, dtype=np.uint8)
    for bit in range(int(widths.max())):
        has_bit = widths > bit
        bits[starts[has_bit] + bit] = (values[has_bit] >> bit) & 1
    return np.packbits(bits, bitorder="little").tobytes()


def _write_page(
    stream: BinaryIO,
    strip: bytes,
    pointer_at: int,
    *,
    shape_yx: tuple[int, int],
    compression: int,
    xml: bytes | None,
) -> int:
    """Write one strip and its IFD, link it from ``pointer_at``; return where this IFD's next-pointer is."""
    ny, nx = shape_yx
    strip_offset = stream.tell()
    stream.write(strip)
    entries: list[tuple[int, int, int, int | bytes]] = [
        (256, _LONG, 1, nx),  # ImageWidth
        (257, _LONG, 1, ny),  # ImageLength
        (258, _SHORT, 1, 1),  # BitsPerSample: one bit per sensor pixel, as EPU writes
        (259, _SHORT, 1, compression),
        (262, _SHORT, 1, 1),  # PhotometricInterpretation: MinIsBlack
        (273, _LONG8, 1, strip_offset),  # StripOffsets
        (277, _SHORT, 1, 1),  # SamplesPerPixel
        (278, _LONG, 1, ny),  # RowsPerStrip: the whole frame is one strip
        (279, _LONG8, 1, len(strip)),  # StripByteCounts
        (284, _SHORT, 1, 1),  # PlanarConfiguration: contiguous
    ]
    if xml is not None:
        entries.append((ACQUISITION_METADATA_TAG, _UNDEFINED, len(xml), xml))
    ifd_offset = stream.tell()
    ifd_bytes = 8 + 20 * len(entries) + 8
    body = bytearray(struct.pack("<Q", len(entries)))
    extra = bytearray()
    for tag, field_type, count, value in entries:
        if isinstance(value, bytes):
            # Values longer than the 8-byte field go after the IFD, the field holds their offset.
            field = struct.pack("<Q", ifd_offset + ifd_bytes + len(extra)) if len(value) > 8 else value
            extra += value if len(value) > 8 else b""
        else:
            field = struct.pack(_FORMATS[field_type], value)
        body += struct.pack("<HHQ", tag, field_type, count) + field.ljust(8, b"\0")
    body += struct.pack("<Q", 0)
    stream.write(bytes(body) + bytes(extra) + b"\0" * (len(extra) % 2))
    end = stream.tell()
    stream.seek(pointer_at)
    stream.write(struct.pack("<Q", ifd_offset))
    stream.seek(end)
    return ifd_offset + ifd_bytes - 8
