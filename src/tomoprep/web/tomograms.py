"""The tomogram viewer: XY, XZ and YZ slices of a tomogram as PNG, a slider through the third axis, contrast by
percentiles of the whole volume.

Slices are read from the MRC file memory-mapped (one slice at a time, never the volume), so a 1024×1024×300
volume answers in milliseconds; the percentiles are taken once per file over a strided sample of the volume and
kept, so every slice of a volume has the same grey scale.
"""

from __future__ import annotations

import io
from functools import lru_cache
from html import escape
from pathlib import Path
from urllib.parse import quote

import numpy as np

from tomoprep.model import Tomogram
from tomoprep.project import Project
from tomoprep.web.pages import layout

#: Slices through each axis of a ``(z, y, x)`` volume: which array axis is fixed.
AXES = {"xy": 0, "xz": 1, "yz": 2}
#: Voxels sampled (at most) for the percentiles of a volume.
SAMPLE_VOXELS = 2_000_000


@lru_cache(maxsize=16)
def _open(path: Path, modified_ns: int) -> object:
    import mrcfile

    return mrcfile.mmap(path, mode="r", permissive=True)  # kept open (read only) while it is among the recent


def _memory_map(path: Path) -> np.ndarray:
    """The data of the MRC file at ``path``, memory-mapped (a file rewritten since is opened again)."""
    return np.asarray(_open(path, path.stat().st_mtime_ns).data)  # type: ignore[attr-defined]


@lru_cache(maxsize=64)
def volume_percentiles(path: Path, modified_ns: int, low: float, high: float) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of the volume at ``path`` (keyed by its modification time), from a
    strided sample of at most :data:`SAMPLE_VOXELS` voxels."""
    data = _memory_map(path)
    stride = max(1, round((data.size / SAMPLE_VOXELS) ** (1 / 3)))
    sample = np.asarray(data[::stride, ::stride, ::stride], dtype=np.float32)
    found = np.percentile(sample, [low, high])
    return float(found[0]), float(found[1])


def slice_png(path: Path, *, axis: str, index: int | None, low: float = 1.0, high: float = 99.0) -> bytes:
    """One slice of the volume at ``path`` as an 8-bit PNG: through ``axis`` (``xy``, ``xz``, ``yz``) at ``index``
    (default: the middle), grey scale between the volume's ``low`` and ``high`` percentiles."""
    from matplotlib.image import imsave

    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"the percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    data = _memory_map(path)
    fixed = AXES[axis]
    size = data.shape[fixed]
    index = size // 2 if index is None else index
    if not 0 <= index < size:
        raise ValueError(f"slice {index} is outside 0..{size - 1} along {axis}")
    image = np.asarray(np.take(data, index, axis=fixed), dtype=np.float32)
    if axis == "yz":
        image = image.T  # z across, y up: the slab's depth reads left to right, as in the XZ view
    bottom, top = volume_percentiles(path, path.stat().st_mtime_ns, low, high)
    buffer = io.BytesIO()
    imsave(buffer, np.flipud(image), cmap="gray", vmin=bottom, vmax=max(top, bottom + 1e-12), format="png")
    return buffer.getvalue()


def volume_shape(path: Path) -> tuple[int, int, int]:
    """``(z, y, x)`` of the volume at ``path``."""
    shape = _memory_map(path).shape
    return int(shape[0]), int(shape[1]), int(shape[2])


VIEWER_SCRIPT = """<script>
(function () {
  const view = document.getElementById("view"), axis = document.getElementById("axis");
  const slider = document.getElementById("index"), low = document.getElementById("low");
  const high = document.getElementById("high"), label = document.getElementById("where");
  const sizes = JSON.parse(document.body.dataset.sizes);
  function show() {
    const n = sizes[axis.value];
    if (Number(slider.max) !== n - 1) { slider.max = n - 1; slider.value = Math.floor(n / 2); }
    label.textContent = axis.value.toUpperCase() + " slice " + slider.value + " of " + n;
    view.src = document.body.dataset.slices + "?axis=" + axis.value + "&index=" + slider.value
      + "&low=" + low.value + "&high=" + high.value;
  }
  [axis, slider, low, high].forEach(control => control.addEventListener("input", show));
  show();
})();
</script>"""


def viewer_page(project: Project, run_label: str, series: str, tomogram: Tomogram) -> str:
    """The slice viewer of one tomogram."""
    z, y, x = volume_shape(tomogram.path)
    slices = f"/runs/{quote(run_label)}/series/{quote(series)}/tomograms/{tomogram.binning:g}/slice.png"
    body = (
        f"<p>{escape(str(tomogram.path.name))}: {x} × {y} × {z} voxels of {tomogram.voxel_spacing_angstrom:.2f} Å "
        f"(bin {tomogram.binning:g}); CTF correction: {escape(tomogram.ctf_correction)}.</p>"
        '<p><label>view <select id="axis"><option value="xy">XY</option><option value="xz">XZ</option>'
        '<option value="yz">YZ</option></select></label> '
        '<label>slice <input id="index" type="range" min="0" max="0" value="0" style="width: 30em"></label> '
        '<span id="where"></span></p><p><label>contrast: low percentile <input id="low" type="number" value="1" '
        'min="0" max="99" step="0.5"></label> <label>high percentile <input id="high" type="number" value="99" '
        'min="1" max="100" step="0.5"></label></p><img id="view" alt="tomogram slice" style="max-width: 100%; '
        'image-rendering: pixelated;">'
        f"{VIEWER_SCRIPT}"
    )
    page = layout(f"Tomogram of {series}", body, project=project)
    sizes = f'{{"xy": {z}, "xz": {y}, "yz": {x}}}'
    return page.replace("<body>", f"<body data-slices=\"{escape(slices)}\" data-sizes='{sizes}'>", 1)
