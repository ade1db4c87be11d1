"""Plain data of the pipeline: tilt series, their tilts, and each tilt's record of every processing stage."""

from tomoprep.model.tilt_series import (
    GainReference,
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltExclusion,
    TiltImage,
    TiltMotion,
    TiltSeries,
)

__all__ = [
    "GainReference",
    "Optics",
    "TiltAcquisition",
    "TiltAlignment",
    "TiltExclusion",
    "TiltImage",
    "TiltMotion",
    "TiltSeries",
]
