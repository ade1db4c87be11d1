"""The noise-free expected image of one tilt (projection geometry: :mod:`tomoprep.simulate.geometry`).

Image formation
    weak-phase approximation with amplitude contrast, in depth layers: every primitive goes, by its depth
    ``z'``, to the layer ``round(z' / layer_thickness)``; the projected phase of each layer (plus that layer's
    share of the ice texture) is multiplied by the CTF at ``defocus + hand * layer_depth`` in Fourier space
    (:mod:`tomoprep.simulate.ctf` for the CTF sign, astigmatism and exposure filter conventions), and

    ``image = T_ice · (1 + 2 · IFFT(Σ_layers CTF_layer · FFT(φ_layer)))``, clipped at 0,

    with ``T_ice = exp(-path / mean_free_path)`` and ``path = thickness / |cos(beam, slab normal)|``.
    The crowders (:mod:`tomoprep.simulate.crowding`) count without their mean density over the slab
    (``Phantom.crowder_mean_density``): that much, uniform through the slab, shifts the phase everywhere alike,
    which no image shows, and its share of the attenuation belongs to the mean free path of the slab's material
    (ice and the proteins in it), not to the amplitude contrast, whose linear term would darken a 3000 Å lamella
    by a third. The image gets back ``2 A φ0`` (``A`` the CTF's magnitude at zero frequency, ``φ0`` that mean
    density times the path).
    The primitives' projections are exact and band-limited (:mod:`tomoprep.simulate.profiles`)
    and exposure-filtered (Grant & Grigorieff) for ``pre_exposure + dose / 2``; the ice texture is not
    filtered (amorphous ice stays amorphous under the beam, so its Thon rings do not fade).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from tomoprep.conventions import IMAGE_DTYPE
from tomoprep.errors import InputError
from tomoprep.simulate.ctf import (
    Microscope,
    TiltCtf,
    ctf_1d,
    ctf_phase_terms,
    interaction_constant_rad_per_volt_angstrom,
    rfft2_frequencies,
)
from tomoprep.simulate.geometry import TiltGeometry, ice_path_length_angstrom, project_points, projection_matrix
from tomoprep.simulate.phantom import Phantom
from tomoprep.simulate.projection import ICE_TEXTURE_PSD_RAD2_ANGSTROM, layer_phases

# The geometry, the CTF and the ice texture's strength live in geometry.py, ctf.py and projection.py; these
# names stay importable from here, where callers and tests take them.
__all__ = [
    "ICE_TEXTURE_PSD_RAD2_ANGSTROM",
    "Microscope",
    "TiltCtf",
    "TiltGeometry",
    "ctf_1d",
    "expected_image",
    "ice_path_length_angstrom",
    "project_points",
    "projected_phase",
    "projection_matrix",
]


def projected_phase(
    phantom: Phantom,
    g: TiltGeometry,
    *,
    image_shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    voltage_kv: float = 300.0,
    exposure_e_per_angstrom2: float = 0.0,
) -> np.ndarray:
    """The phantom's projected phase (rad), band-limited, without CTF, ice texture or attenuation.

    Returns
    -------
    numpy.ndarray
        float32 ``image_shape_yx``; the ground truth of what :func:`expected_image` transfers through the CTF.
    """
    total = np.zeros(image_shape_yx, dtype=np.float32)
    for _, phase in layer_phases(
        phantom, g, image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom,
        layer_thickness_angstrom=math.inf, exposure_e_per_angstrom2=exposure_e_per_angstrom2,
        voltage_kv=voltage_kv, ice_texture_psd_rad2_angstrom=0.0, seed=0,
    ):  # fmt: skip
        total += phase
    return total


def _check_arguments(
    ctf: TiltCtf,
    *,
    image_shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    layer_thickness_angstrom: float,
    ice_mean_free_path_angstrom: float,
) -> None:
    positive = {
        "pixel_spacing_angstrom": pixel_spacing_angstrom,
        "layer_thickness_angstrom": layer_thickness_angstrom,
        "ice_mean_free_path_angstrom": ice_mean_free_path_angstrom,
        "image height": image_shape_yx[0],
        "image width": image_shape_yx[1],
    }
    for name, value in positive.items():
        if not value > 0:
            raise InputError(None, f"{name}={value} must be positive.")
    if ctf.hand not in (-1, 1):
        raise InputError(None, f"TiltCtf.hand={ctf.hand} must be +1 or -1 (RELION rlnTomoHand).")


def _uniform_crowder_phase(phantom: Phantom, path_angstrom: float, *, voltage_kv: float) -> float:
    """Phase (rad) of the crowders' mean density over the slab along a path of ``path_angstrom`` through it."""
    scale = interaction_constant_rad_per_volt_angstrom(voltage_kv) / interaction_constant_rad_per_volt_angstrom(300)
    return scale * phantom.crowder_mean_density * path_angstrom


def expected_image(
    phantom: Phantom,
    g: TiltGeometry,
    ctf: TiltCtf,
    microscope: Microscope,
    *,
    image_shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    pre_exposure_e_per_angstrom2: float,
    dose_e_per_angstrom2: float,
    seed: int,
    layer_thickness_angstrom: float = 500.0,
    ice_mean_free_path_angstrom: float = 3500.0,
    ice_texture_psd_rad2_angstrom: float = ICE_TEXTURE_PSD_RAD2_ANGSTROM,
    apply_ctf: bool = True,
    b_factor_angstrom2: float = 0.0,
) -> np.ndarray:
    """The noise-free expected image of one tilt, relative to the incident beam.

    Parameters
    ----------
    phantom, g, ctf, microscope
        Specimen, tilt geometry, defocus at the image centre (and hand), optics.
    image_shape_yx
        ``(H, W)`` of the image.
    pixel_spacing_angstrom
        Pixel spacing, Å.
    pre_exposure_e_per_angstrom2, dose_e_per_angstrom2
        Exposure before this tilt and this tilt's own dose, e/Å²; the signal is exposure-filtered for
        ``pre_exposure + dose / 2``.
    seed
        Seed of the ice texture (use a different one per tilt).
    layer_thickness_angstrom
        Thickness of the depth layers sharing one defocus, Å.
    ice_mean_free_path_angstrom
        Mean free path for the electrons the energy filter / aperture removes, Å.
    ice_texture_psd_rad2_angstrom
        Phase power spectral density of the ice texture per Å of ice (rad²·Å), 0 for none.
    apply_ctf
        False replaces the CTF by -1 (an in-focus "dark = dense" image: ``T (1 - 2 φ)``), for geometry tests.
    b_factor_angstrom2
        Envelope ``exp(-B k² / 4)`` on everything (Å²), 0 for none.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)``, ≥ 0, mean ``T (1 - 2 A <φ>)`` with ``T = exp(-path / mean_free_path)`` and ``<φ>``
        the mean projected phase of every body but the crowders (dense matter also scatters out of the image),
        close to ``T`` for a typical field. Expected electron counts per pixel
        are ``image * dose * pixel_spacing²``.
    """
    _check_arguments(
        ctf, image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom,
        layer_thickness_angstrom=layer_thickness_angstrom, ice_mean_free_path_angstrom=ice_mean_free_path_angstrom,
    )  # fmt: skip
    base, slope = ctf_phase_terms(image_shape_yx, ctf, microscope, pixel_spacing_angstrom=pixel_spacing_angstrom)
    spectrum_sum = np.zeros(base.shape, dtype=np.complex64)
    layers = layer_phases(
        phantom, g, image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom,
        layer_thickness_angstrom=layer_thickness_angstrom,
        exposure_e_per_angstrom2=pre_exposure_e_per_angstrom2 + dose_e_per_angstrom2 / 2,
        voltage_kv=microscope.voltage_kv, ice_texture_psd_rad2_angstrom=ice_texture_psd_rad2_angstrom, seed=seed,
    )  # fmt: skip
    transfer = np.empty_like(base)
    for depth, phase in layers:
        spectrum = scipy.fft.rfft2(phase, workers=-1)
        if apply_ctf:
            np.multiply(slope, np.float32(ctf.hand * depth), out=transfer)
            transfer += base
            spectrum *= np.sin(transfer, out=transfer)
        spectrum_sum -= spectrum  # CTF = -sin(χ + asin A)
    del base, slope, transfer
    if b_factor_angstrom2:
        k_y, k_x = rfft2_frequencies(image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom)
        spectrum_sum *= np.exp(np.float32(-b_factor_angstrom2 / 4) * (k_x * k_x + k_y * k_y))
    image = scipy.fft.irfft2(spectrum_sum, s=image_shape_yx, workers=-1)
    del spectrum_sum
    zero_frequency_ctf = microscope.amplitude_contrast if apply_ctf else 1.0
    return _intensity(image, phantom, g, microscope, zero_frequency_ctf, ice_mean_free_path_angstrom)


def _intensity(contrast: np.ndarray, phantom: Phantom, g: TiltGeometry, microscope: Microscope,
               zero_frequency_ctf: float, ice_mean_free_path_angstrom: float) -> np.ndarray:  # fmt: skip
    """``T (1 + 2 contrast)``, in place, the crowders' mean phase given back, clipped at 0, as ``IMAGE_DTYPE``.

    ``contrast`` is ``IFFT(Σ CTF · FFT(φ))``; the crowders' mean went through the CTF's zero frequency
    (``-zero_frequency_ctf``: ``-A``, or -1 without a CTF) and is given back (see the module docstring).
    """
    path = ice_path_length_angstrom(phantom, g)
    uniform = _uniform_crowder_phase(phantom, path, voltage_kv=microscope.voltage_kv)
    contrast *= np.float32(2.0)
    contrast += np.float32(1.0 + 2.0 * uniform * zero_frequency_ctf)
    contrast *= np.float32(math.exp(-path / ice_mean_free_path_angstrom))
    return np.maximum(contrast, 0.0, out=contrast).astype(IMAGE_DTYPE, copy=False)
