"""The deconvolution step's work on one tilt series: a deconvolved copy of each of its tomograms, with a picture.

The filter is :func:`tomoprep.algorithms.deconvolution.deconvolve_volume` with the CTF at one defocus for the whole
tomogram: the mean centre defocus of the series' tilts (the CTF estimation's) or the one given. A tomogram made
from CTF-corrected images is filtered with ``|ctf|`` (its phases are flipped already).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.deconvolution import DeconvolutionSettings, deconvolve_volume
from tomoprep.errors import InputError
from tomoprep.io.mrc import read_mrc
from tomoprep.io.tomogram_files import write_tomogram
from tomoprep.model import TiltSeries, Tomogram
from tomoprep.steps.base import UnitOutput
from tomoprep.steps.deconvolve.params import DeconvolutionFields, DeconvolveParams
from tomoprep.steps.device import device_for
from tomoprep.steps.reconstruct.geometry import mean_defocus_angstrom
from tomoprep.steps.reconstruct.plots import write_slices_png


def settings_of(params: DeconvolutionFields, tomogram: Tomogram) -> DeconvolutionSettings:
    """The filter's settings for ``tomogram`` from the step's options."""
    return DeconvolutionSettings(snr_falloff=params.deconv_falloff, strength=params.deconv_strength,
                                 highpass_fraction=params.deconv_highpass_fraction,
                                 phase_flipped=tomogram.ctf_correction != "none",
                                 variant=params.deconv_variant)  # fmt: skip


def deconvolved_path(tomogram: Tomogram, output_dir: Path) -> Path:
    """``<output_dir>/tomograms/<tomogram's stem>_deconv.mrc``."""
    return output_dir / "tomograms" / f"{tomogram.path.stem}_deconv.mrc"


def deconvolve_tomogram(volume: torch.Tensor, ts: TiltSeries, tomogram: Tomogram, params: DeconvolutionFields, *,
                        defocus_angstrom: float, output_dir: Path) -> Tomogram:  # fmt: skip
    """Deconvolve ``volume`` (the tomogram's voxels, ``(z, y, x)``), write it and its picture; return the record
    with ``denoised_path`` set."""
    optics = Optics(ts.optics.voltage_kv, ts.optics.spherical_aberration_mm, ts.optics.amplitude_contrast,
                    tomogram.voxel_spacing_angstrom)  # fmt: skip
    filtered = deconvolve_volume(volume, defocus_angstrom=defocus_angstrom, optics=optics,
                                 settings=settings_of(params, tomogram)).cpu().numpy()  # fmt: skip
    path = deconvolved_path(tomogram, output_dir)
    write_tomogram(path, filtered, voxel_spacing_angstrom=tomogram.voxel_spacing_angstrom)
    title = f"{ts.name}, bin {tomogram.binning:g}, deconvolved ({defocus_angstrom / 1e4:.2f} µm)"
    write_slices_png(path.with_suffix(".png"), filtered, voxel_spacing_angstrom=tomogram.voxel_spacing_angstrom,
                     title=title)  # fmt: skip
    return replace(tomogram, denoised_path=path)


def series_defocus(ts: TiltSeries, given_angstrom: float | None) -> float:
    """The filter's defocus (Å): the one given, else the mean of the series' CTF estimates.

    Raises
    ------
    InputError
        When none is given and the series has no CTF estimate (naming the series and both fixes).
    """
    if given_angstrom is not None:
        return given_angstrom
    mean = mean_defocus_angstrom(ts.included_tilts)
    if mean is None:
        raise InputError(ts.sources[0] if ts.sources else None,
                         f"tilt series {ts.name} has no CTF estimate, so the deconvolution has no defocus.",
                         "run tomoprep ctf first, or give the defocus: --defocus-angstrom.")  # fmt: skip
    return mean


def deconvolve_series(ts: TiltSeries, params: DeconvolveParams, output_dir: Path) -> UnitOutput:
    """A deconvolved copy of every tomogram of ``ts``."""
    if not ts.tomograms:
        raise InputError(ts.sources[0] if ts.sources else None, f"tilt series {ts.name} has no tomogram.",
                         "run tomoprep reconstruct first.")  # fmt: skip
    defocus = series_defocus(ts, params.defocus_angstrom)
    device = device_for(params.device)
    done = []
    for tomogram in ts.tomograms:
        volume = torch.from_numpy(read_mrc(tomogram.path)).to(device)
        done.append(deconvolve_tomogram(volume, ts, tomogram, params, defocus_angstrom=defocus, output_dir=output_dir))
    source = "given" if params.defocus_angstrom is not None else "the series' mean CTF defocus"
    note = (f"{len(done)} tomograms deconvolved ({params.deconv_variant}, strength {params.deconv_strength:g}, "
            f"falloff {params.deconv_falloff:g}) at {defocus / 1e4:.2f} µm ({source})")  # fmt: skip
    return UnitOutput(replace(ts, tomograms=tuple(done)), (note,))
