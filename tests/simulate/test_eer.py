"""The EER writer produces files that tifffile + imagecodecs decode back exactly."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile

from tomoprep.errors import InputError
from tomoprep.simulate.eer import EerCompression, eer_metadata_xml, encode_eer_frame, write_eer


def _events(shape: tuple[int, int, int], rate: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


@pytest.mark.parametrize("compression", [65000, 65001])
def test_write_eer_decodes_back_exactly(tmp_path: Path, compression: EerCompression) -> None:
    counts = _events((20, 64, 64), 0.05)
    counts[0, 0, 0] = counts[0, -1, -1] = 1  # events on the first and the last pixel
    counts[1] = 0  # an empty frame: only overflow runs
    counts[2] = 1  # a full frame: only zero-length runs
    path = tmp_path / "movie.eer"
    write_eer(path, counts, compression=compression)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and tif.is_eer
        page = tif.pages.first
        assert page.compression == compression
        assert page.bitspersample == 1
        assert len(page.dataoffsets) == 1  # one strip per page
        assert np.array_equal(tif.asarray(), counts.astype(bool))


@pytest.mark.parametrize("compression", [65000, 65001])
@pytest.mark.parametrize("gap", [126, 127, 128, 254, 255, 256, 508, 509, 1000])
def test_runs_at_the_overflow_boundaries(compression: EerCompression, gap: int) -> None:
    # All-ones run lengths (127 for 65001, 255 for 65000) continue without an event.
    pixels = np.zeros(2048, dtype=np.uint8)
    pixels[[3, 3 + gap + 1]] = 1
    frame = pixels.reshape(32, 64)
    strip = encode_eer_frame(frame, compression=compression)
    run_bits = 8 if compression == 65000 else 7
    decoded = imagecodecs.eer_decode(strip, (32, 64), run_bits, 2, 2)
    assert np.array_equal(decoded, frame.astype(bool))


def test_subpixel_bits_decode_to_the_pixel_centre() -> None:
    # Sub-pixel bits 0 are XORed to 2 by the decoder: sub-pixel N // 2 of 4 (1 of 2 at 2x), in both axes.
    frame = np.zeros((8, 8), dtype=np.uint8)
    frame[2, 5] = 1
    strip = encode_eer_frame(frame)
    at_4x = imagecodecs.eer_decode(strip, (32, 32), 7, 2, 2, superres=2)
    at_2x = imagecodecs.eer_decode(strip, (16, 16), 7, 2, 2, superres=1)
    assert np.argwhere(at_4x).tolist() == [[2 * 4 + 2, 5 * 4 + 2]]
    assert np.argwhere(at_2x).tolist() == [[2 * 2 + 1, 5 * 2 + 1]]


def test_acquisition_metadata_in_tag_65001(tmp_path: Path) -> None:
    path = tmp_path / "movie.eer"
    metadata = {"sensorPixelSize.width": "1.5e-10", "totalDose": "3.2", "commercialName": "Falcon 4i"}
    write_eer(path, _events((4, 16, 32), 0.1), metadata=metadata)
    with tifffile.TiffFile(path) as tif:
        meta = tif.eer_metadata
        raw = tif.pages.first.tags[65001]
    assert meta is not None
    assert raw.dtype == 7 and raw.value.startswith(b"<metadata>")
    assert meta["numberOfFrames"] == 4
    assert (meta["sensorImageWidth"], meta["sensorImageHeight"]) == (32, 16)
    assert meta["sensorPixelSize.width"] == 1.5e-10 and meta["sensorPixelSize.width.unit"] == "m"
    assert meta["totalDose.unit"] == "e/pixel"
    assert meta["commercialName"] == "Falcon 4i"


def test_unit_keys_set_unit_attributes() -> None:
    xml = eer_metadata_xml({"exposureTime": "2.5", "exposureTime.unit": "ms", "note": "a<b"})
    expected = b'<item name="exposureTime" unit="ms">2.5</item><item name="note">a&lt;b</item>'
    assert xml == b"<metadata>" + expected + b"</metadata>"


@pytest.mark.parametrize(
    "counts",
    [
        np.full((2, 4, 4), 2, dtype=np.uint8),  # two electrons in one pixel of one frame
        -np.ones((2, 4, 4), dtype=np.int16),
        np.zeros((2, 4, 4), dtype=np.float32),
        np.zeros((4, 4), dtype=np.uint8),
        np.zeros((0, 4, 4), dtype=np.uint8),
    ],
)
def test_rejects_counts_eer_cannot_store(tmp_path: Path, counts: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"movie\.eer"):
        write_eer(tmp_path / "movie.eer", counts)


def test_two_events_in_a_pixel_error_says_why(tmp_path: Path) -> None:
    counts = np.zeros((3, 4, 4), dtype=np.uint8)
    counts[1, 2, 3] = 2
    with pytest.raises(InputError, match=r"at most one event per pixel.*counts\[1, 2, 3\] = 2"):
        write_eer(tmp_path / "movie.eer", counts)
