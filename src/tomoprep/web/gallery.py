"""The tilt gallery: a series' tilts as thumbnails by tilt angle, each with its verdict and reason; the arrow keys
move, the space bar toggles a tilt's exclusion, and saving makes a new cleaning run (nothing changed in place).

Saving sends, for one series, the tilts newly excluded and those newly included; the server runs the ``clean``
step on the run shown with ``--no-auto`` and those lists (``--exclude``/``--include``), so the automatic verdicts of
the run shown are kept, and tilts excluded by another step (a movie that could not be read) cannot be included.
"""

from __future__ import annotations

import io
from functools import lru_cache
from html import escape
from pathlib import Path
from urllib.parse import quote

from tomoprep.model import TiltSeries
from tomoprep.project import Project
from tomoprep.steps.clean.manual import is_cleaning_reason
from tomoprep.web.pages import layout

#: Longer side of a gallery thumbnail, pixels.
THUMBNAIL_PX = 256

GALLERY_STYLE = """<style>
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: .6em; }
.tilt { margin: 0; padding: .3em; border: 3px solid #cfe3cf; border-radius: 4px; outline: none; }
.tilt img { width: 100%; display: block; border: none; } .tilt figcaption { font-size: .85em; }
.tilt.excluded { border-color: #d33; background: #fbeaea; } .tilt.excluded img { opacity: .45; }
.tilt:focus { box-shadow: 0 0 0 3px #1f6feb; }
.tilt.changed figcaption::after { content: " (changed)"; color: #1f6feb; }
.tilt.locked { border-style: dashed; } .bar { position: sticky; top: 0; background: #fff; padding: .4em 0; }
</style>"""

GALLERY_SCRIPT = """<script>
(function () {
  const tiles = Array.from(document.querySelectorAll(".tilt"));
  const status = document.getElementById("status");
  const columns = () => Math.max(1, Math.round(document.querySelector(".gallery").clientWidth / tiles[0].clientWidth));
  function move(from, by) { const to = Math.min(tiles.length - 1, Math.max(0, from + by)); tiles[to].focus(); }
  function toggle(tile) {
    if (tile.classList.contains("locked")) { status.textContent = tile.dataset.lock; return; }
    tile.classList.toggle("excluded");
    tile.classList.toggle("changed", tile.classList.contains("excluded") !== (tile.dataset.excluded === "1"));
    tile.querySelector(".verdict").textContent = tile.classList.contains("excluded") ? "excluded (by hand)" : "kept";
    const n = document.querySelectorAll(".tilt.changed").length;
    status.textContent = n ? n + " change(s) not saved" : "";
  }
  tiles.forEach((tile, i) => {
    tile.addEventListener("keydown", (event) => {
      if (event.key === " ") { event.preventDefault(); toggle(tile); }
      else if (event.key === "ArrowRight") { event.preventDefault(); move(i, 1); }
      else if (event.key === "ArrowLeft") { event.preventDefault(); move(i, -1); }
      else if (event.key === "ArrowDown") { event.preventDefault(); move(i, columns()); }
      else if (event.key === "ArrowUp") { event.preventDefault(); move(i, -columns()); }
    });
    tile.addEventListener("click", () => tile.focus());
  });
  document.getElementById("save").addEventListener("click", async () => {
    const changed = Array.from(document.querySelectorAll(".tilt.changed"));
    if (!changed.length) { status.textContent = "nothing to save"; return; }
    const body = {
      exclude: changed.filter(t => t.classList.contains("excluded")).map(t => Number(t.dataset.acq)),
      include: changed.filter(t => !t.classList.contains("excluded")).map(t => Number(t.dataset.acq)),
    };
    status.textContent = "saving...";
    const answer = await fetch(document.body.dataset.save, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const result = await answer.json();
    if (!answer.ok) { status.textContent = result.detail; return; }
    location.href = "/runs/" + encodeURIComponent(result.run);
  });
  if (tiles.length) tiles[0].focus();
})();
</script>"""


@lru_cache(maxsize=4096)
def _thumbnail_png(path: Path, section: int, modified_ns: int) -> bytes:
    """The PNG of one image (a section of a stack, or a whole micrograph), keyed by file, section and time."""
    from matplotlib.image import imsave

    from tomoprep.algorithms.thumbnail import thumbnail
    from tomoprep.io.mrc import read_mrc

    image = read_mrc(path, sections=[section])[0] if section >= 0 else read_mrc(path)
    buffer = io.BytesIO()
    imsave(buffer, thumbnail(image, size_px=THUMBNAIL_PX), cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def tilt_thumbnail(ts: TiltSeries, acquisition_index: int) -> bytes | None:
    """The thumbnail of one tilt as PNG bytes, or ``None`` where the tilt has no image (or no such tilt)."""
    for tilt in ts.tilts:
        if tilt.acquisition.acquisition_index != acquisition_index:
            continue
        if tilt.acquisition.stack_path is not None:
            path, section = tilt.acquisition.stack_path, tilt.acquisition.section_index
        elif tilt.motion is not None:
            path, section = tilt.motion.micrograph_path, -1
        else:
            return None
        return _thumbnail_png(path, section, path.stat().st_mtime_ns) if path.is_file() else None
    return None


def gallery_page(project: Project, run_label: str, ts: TiltSeries, others: list[str]) -> str:
    """The gallery of ``ts`` as run ``run_label`` left it; ``others`` are the run's other series (linked)."""
    tiles = []
    for tilt in sorted(ts.tilts, key=lambda t: t.acquisition.nominal_tilt_angle_deg):
        acq = tilt.acquisition.acquisition_index
        reason = tilt.exclusion.reason if tilt.exclusion else ""
        locked = bool(reason) and not is_cleaning_reason(reason)
        classes = "tilt" + (" excluded" if tilt.excluded else "") + (" locked" if locked else "")
        lock = f"tilt {acq} was excluded by another step ({reason}); a cleaning cannot include it" if locked else ""
        src = f"/runs/{quote(run_label)}/series/{quote(ts.name)}/tilts/{acq}.png"
        tiles.append(
            f'<figure class="{classes}" tabindex="0" data-acq="{acq}" data-excluded="{int(tilt.excluded)}" '
            f'data-lock="{escape(lock)}"><img src="{src}" alt="tilt {acq}" loading="lazy"><figcaption>'
            f'<b>{tilt.acquisition.nominal_tilt_angle_deg:+.1f}°</b> #{acq} · <span class="verdict">'
            f"{escape('excluded: ' + reason if tilt.excluded else 'kept')}</span></figcaption></figure>"
        )
    links = " ".join(f'<a href="/runs/{quote(run_label)}/gallery/{quote(n)}">{escape(n)}</a>' for n in others)
    save = f"/api/runs/{quote(run_label)}/series/{quote(ts.name)}/exclusions"
    body = (
        f'{GALLERY_STYLE}<p>As run <a href="/runs/{quote(run_label)}">{escape(run_label)}</a> left it; sorted by tilt '
        "angle. Arrow keys move, <b>space</b> excludes or keeps the tilt in focus; saving makes a new cleaning run "
        f"from this one (nothing is changed in place, nothing deleted).</p><p>Series: {links}</p>"
        '<div class="bar"><button id="save">Save as a new cleaning run</button> <span id="status" role="status">'
        f'</span></div><div class="gallery">{"".join(tiles)}</div>{GALLERY_SCRIPT}'
    )
    page = layout(f"Tilts of {ts.name}", body, project=project)
    return page.replace("<body>", f'<body data-save="{escape(save)}">', 1)


def cleaning_params(name: str, exclude: list[int], include: list[int]) -> dict[str, object]:
    """The ``clean`` parameters that apply a gallery's changes to series ``name``."""
    params: dict[str, object] = {"auto": False}
    if exclude:
        params["exclude"] = f"{name}:{','.join(str(i) for i in sorted(set(exclude)))}"
    if include:
        params["include"] = f"{name}:{','.join(str(i) for i in sorted(set(include)))}"
    return params
