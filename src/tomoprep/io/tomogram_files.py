"""Tomograms and aligned tilt stacks as MRC files, with IMOD's ``.tlt`` beside a stack, as 3dmod and IMOD read them.

A tomogram is a ``(z, y, x)`` float32 volume written as MRC mode 2 with its voxel size on all three axes and the
origin at 0 (IMOD and RELION then put voxel ``(0, 0, 0)`` at the origin; the specimen centre is voxel
``N // 2`` along each axis, as in ``conventions.py``). An aligned stack is ``(n, y, x)``: one section per tilt,
shifts and tilt-axis rotation removed (the axis along Y, as IMOD's aligned ``.ali`` stacks have it), sorted by
tilt angle; its ``.tlt`` lists each section's tilt angle (degrees, IMOD's sign, RELION's ``rlnTomoYTilt``), and
an ``.xtilt`` its X tilt where some tilt has one (``io/imod_align.py``: the same sign in both programs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import mrcfile
import numpy as np

from tomoprep.io.imod import write_tilt_angles, write_xtilt
from tomoprep.io.mrc import write_mrc


def write_tomogram(path: Path, volume_zyx: np.ndarray, *, voxel_spacing_angstrom: float) -> tuple[int, int, int]:
    """Write a ``(z, y, x)`` volume as float32 MRC, voxel size set and origin 0; return its size ``(x, y, z)``.

    Raises
    ------
    ValueError
        If the volume is not 3-D or the voxel spacing not positive (from :func:`write_mrc`).
    """
    volume = np.asarray(volume_zyx)
    if volume.ndim != 3:
        raise ValueError(f"a tomogram must be a (z, y, x) volume, got shape {volume.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # mrcfile writes a new 3-D file as a volume (space group 1) with its origin at 0.
    write_mrc(path, volume, pixel_spacing_angstrom=voxel_spacing_angstrom, overwrite=True)
    nz, ny, nx = volume.shape
    return nx, ny, nz


@contextmanager
def new_tomogram(path: Path, shape_zyx: tuple[int, int, int], *, voxel_spacing_angstrom: float) -> Iterator[np.ndarray]:
    """A new float32 MRC volume at ``path``, memory-mapped: the ``(z, y, x)`` array to fill is yielded, and on
    leaving the voxel size is set on all axes, the origin left at 0 and the header's statistics computed. A volume
    written this way never has to fit in memory (the reconstruction fills it slab by slab)."""
    if not (len(shape_zyx) == 3 and all(n > 0 for n in shape_zyx)):
        raise ValueError(f"a tomogram must be a (z, y, x) volume, got shape {shape_zyx}")
    if not voxel_spacing_angstrom > 0:
        raise ValueError(f"the voxel spacing must be positive, got {voxel_spacing_angstrom}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new_mmap(path, shape=shape_zyx, mrc_mode=2, overwrite=True) as mrc:
        yield mrc.data
        mrc.voxel_size = voxel_spacing_angstrom
        mrc.update_header_stats()


def write_aligned_stack(
    path: Path,
    images: np.ndarray,
    *,
    pixel_spacing_angstrom: float,
    tilt_angles_deg: Sequence[float],
    x_tilts_deg: Sequence[float] | None = None,
) -> Path:
    """Write an aligned ``(n, y, x)`` stack as float32 MRC and its tilt angles as ``<stem>.tlt`` beside it (and,
    where some tilt has an X tilt, IMOD's ``<stem>.xtilt``, RELION's ``rlnTomoXTilt`` with IMOD's sign).

    Returns
    -------
    Path
        The ``.tlt`` file written.

    Raises
    ------
    ValueError
        If the stack is not 3-D or its sections and angles differ in number.
    """
    stack = np.asarray(images)
    if stack.ndim != 3 or stack.shape[0] != len(tilt_angles_deg):
        raise ValueError(f"{len(tilt_angles_deg)} tilt angles need a stack of as many images, got {stack.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mrc(path, stack, pixel_spacing_angstrom=pixel_spacing_angstrom, overwrite=True)
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.set_image_stack()  # sections are images (space group 0), as IMOD's tilt stacks are
    tlt = path.with_suffix(".tlt")
    write_tilt_angles(tlt, list(tilt_angles_deg))
    if x_tilts_deg is not None and any(x != 0.0 for x in x_tilts_deg):
        write_xtilt(path.with_suffix(".xtilt"), list(x_tilts_deg))
    return tlt
