"""Local shifts of patch tracking applied to tilt images as a smooth displacement field per tilt.

Model
    Patch tracking measures, in each tilt image, where a patch of the specimen lands relative to where the global
    alignment puts it: the patch at image position ``g`` (pixels from the image centre, global geometry) is found
    at ``g + d``. Between the patches ``d`` is interpolated into a smooth field ``d(r)`` over the image, and the
    aligned image samples the tilt image at ``M q + s + d(M q + s)`` instead of ``M q + s`` (``M`` the tilt-axis
    rotation, ``s`` the global shift, ``q`` the aligned-frame position), so every patch is brought back to where
    the global geometry expects it.
Approximation
    The field is two-dimensional: a shift measured at an image position is applied to all depths projecting
    there. A real local deformation (a patch moving in 3-D) displaces the projections of points at different
    depths differently; for a specimen much thinner than the patch spacing that difference is small. The warp
    is folded into the one bilinear resampling of the global alignment (no extra interpolation); its cost is the
    field, evaluated on a grid every ``FIELD_STEP_PX`` pixels (``p`` patches × grid points per tilt) and
    upsampled bilinearly.
Interpolation
    Per tilt, Gaussian radial basis functions centred on the measured patches, width the median distance from a
    patch to its nearest neighbour, fitted to the shifts less their mean with a small ridge (``RIDGE``); far
    from every patch the field tends to the mean shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.nn import functional

from tomoprep.algorithms.backprojection import EDGE_TAPER_FRACTION
from tomoprep.algorithms.fourier import taper_edges
from tomoprep.algorithms.tilt_geometry import projection_rotation, rotation_2d

#: The field is evaluated every this many pixels of the aligned frame and upsampled bilinearly.
FIELD_STEP_PX = 8
#: Ridge added to the radial-basis matrix (whose diagonal is 1): the fit passes within a few percent of each shift.
RIDGE = 0.05


class _Pose(Protocol):
    y_tilt_deg: float
    z_rot_deg: float
    x_tilt_deg: float
    shift_x_px: float
    shift_y_px: float


@dataclass(frozen=True)
class LocalShifts:
    """Patch tracking's local shifts in the images reconstructed, tilts in the order of the images.

    Attributes
    ----------
    positions_px
        ``(n, p, 2)`` where each patch lands in each tilt image under the global alignment, ``(x, y)`` pixels from
        the image centre ``N // 2``.
    shifts_px
        ``(n, p, 2)`` where it was found relative to that, ``(x, y)`` pixels (RELION's sense of a shift).
    measured
        ``(n, p)`` booleans, False where a patch was not measured (it is then ignored); None: all measured.
    """

    positions_px: torch.Tensor
    shifts_px: torch.Tensor
    measured: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.positions_px.ndim != 3 or self.positions_px.shape[-1] != 2:
            raise ValueError(f"patch positions must be (n, p, 2), got {tuple(self.positions_px.shape)}")
        if self.shifts_px.shape != self.positions_px.shape:
            raise ValueError(f"local shifts {tuple(self.shifts_px.shape)} must match the patch positions "
                             f"{tuple(self.positions_px.shape)}")  # fmt: skip
        if self.measured is not None and self.measured.shape != self.positions_px.shape[:2]:
            raise ValueError(f"the measured flags must be (n, p) = {tuple(self.positions_px.shape[:2])}")

    @classmethod
    def from_patches(cls, patches_xyz_px: torch.Tensor, shifts_px: torch.Tensor, projections: Sequence[_Pose], *,
                     measured: torch.Tensor | None = None) -> LocalShifts:  # fmt: skip
        """From patch positions in the specimen frame (``(p, 3)`` pixels from the specimen centre, as
        ``io.local_alignment`` stores them in Å) and their shifts ``(n, p, 2)`` pixels: each patch projected into
        each tilt by its global geometry (``Rz Ry Rx X + shift``)."""
        patches = torch.as_tensor(patches_xyz_px, dtype=torch.float64).reshape(-1, 3)
        rows = []
        for p in projections:
            rotation = projection_rotation(y_tilt_deg=p.y_tilt_deg, z_rot_deg=p.z_rot_deg, x_tilt_deg=p.x_tilt_deg)
            shift = torch.tensor([p.shift_x_px, p.shift_y_px], dtype=torch.float64)
            rows.append((patches @ rotation.T)[:, :2] + shift)
        flags = None if measured is None else torch.as_tensor(measured, dtype=torch.bool)
        return cls(torch.stack(rows), torch.as_tensor(shifts_px, dtype=torch.float64), flags)

    def select(self, index: Sequence[int]) -> LocalShifts:
        """The shifts of the tilts ``index`` (in that order)."""
        rows = torch.as_tensor(list(index), dtype=torch.long)
        return LocalShifts(self.positions_px[rows], self.shifts_px[rows],
                           None if self.measured is None else self.measured[rows])  # fmt: skip


def shift_field(positions_px: torch.Tensor, shifts_px: torch.Tensor, at_px: torch.Tensor) -> torch.Tensor:
    """The smooth field of one tilt (module notes) at the points ``at_px`` ``(m, 2)``: ``(m, 2)`` pixels.

    ``positions_px``, ``shifts_px``: ``(p, 2)`` measured patches only (none: a zero field).
    """
    positions, shifts = positions_px.double(), shifts_px.double()
    at = at_px.double()
    if positions.shape[0] == 0:
        return torch.zeros_like(at)
    mean = shifts.mean(dim=0)
    if positions.shape[0] == 1:
        return mean.expand_as(at).clone()
    distances = torch.cdist(positions, positions)
    distances.fill_diagonal_(float("inf"))
    width = max(float(distances.amin(dim=1).median()), 1.0)
    kernel = torch.exp(-(torch.cdist(positions, positions) ** 2) / (2 * width**2))
    eye = torch.eye(positions.shape[0], dtype=torch.float64)
    coefficients = torch.linalg.solve(kernel + RIDGE * eye, shifts - mean)
    return mean + torch.exp(-(torch.cdist(at, positions) ** 2) / (2 * width**2)) @ coefficients


def _field_grid(shape_yx: tuple[int, int], step_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse aligned-frame positions ``(gy, gx, 2)`` spanning the image from first to last pixel (so that a
    bilinear upsampling with aligned corners lands on every pixel), and the counts ``(gy, gx)``."""
    ny, nx = shape_yx
    gy, gx = max(2, -(-(ny - 1) // step_px) + 1), max(2, -(-(nx - 1) // step_px) + 1)
    ys = torch.linspace(0, ny - 1, gy, dtype=torch.float64) - ny // 2
    xs = torch.linspace(0, nx - 1, gx, dtype=torch.float64) - nx // 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1), torch.tensor([gy, gx])


def align_images_locally(images: torch.Tensor, *, axis_deg: Sequence[float], shifts_px: torch.Tensor,
                         local: LocalShifts) -> torch.Tensor:  # fmt: skip
    """:func:`tomoprep.algorithms.backprojection.align_images` with each image also warped by its local shifts.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images.
    axis_deg
        ``(n,)`` tilt-axis angles, degrees counter-clockwise from Y.
    shifts_px
        ``(n, 2)`` global shifts ``(x, y)``, pixels.
    local
        The local shifts of these ``n`` images.

    Returns
    -------
    torch.Tensor
        ``(n, ny, nx)`` aligned images (edges tapered first, as ``align_images`` does).
    """
    n, ny, nx = images.shape
    device = images.device
    width = max(2, round(EDGE_TAPER_FRACTION * min(ny, nx)))
    tapered = taper_edges(images, width)
    coarse, (gy, gx) = _field_grid((ny, nx), FIELD_STEP_PX)
    ys = torch.arange(ny, device=device, dtype=torch.float64) - ny // 2
    xs = torch.arange(nx, device=device, dtype=torch.float64) - nx // 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y], dim=-1)  # (ny, nx, 2) aligned-frame positions
    out = torch.empty((n, ny, nx), dtype=torch.float32, device=device)
    for i in range(n):
        matrix = rotation_2d(float(axis_deg[i]))
        shift = shifts_px[i].double().cpu()
        keep = slice(None) if local.measured is None else local.measured[i].cpu()
        field = shift_field(local.positions_px[i][keep].cpu(), local.shifts_px[i][keep].cpu(),
                            coarse.reshape(-1, 2) @ matrix.T + shift)  # fmt: skip
        dense = functional.interpolate(field.T.reshape(1, 2, int(gy), int(gx)).to(device), size=(ny, nx),
                                       mode="bilinear", align_corners=True)[0].permute(1, 2, 0)  # fmt: skip
        mapped = points @ matrix.to(device).T + shift.to(device) + dense
        grid = torch.stack([(mapped[..., 0] + nx // 2) * (2.0 / max(nx - 1, 1)) - 1.0,
                            (mapped[..., 1] + ny // 2) * (2.0 / max(ny - 1, 1)) - 1.0], dim=-1)  # fmt: skip
        out[i] = functional.grid_sample(tapered[i][None, None].float(), grid[None].float(), mode="bilinear",
                                        padding_mode="zeros", align_corners=True)[0, 0]  # fmt: skip
    return out
