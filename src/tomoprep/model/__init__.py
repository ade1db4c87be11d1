"""Plain data of the pipeline: acquisition, tilt series, and their tilts."""

from tomoprep.model.tilt_series import GainReference, Optics, TiltAlignment, TiltImage, TiltSeries

__all__ = ["GainReference", "Optics", "TiltAlignment", "TiltImage", "TiltSeries"]
