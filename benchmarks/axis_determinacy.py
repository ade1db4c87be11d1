"""How closely the data of independent blob stacks determine their tilt-axis angle, whatever method looks for it.

For each kind of stack (:mod:`tomoprep.simulate.blob_stack`, made without noise; 41 tilts of ±60°, 256² at
10 Å), the images are aligned with the true shifts and tilts at the true axis and at axes ``δ`` off, and the
least-squares specimen of a slab as deep as the stack's slab and 6 px is fitted to each
(:func:`tomoprep.algorithms.axis_determinacy.fit_slab`, conjugate gradients, a band of central rows). Printed:
the energy left unexplained as a fraction of the images' (``r``), and ``Δχ² = (E(δ) − E(0)) / σ²`` scaled to
the whole field at the noise the test stacks carry (as strong as the signal): below 1 the data cannot tell an
axis ``δ`` off from the true one, and ``δ / sqrt(Δχ²)`` bounds from below the spread of any estimator that
treats the specimen as unknown. A thin sheet is the control (little depth: few unknowns per row).

    python benchmarks/axis_determinacy.py            # sheet, thin, a, b; δ = 0.3 and 1°
    python benchmarks/axis_determinacy.py --quick    # sheet and a, δ = 1°, fewer rows and iterations
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import torch
from machine import describe_machine

from tomoprep.algorithms.axis_determinacy import fit_slab, slab_width_px
from tomoprep.algorithms.backprojection import shared_field_window
from tomoprep.simulate.blob_stack import BlobStackSpec, make_blob_stack

#: The stacks of tests/steps/test_align_independent.py (a, b, thin) and a 40 Å sheet.
KINDS = {
    "sheet 40 Å": BlobStackSpec(seed=1, thickness_px=4, face_width_px=0.5, helix_blobs=0),
    "thin 200 Å": BlobStackSpec(seed=3, tilt_axis_deg=30.0, stage_offset_deg=12.0, pretilt_deg=-4.0,
                                thickness_px=20),
    "a 480 Å": BlobStackSpec(seed=1),
    "b 640 Å": BlobStackSpec(seed=2, tilt_axis_deg=84.3, stage_offset_deg=-6.0, thickness_px=64),
}  # fmt: skip


def measure(spec: BlobStackSpec, offsets_deg: list[float], rows: int, iterations: int) -> dict:
    """Residual fractions at the true axis and each offset, and Δχ² scaled to the whole field."""
    stack, truth = make_blob_stack(replace(spec, noise_to_signal=0.0))
    images = torch.from_numpy(stack).double()
    signal_variance = float((stack - stack.mean(axis=(1, 2), keepdims=True)).var())
    noise_variance = (spec.noise_to_signal**2) * signal_variance
    tilts = [t + truth.pretilt_deg for t in truth.tilts_deg]
    shifts = torch.tensor(truth.shifts_px, dtype=torch.float64)
    # The depth the slab's content reaches: its faces are soft and its largest blobs stand out of it.
    nz = round(truth.thickness_px + 6 * spec.face_width_px + 2 * spec.blob_sigma_px[1])
    ny = images.shape[-2]
    field = shared_field_window(images.shape[-2:], axis_deg=truth.tilt_axis_deg, shifts_px=shifts,
                                axis_margin_deg=max(offsets_deg) + 0.5).double()  # fmt: skip
    band = slice(ny // 2 - rows // 2, ny // 2 + rows // 2)
    whole_field = float(field.sum() / field[band].sum())
    fits = {d: fit_slab(images, tilts, axis_deg=truth.tilt_axis_deg + d, shifts_px=shifts, nz=nz, field=field,
                        rows=band, iterations=iterations) for d in [0.0, *offsets_deg]}  # fmt: skip
    base = fits[0.0]
    delta_chi2 = {d: (fits[d].residual_energy - base.residual_energy) / noise_variance * whole_field
                  for d in offsets_deg}  # fmt: skip
    measurements = len(tilts) * float((field[ny // 2] > 0).sum())
    unknowns = nz * slab_width_px(field, tilts, nz)
    return {"nz": nz, "ratio": unknowns / measurements, "fits": fits, "delta_chi2": delta_chi2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kinds", nargs="*", choices=list(KINDS), default=None)
    parser.add_argument("--offsets", nargs="*", type=float, default=None, help="axis offsets tried, degrees")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    kinds = args.kinds or (["sheet 40 Å", "a 480 Å"] if args.quick else list(KINDS))
    offsets = args.offsets or ([1.0] if args.quick else [0.3, 1.0])
    rows = args.rows or (24 if args.quick else 48)
    iterations = args.iterations or (100 if args.quick else 150)
    print(f"# Axis determinacy, {describe_machine(2)}")
    print(f"# {rows} central rows, {iterations} conjugate-gradient iterations; noise as strong as the signal\n")
    header = "| stack | slab depth px | unknowns / measurements per row | r at the truth | "
    header += " | ".join(f"r at {d}° | Δχ² at {d}° | bound at {d}°" for d in offsets) + " | s |"
    print(header)
    print("|" + "---|" * (5 + 3 * len(offsets)))
    for name in kinds:
        start = time.perf_counter()
        result = measure(KINDS[name], offsets, rows, iterations)
        fits = result["fits"]
        cells = [name, str(result["nz"]), f"{result['ratio']:.2f}",
                 f"{fits[0.0].residual_energy / fits[0.0].data_energy:.2e}"]  # fmt: skip
        for d in offsets:
            chi2 = result["delta_chi2"][d]
            bound = d / math.sqrt(chi2) if chi2 > 0 else math.inf
            cells += [f"{fits[d].residual_energy / fits[d].data_energy:.2e}", f"{chi2:.1f}", f"{bound:.2f}°"]
        cells.append(f"{time.perf_counter() - start:.0f}")
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
