"""Plain data of the pipeline: tilt series, their tilts, and each tilt's record of every processing stage."""

from tomoprep.model.tilt_series import (
    CtfHand,
    CtfSample,
    GainReference,
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltCtf,
    TiltExclusion,
    TiltImage,
    TiltMotion,
    TiltSeries,
    Tomogram,
)

__all__ = [
    "CtfHand",
    "CtfSample",
    "GainReference",
    "Optics",
    "TiltAcquisition",
    "TiltAlignment",
    "TiltCtf",
    "TiltExclusion",
    "TiltImage",
    "TiltMotion",
    "TiltSeries",
    "Tomogram",
]
