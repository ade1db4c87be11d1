"""Tomogram reconstruction: tomoprep against ASTRA's CPU FBP and teamtomo's torch-reconstruct-tomogram.

A phantom of Gaussian blobs (seven sigmas 1.5-3 px, peak densities 0.5-1.5) in a slab 60 % of the tomogram's depth is
projected exactly (each blob's line integral, a 2-D Gaussian) into 41 tilts of ±60° in 3° steps, with RELION 5's
projection model and the tilt axis along the image Y axis, no shifts: the stack is already aligned, so every
method gets the same images and the same geometry. Then, one after the other in one process with the same
number of threads:

- tomoprep ``reconstruct_tomogram`` (weighted back projection, ramp filter);
- ASTRA's CPU ``FBP`` (Ram-Lak), slice by slice: one 2-D parallel-beam reconstruction per image row;
- torch-reconstruct-tomogram's ``reconstruct_tomogram`` (Fourier insertion of patches, its default
  preprocessing), the stack read from an MRC file as it requires.

The peers are optional (``pip install tomoprep[bench]``; ASTRA's wheel loads the CUDA runtime and cuFFT
libraries of its ``nvidia-*`` dependencies even for its CPU algorithms, no GPU needed): a missing one is reported
and skipped. Scores:

- seconds: wall time of the call (writing the MRC file for teamtomo's not counted);
- peak MiB: how far the process's resident memory rose during the call (Linux's high-water mark, reset before),
  after a first call on a 32² stack (thread pools, kernels) for tomoprep and ASTRA; teamtomo's smallest call
  (one 192-voxel patch, Fourier-padded to 384³) costs as much as a measured one, so it is not warmed up;
- corr: Pearson correlation with the phantom sampled on the voxels, over a central box of a quarter of the width
  and height and the whole depth; "mirror" is the correlation with the phantom turned upside down (z → −z), which
  exceeds "corr" only for a mirrored tomogram.

    python benchmarks/reconstruct.py --small    # 41 tilts of 256² into 256 × 256 × 64
    python benchmarks/reconstruct.py            # 41 tilts of 1024² into 1024 × 1024 × 256
    python benchmarks/reconstruct.py --methods tomoprep astra   # leave a method out
    python benchmarks/reconstruct.py --from-4k  # tomoprep alone: 41 tilts of 4096², bin 4, into 1024² × 300

``--from-4k`` times the whole way from full-size images to a bin-4 tomogram (images of noise: only the time and
memory are of interest): ``bin_images`` image by image, then ``reconstruct_tomogram`` (tilt axis 85°, shifts,
x-tilt 0) writing into an ``mrcfile.new_mmap`` on disk.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine

THREADS = 2
TILTS_DEG = [-60.0 + 3.0 * i for i in range(41)]
WINDOW_SIGMAS = 4.0


def make_phantom(size: int, depth: int, seed: int = 0) -> np.ndarray:
    """``(m, 5)`` blobs: ``x, y, z`` px from the volume centre, sigma px, peak density."""
    rng = np.random.default_rng(seed)
    count = int(0.004 * size * size * depth * 0.6 / 3.0)
    xy = rng.uniform(-0.48 * size, 0.48 * size, (count, 2))
    z = rng.uniform(-0.3 * depth, 0.3 * depth, count)
    sigmas = rng.choice(np.linspace(1.5, 3.0, 7), count)  # a few sigmas, so that blobs are drawn in bulk
    return np.column_stack([xy, z, sigmas, rng.uniform(0.5, 1.5, count)])


def _splat(shape: tuple[int, ...], centres: np.ndarray, sigmas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of Gaussians ``weight exp(-r² / 2 sigma²)`` on a grid of ``shape`` (centres in index units, last axis
    first: ``(x, y[, z])``), each within ``WINDOW_SIGMAS`` sigmas of its centre."""
    out = np.zeros(int(np.prod(shape)))
    dims = len(shape)
    for sigma in np.unique(sigmas):
        pick = sigmas == sigma
        radius = math.ceil(WINDOW_SIGMAS * sigma)
        offsets = np.arange(-radius, radius + 1)
        for start in range(0, int(pick.sum()), 2000):
            c, w = centres[pick][start : start + 2000], weights[pick][start : start + 2000]
            nearest = np.rint(c).astype(np.int64)
            factors = [np.exp(-((offsets[None] + nearest[:, k : k + 1] - c[:, k : k + 1]) ** 2) / (2 * sigma**2))
                       for k in range(dims)]  # fmt: skip
            values, index = w.reshape(-1, *([1] * dims)), np.zeros((len(c),) + (1,) * dims, dtype=np.int64)
            keep = np.ones((len(c),) + (offsets.size,) * dims, dtype=bool)
            stride = 1
            for k in range(dims):  # k = 0 is x, the last array axis
                view = [len(c)] + [1] * dims
                view[dims - k] = offsets.size
                position = (nearest[:, k, None] + offsets[None]).reshape(view)
                values = values * factors[k].reshape(view)
                keep = keep & (position >= 0) & (position < shape[dims - 1 - k])
                index = index + position * stride
                stride *= shape[dims - 1 - k]
            values, index = np.broadcast_to(values, keep.shape), np.broadcast_to(index, keep.shape)
            out += np.bincount(index[keep], weights=values[keep], minlength=out.size)
    return out.reshape(shape)


def project(blobs: np.ndarray, size: int) -> np.ndarray:
    """The aligned stack ``(41, size, size)`` float32: ``u = x cos t + z sin t``, ``v = y`` (RELION 5, axis 0°)."""
    stack = np.empty((len(TILTS_DEG), size, size), dtype=np.float32)
    weights = blobs[:, 4] * blobs[:, 3] * math.sqrt(2 * math.pi)
    for i, tilt in enumerate(np.radians(TILTS_DEG)):
        u = blobs[:, 0] * math.cos(tilt) + blobs[:, 2] * math.sin(tilt) + size // 2
        stack[i] = _splat((size, size), np.column_stack([u, blobs[:, 1] + size // 2]), blobs[:, 3], weights)
    return stack


def truth_box(blobs: np.ndarray, size: int, depth: int, *, mirrored: bool = False) -> np.ndarray:
    """The phantom on the voxels of the central box (quarter width and height, whole depth), ``(z, y, x)``."""
    half = size // 8
    centre = np.array([half, half, depth // 2], dtype=float)
    z_sign = -1.0 if mirrored else 1.0
    inside = np.all(np.abs(blobs[:, :2]) < half + 4 * blobs[:, 3:4], axis=1)
    chosen = blobs[inside]
    centres = chosen[:, :3] * np.array([1.0, 1.0, z_sign]) + centre
    return _splat((depth, 2 * half, 2 * half), centres, chosen[:, 3], chosen[:, 4])


def box_of(volume: np.ndarray, size: int) -> np.ndarray:
    half = size // 8
    return volume[:, size // 2 - half : size // 2 + half, size // 2 - half : size // 2 + half]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def run_tomoprep(stack: np.ndarray, depth: int) -> np.ndarray:
    from tomoprep.algorithms.reconstruction import TiltProjection, reconstruct_tomogram

    projections = [TiltProjection(t, 0.0) for t in TILTS_DEG]
    return reconstruct_tomogram(torch.from_numpy(stack), projections, thickness_px=depth).numpy()


def run_astra(stack: np.ndarray, depth: int) -> np.ndarray:
    import astra

    _, ny, nx = stack.shape
    vol_geom = astra.create_vol_geom(depth, nx)
    # ASTRA's angle is the tilt with its sign turned: a probe point at (x, z) comes back at column x, row z
    # (rows = z growing with the row index, as tomoprep's) only with θ = -t. ASTRA's centre of an even size lies
    # half a pixel before tomoprep's N // 2.
    proj_geom = astra.create_proj_geom("parallel", 1.0, nx, -np.radians(TILTS_DEG))
    projector = astra.create_projector("linear", proj_geom, vol_geom)
    volume = np.empty((depth, ny, nx), dtype=np.float32)
    for y in range(ny):
        sinogram = astra.data2d.create("-sino", proj_geom, stack[:, y, :])
        slice_id = astra.data2d.create("-vol", vol_geom)
        config = astra.astra_dict("FBP")
        config.update(ProjectionDataId=sinogram, ReconstructionDataId=slice_id, ProjectorId=projector)
        config["option"] = {"FilterType": "ram-lak"}
        algorithm = astra.algorithm.create(config)
        astra.algorithm.run(algorithm)
        volume[:, y, :] = astra.data2d.get(slice_id)
        astra.algorithm.delete(algorithm)
        astra.data2d.delete([sinogram, slice_id])
    astra.projector.delete(projector)
    return volume


def run_teamtomo(stack: np.ndarray, depth: int, path: Path) -> np.ndarray:
    from torch_reconstruct_tomogram import reconstruct_tomogram
    from torch_tilt_series import TiltSeries

    n, ny, nx = stack.shape
    series = TiltSeries(tilt_angles=torch.tensor(TILTS_DEG), tilt_axis_angle=torch.zeros(n),
                        sample_translations=torch.zeros(n, 2), image_path=path, pixel_spacing=1.0)  # fmt: skip
    return reconstruct_tomogram(series, volume_shape=(depth, ny, nx), sidelength=128, batch_size=8).numpy()


def _resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(call: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    """The call's result, wall seconds and peak resident growth (MiB; NaN where Linux's counters are missing)."""
    clear = Path("/proc/self/clear_refs")
    can_reset = clear.exists()
    if can_reset:
        clear.write_text("5")
    start_kib = _resident_kib("VmRSS")
    began = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - began
    peak = (_resident_kib("VmHWM") - start_kib) / 1024 if can_reset else float("nan")
    return result, seconds, peak


def from_4k(depth: int = 300) -> None:
    """Time binning 41 tilts of 4096² by 4 and reconstructing them into 1024 × 1024 × ``depth`` (module notes)."""
    import mrcfile

    from tomoprep.algorithms.binning import bin_images
    from tomoprep.algorithms.reconstruction import TiltProjection, reconstruct_tomogram

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(len(TILTS_DEG), 4096, 4096, generator=generator)
    projections = [TiltProjection(t, 85.0, 0.0, 3.0 * math.sin(t), -2.0) for t in TILTS_DEG]

    def binned() -> np.ndarray:
        return torch.stack([bin_images(image, 4) for image in images]).numpy()

    small, bin_seconds, bin_peak = measure(binned)
    stack = torch.from_numpy(small)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tomogram.mrc"
        with mrcfile.new_mmap(path, shape=(depth, 1024, 1024), mrc_mode=2) as mrc:
            _, seconds, peak = measure(
                lambda: reconstruct_tomogram(stack, projections, thickness_px=depth, out=mrc.data).numpy()
            )
    print(f"41 tilts of 4096² (input {images.numel() * 4 / 2**30:.1f} GiB), bin 4, into 1024 × 1024 × {depth}")
    print(f"{'stage':<28} {'seconds':>8} {'peak MiB':>9}")
    print(f"{'bin_images (per image)':<28} {bin_seconds:>8.1f} {bin_peak:>9.0f}")
    print(f"{'reconstruct_tomogram':<28} {seconds:>8.1f} {peak:>9.0f}")
    print(f"{'total':<28} {bin_seconds + seconds:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="41 tilts of 256² into 256 × 256 × 64")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--methods", nargs="+", default=["tomoprep", "astra", "teamtomo"],
                        choices=["tomoprep", "astra", "teamtomo"], help="which methods to run")  # fmt: skip
    parser.add_argument("--from-4k", action="store_true", help="tomoprep alone: 4096², bin 4, into 1024² × 300")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.from_4k:
        print(describe_machine(args.threads))
        from_4k()
        return
    size, depth = (256, 64) if args.small else (1024, 256)
    print(describe_machine(args.threads))
    blobs = make_phantom(size, depth)
    stack = project(blobs, size)
    truth, mirror = truth_box(blobs, size, depth), truth_box(blobs, size, depth, mirrored=True)
    print(f"41 tilts ±60° of {size}² into {size} × {size} × {depth}; {len(blobs)} blobs\n")
    print(f"{'method':<28} {'seconds':>8} {'peak MiB':>9} {'corr':>6} {'mirror':>7}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stack.mrc"
        import mrcfile

        mrcfile.write(path, stack, voxel_size=1.0)
        tiny = np.ascontiguousarray(stack[:, size // 2 - 16 : size // 2 + 16, size // 2 - 16 : size // 2 + 16])
        methods = {
            "tomoprep": ("tomoprep (WBP, ramp)", run_tomoprep, True),
            "astra": ("astra-toolbox (CPU FBP)", run_astra, True),
            "teamtomo": ("torch-reconstruct-tomogram", lambda s, d: run_teamtomo(s, d, path), False),
        }
        for key in args.methods:
            name, run, warm_up = methods[key]
            try:
                if warm_up:
                    run(tiny, 8)
                volume, seconds, peak = measure(lambda run=run: run(stack, depth))
            except ImportError as error:
                if error.name:  # the package itself or one of its dependencies is missing
                    print(f"{name:<28} not run: module {error.name} is not installed (pip install tomoprep[bench])")
                else:  # e.g. ASTRA's wheel without the CUDA runtime libraries on the library path
                    print(f"{name:<28} not run: cannot be imported ({error})")
                continue
            box = box_of(volume, size)
            print(f"{name:<28} {seconds:>8.1f} {peak:>9.0f} {correlation(box, truth):>6.3f} "
                  f"{correlation(box, mirror):>7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
