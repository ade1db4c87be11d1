"""CTF estimation of tilt series: tomoprep against teamtomo's torch-ctf-estimation on the same tilts.

Simulates tilt series with tomoprep's simulator (``simulate_session``: particles and crowders in 1200-3000 Å
of ice, Poisson noise at 3 e⁻/Å² per tilt, 800 Å of astigmatism, a defocus gradient across each tilted image),
``DETECTOR_PX``² at 2 Å per pixel, and runs on each, one after the other in one process with the same number
of threads:

- tomoprep ``fit_series`` (every tilt with the specimen's defocus gradient, the hand, a shared astigmatism;
  search 0.5-8 µm) on the true axis and tilts;
- torch-ctf-estimation's ``estimate_ctf`` on each tilt alone (one defocus per image: ``defocus_grid_resolution
  (1, 1, 1)``, astigmatism fitted, 30-5 Å, 256-px patches, search 0.5-8 µm, its default working pixel of 3 Å).

The peer is optional (``pip install '.[bench]'``): without it only tomoprep runs, and the table says why.
torchvision, which the peer imports for one Gaussian blur of its 2-D background, has no wheel for a CPU-only
torch on PyPI (its wheels link against CUDA torch); where it cannot be imported, a Gaussian blur written here
with the same definition (normalised separable kernel of the given size and σ, reflected edges) is put in its
place, and the table says so.

Scores, against the simulation's truth: the error of each tilt's mean defocus ``(U + V) / 2`` relative to the
true defocus at the tilt's centre on the specimen's mid-plane (RMS and largest over the tilts), the astigmatism
angle's error where the truth's ``U - V`` is at least 0.05 µm (median over tilts), and the wall time per tilt
(tomoprep: the whole series fit divided by its tilts; the peer: the mean of its calls). Timings on a busy
machine are rough.

    python benchmarks/ctf.py --quick          # 1 series of 7 tilts
    python benchmarks/ctf.py                  # 3 series of 13 tilts
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine

THREADS = 2
DETECTOR_PX = 1024
PIXEL_SPACING_ANGSTROM = 2.0
DEFOCUS_RANGE_UM = (0.5, 8.0)
MIN_ASTIGMATISM_ANGSTROM = 500.0


@dataclass(frozen=True)
class Case:
    """One simulated series: axis (degrees), defocus range (µm), hand, seed."""

    axis_deg: float
    defocus_um: tuple[float, float]
    hand: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.axis_deg:+.0f}° {self.defocus_um[0]:g}-{self.defocus_um[1]:g} µm {self.hand:+d}"


FULL = (Case(85.0, (1.5, 2.5), 1, 1), Case(-95.0, (3.0, 4.0), -1, 2), Case(178.0, (5.0, 6.0), 1, 3))
QUICK = (Case(85.0, (2.0, 3.0), 1, 1),)


@dataclass(frozen=True)
class Series:
    """Tilt images, tilt angles (degrees), truths and the optics of one simulated series."""

    images: list[np.ndarray]
    tilts_deg: np.ndarray
    axis_deg: float
    defocus_angstrom: np.ndarray
    astigmatism_angstrom: np.ndarray
    astigmatism_angle_deg: np.ndarray
    order: np.ndarray
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float


def simulate(case: Case, n_tilts: int, folder: Path) -> Series:
    """One series of ``n_tilts`` tilts, 10° apart from -60°."""
    from tomoprep.io.mrc import read_mrc
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session

    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, n_tilts=n_tilts,
        tilt_step_deg=120.0 / (n_tilts - 1), detector_size_px=DETECTOR_PX,
        pixel_spacing_angstrom=PIXEL_SPACING_ANGSTROM,
        dose_per_tilt_e_per_angstrom2=3.0, defocus_min_um=case.defocus_um[0], defocus_max_um=case.defocus_um[1],
        astigmatism_angstrom=800.0, hand=case.hand, tilt_axis_angle_deg=case.axis_deg, seed=case.seed,
    )  # fmt: skip
    series = simulate_session(folder, params).tilt_series[0]
    stack = read_mrc(folder / series.stack)  # type: ignore[operator]
    tilts = sorted(series.tilts, key=lambda t: t.stack_index)
    return Series(
        images=[np.asarray(image, dtype=np.float32) for image in stack],
        tilts_deg=np.array([t.true_tilt_deg for t in tilts]), axis_deg=series.true_tilt_axis_deg,
        defocus_angstrom=np.array([series.mid_plane_defocus_angstrom(t) for t in tilts]),
        astigmatism_angstrom=np.array([t.defocus_u_angstrom - t.defocus_v_angstrom for t in tilts]),
        astigmatism_angle_deg=np.array([t.astigmatism_angle_deg for t in tilts]),
        order=np.array([t.acquisition_index for t in tilts]), voltage_kv=series.voltage_kv, cs_mm=series.cs_mm,
        amplitude_contrast=series.amplitude_contrast,
    )  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """Per tilt: mean defocus (Å), astigmatism angle (degrees); wall seconds per tilt."""

    defocus_angstrom: np.ndarray
    astigmatism_angle_deg: np.ndarray
    seconds_per_tilt: float


def run_tomoprep(series: Series) -> Estimate:
    from tomoprep.algorithms.ctf_series import fit_series
    from tomoprep.algorithms.ctf_spectrum import Optics

    optics = Optics(series.voltage_kv, series.cs_mm, series.amplitude_contrast, PIXEL_SPACING_ANGSTROM)
    start = time.perf_counter()
    result = fit_series(series.images, series.tilts_deg, axis_deg=series.axis_deg, optics=optics,
                        defocus_range_angstrom=tuple(1e4 * d for d in DEFOCUS_RANGE_UM),
                        acquisition_order=series.order)  # fmt: skip
    seconds = time.perf_counter() - start
    return Estimate(np.array([f.defocus_angstrom for f in result.fits]),
                    np.array([f.astigmatism_angle_deg for f in result.fits]), seconds / len(series.images))  # fmt: skip


def _gaussian_blur(image: torch.Tensor, kernel_size: int | list[int], sigma: float | list[float]) -> torch.Tensor:
    """A Gaussian blur of ``(..., h, w)`` images: normalised separable kernel, reflected edges."""
    size = kernel_size if isinstance(kernel_size, int) else int(kernel_size[0])
    spread = float(sigma if isinstance(sigma, int | float) else sigma[0])
    x = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / spread) ** 2)
    kernel = kernel / kernel.sum()
    shape = image.shape
    flat = image.reshape(-1, 1, shape[-2], shape[-1])
    flat = torch.nn.functional.pad(flat, (size // 2, size // 2, size // 2, size // 2), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, 1, size))
    flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, size, 1))
    return flat.reshape(shape)


def load_peer() -> tuple[object | None, str]:
    """torch-ctf-estimation, or None, and a note on how it was loaded (or why not)."""
    note = ""
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception as error:  # a torchvision built for CUDA torch fails with RuntimeError or OSError
        functional = types.ModuleType("torchvision.transforms.functional")
        functional.gaussian_blur = _gaussian_blur  # type: ignore[attr-defined]
        transforms = types.ModuleType("torchvision.transforms")
        transforms.functional = functional  # type: ignore[attr-defined]
        package = types.ModuleType("torchvision")
        package.transforms = transforms  # type: ignore[attr-defined]
        for name, module in (("torchvision", package), ("torchvision.transforms", transforms),
                             ("torchvision.transforms.functional", functional)):  # fmt: skip
            sys.modules[name] = module
        note = f"torchvision unusable ({type(error).__name__}): its gaussian_blur replaced by this script's"
    try:
        import torch_ctf_estimation
    except ImportError as error:
        return None, f"torch-ctf-estimation not installed ({error}); pip install '.[bench]'"
    version = getattr(torch_ctf_estimation, "__version__", "?")
    return torch_ctf_estimation, f"torch-ctf-estimation {version}" + (f"; {note}" if note else "")


def run_peer(peer, series: Series) -> Estimate:  # peer: the optional torch_ctf_estimation module
    optical = peer.OpticalParams(pixel_spacing_angstroms=PIXEL_SPACING_ANGSTROM, voltage_kev=series.voltage_kv,
                                 spherical_aberration_mm=series.cs_mm,
                                 amplitude_contrast_fraction=series.amplitude_contrast)  # fmt: skip
    fitting = peer.CTFFittingParams(defocus_grid_resolution=(1, 1, 1), frequency_fit_range_angstroms=(30.0, 5.0),
                                    defocus_range_microns=DEFOCUS_RANGE_UM)  # fmt: skip
    defocus, angle, seconds = [], [], 0.0
    for image in series.images:
        start = time.perf_counter()
        _, _, result = peer.estimate_ctf(torch.from_numpy(image), optical, fitting, device=torch.device("cpu"))
        seconds += time.perf_counter() - start
        defocus.append(0.5 * (float(result.defocus_u) + float(result.defocus_v)) * 1e4)  # µm to Å
        angle.append(float(result.astigmatism_angle))
    return Estimate(np.array(defocus), np.array(angle), seconds / len(series.images))


def _angle_error_deg(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs((estimate - truth + 90.0) % 180.0 - 90.0)


def scores(series: Series, estimate: Estimate) -> str:
    relative = (estimate.defocus_angstrom - series.defocus_angstrom) / series.defocus_angstrom
    astigmatic = series.astigmatism_angstrom >= MIN_ASTIGMATISM_ANGSTROM
    angle = _angle_error_deg(estimate.astigmatism_angle_deg, series.astigmatism_angle_deg)[astigmatic]
    rms, largest = 100 * math.sqrt(float(np.mean(relative**2))), 100 * float(np.abs(relative).max())
    median_angle = f"{float(np.median(angle)):5.1f}" if angle.size else "    —"
    return f"{rms:6.2f} {largest:7.2f} {median_angle:>8} {estimate.seconds_per_tilt:7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one series of 7 tilts")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    peer, note = load_peer()
    cases, n_tilts = (QUICK, 7) if args.quick else (FULL, 13)
    print(describe_machine(THREADS, packages=note))
    print(f"{DETECTOR_PX}² at {PIXEL_SPACING_ANGSTROM} Å/px, {n_tilts} tilts of ±60° per series, 3 e⁻/Å²")
    print(f"{'series':24} {'method':22} {'RMS %':>6} {'max %':>7} {'angle °':>8} {'s/tilt':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            series = simulate(case, n_tilts, Path(tmp) / f"series_{i}")
            print(f"{case.label:24} {'tomoprep':22} {scores(series, run_tomoprep(series))}", flush=True)
            if peer is None:
                print(f"{'':24} {'torch-ctf-estimation':22} not run: {note}", flush=True)
            else:
                print(f"{'':24} {'torch-ctf-estimation':22} {scores(series, run_peer(peer, series))}", flush=True)


if __name__ == "__main__":
    main()
