"""Quality-control picture of a series' CTF: defocus against tilt and acquisition order on a fixed span around the
median (tilts beyond it drawn on its edge), fit resolution per tilt, and rotational averages of a few tilts' fits.

matplotlib is imported where the figure is drawn, so that ``--help`` and ``status`` do not pay for it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomoprep.figures import one_at_a_time
from tomoprep.model import TiltImage, TiltSeries
from tomoprep.steps.ctf.spectra import radial_fit

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Half the y span of the defocus panels (µm), the same for every series so that plots compare at a glance: a
#: span fitted to the data makes a 50 nm wobble look like a jump.
DEFOCUS_HALF_SPAN_UM = 1.0
#: Tilts whose 1-D fit is drawn: those nearest these tilt angles (degrees).
PROFILE_TILTS_DEG = (0.0, 30.0, -45.0)


def _defocus_panel(ax: Axes, x: np.ndarray, defocus_um: np.ndarray, flagged: np.ndarray, xlabel: str) -> None:
    median = float(np.median(defocus_um[~flagged])) if (~flagged).any() else float(np.median(defocus_um))
    low, high = median - DEFOCUS_HALF_SPAN_UM, median + DEFOCUS_HALF_SPAN_UM
    clipped = np.clip(defocus_um, low, high)
    beyond = clipped != defocus_um
    order = np.argsort(x)
    ax.plot(x[order], clipped[order], color="0.7", lw=1, zorder=1)
    fine = ~flagged & ~beyond
    ax.plot(x[fine], defocus_um[fine], "o", ms=4, color="C0", label="fitted")
    if flagged.any():
        ax.plot(x[flagged], clipped[flagged], "x", ms=7, color="C3", label="repaired (flagged)")
    if beyond.any():
        ax.plot(x[beyond], clipped[beyond], "^", ms=8, mfc="none", color="C1", label="beyond the span")
    ax.axhline(median, color="0.5", lw=0.8, ls="--")
    ax.set_ylim(low - 0.05, high + 0.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("defocus at tilt centre (µm underfocus)")
    ax.legend(fontsize=7, loc="lower right")


def _resolution_panel(ax: Axes, angles: np.ndarray, resolution: np.ndarray, flagged: np.ndarray) -> None:
    finite = np.isfinite(resolution) & ~flagged
    ax.set_xlabel("tilt angle (°)")
    if not finite.any():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no fit resolution given", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot(angles[finite], resolution[finite], "o", ms=4, color="C0")
    for k, angle in enumerate(angles[flagged]):  # no fit of their own: marked at their tilt, not as a value
        ax.axvline(angle, color="C3", lw=1, ls="--", label="flagged: no fit of its own" if k == 0 else None)
    if flagged.any():
        ax.legend(fontsize=7)
    ax.set_ylabel("fit resolution (Å), finer up")
    ax.invert_yaxis()  # better (finer) higher


def _profiles_panel(ax: Axes, ts: TiltSeries, tilts: list[TiltImage], spectra: np.ndarray, spacing: float) -> None:
    angles = np.array([t.acquisition.nominal_tilt_angle_deg for t in tilts])
    # Tilts fitted on their own: a repaired tilt's values are the series', not a fit to its spectrum.
    fitted = np.array([t.ctf is not None and not t.ctf.flag for t in tilts])
    distance = np.where(fitted if fitted.any() else True, 0.0, np.inf)
    chosen = sorted({int(np.argmin(np.abs(angles - a) + distance)) for a in PROFILE_TILTS_DEG})
    ticks: list[float] = []
    labels: list[str] = []
    for offset, index in enumerate(chosen):
        ctf = tilts[index].ctf
        assert ctf is not None and ctf.power_spectrum_section is not None
        band = (30.0, max(ctf.fit_resolution_angstrom or 8.0, 2.2 * spacing) if math.isfinite(
            ctf.fit_resolution_angstrom or math.inf) else 8.0)  # fmt: skip
        k, data, model = radial_fit(spectra[ctf.power_spectrum_section], ctf, pixel_spacing_angstrom=spacing,
                                    voltage_kv=ts.optics.voltage_kv, cs_mm=ts.optics.spherical_aberration_mm,
                                    amplitude_contrast=ts.optics.amplitude_contrast, band_angstrom=band)  # fmt: skip
        shift = -4.0 * offset
        ax.plot(k, data + shift, color="C0", lw=0.8, label="data" if offset == 0 else None)
        ax.plot(k, model + shift, color="C3", lw=0.8, label="model" if offset == 0 else None)
        ticks.append(shift)
        labels.append(f"{angles[index] + 0.0:+.0f}°\n{ctf.defocus_angstrom / 1e4:.2f} µm")
    ax.set_xlabel("spatial frequency (1/Å), astigmatism-corrected rings")
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylabel("log power, background removed")
    ax.legend(fontsize=7, loc="upper right")


@one_at_a_time
def write_ctf_plot(
    ts: TiltSeries, path: Path, *, spectra: np.ndarray | None, pixel_spacing_angstrom: float | None
) -> None:
    """Draw ``path``: defocus against tilt and acquisition order, fit resolution, and (with ``spectra``, the
    centred log power spectra by ``power_spectrum_section``) 1-D fits of a few tilts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tilts = [t for t in ts.tilts if t.ctf is not None]
    records = [t.ctf for t in tilts if t.ctf is not None]
    angles = np.array([t.acquisition.nominal_tilt_angle_deg for t in tilts])
    orders = np.array([t.acquisition.acquisition_index for t in tilts])
    defocus = np.array([r.defocus_angstrom for r in records]) / 1e4
    flagged = np.array([bool(r.flag) for r in records])
    resolution = np.array([math.nan if r.fit_resolution_angstrom is None else r.fit_resolution_angstrom
                           for r in records])  # fmt: skip
    figure, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    _defocus_panel(axes[0, 0], angles, defocus, flagged, "tilt angle (°)")
    _defocus_panel(axes[0, 1], orders, defocus, flagged, "acquisition order")
    _resolution_panel(axes[1, 0], angles, resolution, flagged)
    if spectra is not None and pixel_spacing_angstrom is not None:
        _profiles_panel(axes[1, 1], ts, tilts, spectra, pixel_spacing_angstrom)
    else:
        axes[1, 1].axis("off")
        axes[1, 1].text(0.5, 0.5, "estimates read from a file:\nno spectra", ha="center", va="center")
    hand = ts.ctf_hand
    said = "" if hand is None else (f", hand {hand.hand:+d}" if hand.hand is not None else ", hand undetermined")
    if hand is not None and math.isfinite(hand.confidence):
        said += f" (confidence {hand.confidence:.1f})"
    figure.suptitle(f"{ts.name}: CTF of {len(tilts)} tilts{said}; defocus panels span ±{DEFOCUS_HALF_SPAN_UM:g} µm "
                    "around the median")  # fmt: skip
    figure.savefig(path, dpi=100)
    plt.close(figure)
