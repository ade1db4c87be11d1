"""CTF correction of tilt images before reconstruction: phase flipping or a Wiener filter, with the defocus
following the tilted specimen.

Sign
    The images carry the CTF ``-sin(χ + asin A + φ)`` (RELION's, :mod:`tomoprep.simulate.ctf`, ``docs/ctf.md``),
    with ``χ`` from :meth:`.ctf_spectrum.Optics.aberration_phase_rad`. The correction uses its negative,
    ``c = sin(χ + asin A + φ)``, positive at low frequency (as :mod:`tomoprep.algorithms.deconvolution` does):
    phase flipping multiplies each frequency by ``sign(c)``, which is ``+1`` below the first zero, so the images'
    low-frequency contrast (dense matter dark) is kept and the bands beyond each zero are turned to match it. The
    Wiener filter multiplies by ``c / (c² + 1 / snr)``. The zero frequency (the mean intensity, not transferred
    through the CTF) is left as it is.
Defocus across the image
    As in :mod:`tomoprep.algorithms.defocus_gradient`: a specimen point at depth ``z'`` is imaged at defocus
    ``centre + hand · z'``. For a flat specimen through its centre, the image point ``r`` (Å from the projected
    specimen centre, the image's centre pixel ``N // 2`` plus the tilt's shift) has ``z' = g · r`` with
    ``g = -(R[0,2], R[1,2]) / R[2,2]``, ``R = Rz(z_rot) Ry(y_tilt) Rx(x_tilt)``; without x-tilt
    ``g = -tan(tilt) (cos axis, sin axis)``, across the tilt axis. ``TiltDefocus`` holds the defocus at that
    centre.
Strips
    Lines of equal defocus run along the tilt axis. Strip centres lie every ``δ`` of defocus
    (``defocus_step_angstrom``, so every ``δ / (|g| · pixel)`` pixels across the axis: narrower the steeper the
    tilt). Each strip's correction is the whole (padded) image's spectrum times the filter at the strip's defocus;
    each pixel takes the two strips around its own defocus, weighted linearly (weights that sum to 1). As in
    IMOD's ``ctfphaseflip``, what sets the accuracy is the spacing of the strips' centres, not the width of the
    region transformed: a pixel's correction is that of a defocus at most ``δ`` from its own. The default ``δ``
    is ``1 / (8 λ k_N²)`` (``k_N`` the Nyquist frequency): two neighbouring strips then disagree on the sign of
    the CTF on at most an eighth of the frequencies at Nyquist (the fraction is ``λ δ k²``), and less below it.
Padding
    Images are mirrored out by the CTF's delocalisation ``λ Δf k + Cs λ³ k³`` at the spectrum's corner
    (``k = √2 k_N``; the largest distance a feature's fringes reach), so no fringe wraps round from the opposite
    edge.
Limits
    Within about that distance of an edge the correction stays incomplete whatever the padding: the fringes of
    what lies beyond the image are in it, those of what lies near its edge are not. And a correction by strips
    gives a feature's fringes the defocus of where they land, not that of the feature, which lies up to that
    distance away: at steep tilts the defocus is off by up to ``|g|`` times it (``docs/reconstruct.md`` gives the
    figures); only a correction in 3-D removes that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import scipy.fft
import torch

from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.fourier import rfft_frequencies
from tomoprep.algorithms.reconstruction import TiltProjection
from tomoprep.algorithms.tilt_geometry import projection_rotation

Mode = Literal["phase_flip", "wiener"]
#: Default SNR of the Wiener filter: no frequency is amplified by more than ``sqrt(snr) / 2`` (1.6), and
#: frequencies where ``|c| ≥ 0.5`` are restored to at least 70 % of their amplitude.
DEFAULT_WIENER_SNR = 10.0
#: Default strip spacing in defocus: ``1 / (STEP_FRACTION · λ k_N²)``.
_STEP_FRACTION = 8.0
#: Largest number of pixels in one batch of corrected strips (bounds the memory: about 16 bytes a pixel).
_BATCH_VALUES = 1 << 25
#: Tilts whose specimen normal is within this cosine of perpendicular to the beam have no defined depth.
_MIN_COS_TILT = 1e-3


@dataclass(frozen=True)
class TiltDefocus:
    """The defocus of one tilt at its centre (the projected specimen centre), as ``model.TiltCtf`` stores it.

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom
        Defocus along U and V, Å, positive = underfocus (``rlnDefocusU/V``).
    astigmatism_angle_deg
        Angle from image X (array columns) towards image Y (rows) to U, degrees (``rlnDefocusAngle``).
    phase_shift_deg
        Phase-plate shift, degrees (``rlnPhaseShift``).
    """

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    phase_shift_deg: float = 0.0

    def __post_init__(self) -> None:
        values = (self.defocus_u_angstrom, self.defocus_v_angstrom, self.astigmatism_angle_deg, self.phase_shift_deg)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"defocus U, V, astigmatism angle and phase shift must be finite numbers, got {values}")


def depth_gradient(projection: TiltProjection) -> tuple[float, float]:
    """``g = (g_x, g_y)``: the depth (Å) of the flat specimen per Å of image position from its projected centre.

    Raises
    ------
    ValueError
        When the tilt leaves the specimen edge-on to the beam (no depth is defined).
    """
    rotation = projection_rotation(y_tilt_deg=projection.y_tilt_deg, z_rot_deg=projection.z_rot_deg,
                                   x_tilt_deg=projection.x_tilt_deg).numpy()  # fmt: skip
    if abs(rotation[2, 2]) < _MIN_COS_TILT:
        raise ValueError(f"a tilt of {projection.y_tilt_deg}° (x-tilt {projection.x_tilt_deg}°) leaves the specimen "
                         "edge-on to the beam: its defocus across the image is undefined")  # fmt: skip
    return -float(rotation[0, 2] / rotation[2, 2]), -float(rotation[1, 2] / rotation[2, 2])


def defocus_offset_map(
    shape_yx: tuple[int, int], projection: TiltProjection, *, hand: int, pixel_spacing_angstrom: float
) -> torch.Tensor:
    """``hand · z'`` at every pixel (Å): what the defocus there adds to the tilt's centre defocus, ``(ny, nx)``."""
    g_x, g_y = depth_gradient(projection)
    ny, nx = shape_yx
    x = torch.arange(nx, dtype=torch.float64) - (nx // 2 + projection.shift_x_px)
    y = torch.arange(ny, dtype=torch.float64) - (ny // 2 + projection.shift_y_px)
    return hand * pixel_spacing_angstrom * (g_x * x[None, :] + g_y * y[:, None])


def default_defocus_step_angstrom(optics: Optics) -> float:
    """``1 / (8 λ k_N²)`` (Å): the default defocus between neighbouring strip centres (module notes)."""
    nyquist = 0.5 / optics.pixel_spacing_angstrom
    return 1.0 / (_STEP_FRACTION * optics.wavelength_angstrom * nyquist**2)


def delocalisation_px(optics: Optics, defocus_angstrom: float) -> int:
    """How far (pixels, rounded up) the CTF moves a feature's fringes: ``λ |Δf| k + Cs λ³ k³`` at the spectrum's
    corner, ``k = √2 k_N``."""
    k = math.sqrt(2.0) * 0.5 / optics.pixel_spacing_angstrom
    lam = optics.wavelength_angstrom
    reach = lam * abs(defocus_angstrom) * k + optics.cs_mm * 1e7 * lam**3 * k**3
    return math.ceil(reach / optics.pixel_spacing_angstrom)


def _padded_shape(shape_yx: tuple[int, int], padding_px: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` mirror padding of at least ``padding_px`` (less than the image), to a size
    with small prime factors; none at all for ``padding_px = 0``."""
    pads = []
    for n in shape_yx:
        before = min(padding_px, n - 1)
        total = scipy.fft.next_fast_len(n + 2 * before, real=True) if before > 0 else n
        pads += [before, min(total - n - before, n - 1)]
    return pads[0], pads[1], pads[2], pads[3]


def _transfer_terms(
    shape_yx: tuple[int, int], optics: Optics, defocus: TiltDefocus, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``base = χ + asin A + φ`` at the centre defocus (astigmatic) and ``slope = ∂χ/∂Δf`` (rad/Å) on the rfft2
    grid of ``shape_yx``, float32 ``(ny, nx // 2 + 1)``: the filter's argument at a defocus offset ``o`` is
    ``base + o · slope``."""
    k_y, k_x = rfft_frequencies(shape_yx, pixel_spacing_angstrom=optics.pixel_spacing_angstrom, device=device)
    k_y, k_x = k_y.double(), k_x.double()
    k2 = k_x * k_x + k_y * k_y
    mean = 0.5 * (defocus.defocus_u_angstrom + defocus.defocus_v_angstrom)
    half = 0.5 * (defocus.defocus_u_angstrom - defocus.defocus_v_angstrom)
    angle = math.radians(defocus.astigmatism_angle_deg)
    # (U - V)/2 · cos 2(θ - angle) · k², θ from X towards Y, written without atan2.
    astigmatic = half * ((k_x * k_x - k_y * k_y) * math.cos(2 * angle) + 2 * k_x * k_y * math.sin(2 * angle))
    directional = mean + torch.where(k2 > 0, astigmatic / torch.where(k2 > 0, k2, 1.0), 0.0)
    base = optics.aberration_phase_rad(k2, directional)
    base = base + optics.amplitude_phase_rad + math.radians(defocus.phase_shift_deg)
    slope = optics.aberration_phase_rad(k2, 1.0) - optics.aberration_phase_rad(k2, 0.0)
    return base.float(), slope.float()


def _filters(argument: torch.Tensor, *, mode: Mode, wiener_snr: float) -> torch.Tensor:
    """The correction at CTF arguments ``argument`` (rad, any shape), the zero frequency (index ``[..., 0, 0]``)
    set to 1."""
    ctf = torch.sin(argument)
    factor = torch.sign(ctf) if mode == "phase_flip" else ctf / (ctf * ctf + 1.0 / wiener_snr)
    factor[..., 0, 0] = 1.0
    return factor


def correct_ctf(
    images: torch.Tensor,
    projections: Sequence[TiltProjection],
    defoci: Sequence[TiltDefocus],
    *,
    pixel_spacing_angstrom: float,
    voltage_kv: float,
    spherical_aberration_mm: float,
    amplitude_contrast: float,
    hand: int,
    mode: Mode = "phase_flip",
    wiener_snr: float = DEFAULT_WIENER_SNR,
    defocus_step_angstrom: float | None = None,
    padding_px: int | None = None,
) -> torch.Tensor:
    """Correct each tilt image for the CTF at the defocus of each point of the tilted specimen.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images in their own (unaligned) frame, on the device to compute on.
    projections
        ``(n,)`` each image's geometry (tilt axis, tilts, shifts in pixels of these images).
    defoci
        ``(n,)`` each tilt's defocus at its centre (the projected specimen centre).
    pixel_spacing_angstrom
        Pixel spacing of the images, Å.
    voltage_kv, spherical_aberration_mm, amplitude_contrast
        Optics: kV, mm, fraction.
    hand
        ``+1`` or ``-1`` (``rlnTomoHand``, as in :mod:`tomoprep.algorithms.defocus_gradient`): a point at depth
        ``z'`` is at defocus ``centre + hand · z'``.
    mode
        ``"phase_flip"``: multiply by ``sign(c)``; ``"wiener"``: by ``c / (c² + 1 / wiener_snr)``
        (``c = sin(χ + asin A + φ)``, module notes).
    wiener_snr
        The spectral signal-to-noise ratio the Wiener filter assumes (> 0), the same at all frequencies.
    defocus_step_angstrom
        Defocus between neighbouring strip centres, Å (> 0); default ``1 / (8 λ k_N²)`` (module notes).
    padding_px
        Mirror padding on each side, pixels (less than the image); default the CTF's delocalisation
        (:func:`delocalisation_px`) at the tilt's largest defocus. 0 gives the periodic (unpadded) correction.

    Returns
    -------
    torch.Tensor
        ``(n, ny, nx)`` float32 corrected images, on the images' device.
    """
    optics = Optics(voltage_kv=voltage_kv, cs_mm=spherical_aberration_mm, amplitude_contrast=amplitude_contrast,
                    pixel_spacing_angstrom=pixel_spacing_angstrom)  # fmt: skip
    _check_arguments(images, projections, defoci, hand=hand, mode=mode, wiener_snr=wiener_snr,
                     defocus_step_angstrom=defocus_step_angstrom, padding_px=padding_px)  # fmt: skip
    step = default_defocus_step_angstrom(optics) if defocus_step_angstrom is None else float(defocus_step_angstrom)
    out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    for index, (projection, defocus) in enumerate(zip(projections, defoci, strict=True)):
        out[index] = _correct_image(images[index].float(), projection, defocus, optics=optics, hand=hand, mode=mode,
                                    wiener_snr=wiener_snr, step_angstrom=step, padding_px=padding_px)  # fmt: skip
    return out


def _check_arguments(
    images: torch.Tensor,
    projections: Sequence[TiltProjection],
    defoci: Sequence[TiltDefocus],
    *,
    hand: int,
    mode: str,
    wiener_snr: float,
    defocus_step_angstrom: float | None,
    padding_px: int | None,
) -> None:
    if images.ndim != 3:
        raise ValueError(f"CTF correction needs an (n, y, x) stack of tilt images, got shape {tuple(images.shape)}")
    if not images.shape[0] == len(projections) == len(defoci):
        raise ValueError(f"{images.shape[0]} tilt images need as many projections and defoci, got "
                         f"{len(projections)} and {len(defoci)}")  # fmt: skip
    if hand not in (-1, 1):
        raise ValueError(f"the defocus hand must be +1 or -1 (rlnTomoHand), got {hand}")
    if mode not in ("phase_flip", "wiener"):
        raise ValueError(f"unknown CTF correction {mode!r}: 'phase_flip' or 'wiener'")
    if not (math.isfinite(wiener_snr) and wiener_snr > 0):
        raise ValueError(f"the Wiener filter's SNR must be a positive number, got {wiener_snr}")
    if defocus_step_angstrom is not None and not (math.isfinite(defocus_step_angstrom) and defocus_step_angstrom > 0):
        raise ValueError(f"the defocus step between strips must be a positive number of Å, got {defocus_step_angstrom}")
    if padding_px is not None and padding_px < 0:
        raise ValueError(f"the padding must be 0 or more pixels, got {padding_px}")


def _correct_image(
    image: torch.Tensor,
    projection: TiltProjection,
    defocus: TiltDefocus,
    *,
    optics: Optics,
    hand: int,
    mode: Mode,
    wiener_snr: float,
    step_angstrom: float,
    padding_px: int | None,
) -> torch.Tensor:
    """One ``(ny, nx)`` image corrected strip by strip (module notes), float32."""
    ny, nx = image.shape
    offsets = defocus_offset_map((ny, nx), projection, hand=hand,
                                 pixel_spacing_angstrom=optics.pixel_spacing_angstrom)  # fmt: skip
    position = (offsets / step_angstrom).to(device=image.device, dtype=torch.float32)
    first, last = math.floor(float(offsets.min()) / step_angstrom), math.ceil(float(offsets.max()) / step_angstrom)
    if padding_px is None:
        largest = max(abs(defocus.defocus_u_angstrom), abs(defocus.defocus_v_angstrom)) + float(offsets.abs().max())
        padding_px = delocalisation_px(optics, largest) + 2
    top, bottom, left, right = _padded_shape((ny, nx), padding_px)
    padded = torch.nn.functional.pad(image[None, None], (left, right, top, bottom), mode="reflect")[0, 0]
    shape = (padded.shape[0], padded.shape[1])
    spectrum = torch.fft.rfft2(padded)
    base, slope = _transfer_terms(shape, optics, defocus, image.device)
    strips = torch.arange(first, last + 1, device=image.device, dtype=torch.float32)
    out = torch.zeros((ny, nx), dtype=torch.float32, device=image.device)
    batch = max(1, _BATCH_VALUES // (shape[0] * shape[1]))
    for start in range(0, strips.numel(), batch):
        index = strips[start : start + batch]
        argument = base + (index * step_angstrom)[:, None, None] * slope
        filtered = torch.fft.irfft2(spectrum * _filters(argument, mode=mode, wiener_snr=wiener_snr), s=shape)
        corrected = filtered[:, top : top + ny, left : left + nx]
        # Linear weights between the strips around each pixel's own defocus; they sum to 1 everywhere.
        weights = torch.clamp(1.0 - (position[None] - index[:, None, None]).abs(), min=0.0)
        out += (weights * corrected).sum(dim=0)
    return out
