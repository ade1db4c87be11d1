"""tomoprep: cryo-ET preprocessing from raw tilt-series movies to RELION 5."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tomoprep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
