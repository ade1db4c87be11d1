"""Gain references of a simulated session: one camera per reference, stored as the acquisition software stores it.

``gain_A.mrc`` (float32 MRC) for TIFF and MRC movies; ``gain_A.gain`` (float32 TIFF, as Thermo EPU writes it)
for EER movies. The stored image is turned and flipped so that :func:`tomoprep.io.gain.read_gain` with the
session's ``gain_rotation_deg`` and ``gain_flip`` gives the camera's gain back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from tomoprep.io.gain import GainFlip, GainRotation
from tomoprep.io.mrc import write_mrc
from tomoprep.simulate.detector import Detector, make_detector
from tomoprep.simulate.params import ResolvedParams, SimulateParams
from tomoprep.simulate.truth import GainTruth


def write_gains(
    out_dir: Path, params: SimulateParams, resolved: ResolvedParams, rng: np.random.Generator
) -> tuple[list[Detector], list[GainTruth]]:
    """Draw the session's cameras (one, or two for ``two_gain_references``), write their gains, describe them."""
    names = ["A", "B"] if params.two_gain_references and resolved.n_tilt_series > 1 else ["A"]
    suffix = ".gain" if resolved.movie_format == "eer" else ".mrc"
    detectors, truths = [], []
    for name in names:
        detector = make_detector(resolved.detector_shape_yx, name=name, rng=rng)
        path = out_dir / f"gain_{name}{suffix}"
        write_gain_file(path, detector.gain, rotation_deg=params.gain_rotation_deg, flip=params.gain_flip,
                        pixel_spacing_angstrom=resolved.pixel_spacing_angstrom)  # fmt: skip
        detectors.append(detector)
        truths.append(
            GainTruth(
                name=name,
                file=path.name,
                rotation_deg=params.gain_rotation_deg,
                flip=params.gain_flip,
                hot_pixels_yx=detector.hot_pixels_yx.tolist(),
                hot_rate_factor=detector.hot_rate_factor.tolist(),
                dead_pixels_yx=detector.dead_pixels_yx.tolist(),
            )
        )
    return detectors, truths


def write_gain_file(
    path: Path, gain: np.ndarray, *, rotation_deg: GainRotation, flip: GainFlip, pixel_spacing_angstrom: float
) -> None:
    """Store ``gain`` so that ``read_gain(path, rotation_deg=..., flip=...)`` gives it back.

    ``.mrc``: float32 MRC; ``.gain``: float32 TIFF stored as is (Thermo EPU's EER gain; no row reversal);
    ``.tif``: TIFF with rows reversed (:mod:`tomoprep.io.gain` reverses them on reading).
    """
    unflipped = gain[::-1] if flip == "y" else gain[:, ::-1] if flip == "x" else gain
    # orient_gain turns by rot90(k=-n); the stored image is turned the other way.
    stored = np.ascontiguousarray(np.rot90(unflipped, k=rotation_deg // 90), dtype=np.float32)
    if path.suffix == ".mrc":
        write_mrc(path, stored, pixel_spacing_angstrom=pixel_spacing_angstrom)
    else:
        tifffile.imwrite(path, stored[::-1] if path.suffix in (".tif", ".tiff") else stored)
