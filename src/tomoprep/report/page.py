"""The report as one self-contained HTML page: styles inline, pictures embedded, no script, nothing fetched.

A collaborator opens the file anywhere (mail, a laptop without the data) and sees the run graph, every parameter,
the software versions and timings, each run's pictures and notes, and per tilt series what was decided and why.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from tomoprep import __version__
from tomoprep.project.records import duration_text
from tomoprep.report.summary import Note, ProjectSummary, RunView, SeriesView

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: .25em .6em;
  text-align: left; vertical-align: top; } th { background: #f3f3f3; }
.SUCCEEDED { color: #11772d; font-weight: 600; } .FAILED { color: #b00020; font-weight: 600; }
.PARTIAL { color: #8a2be2; font-weight: 600; } .RUNNING { color: #b26a00; font-weight: 600; }
.WARNING { color: #8a5a00; } .ERROR { color: #b00020; }
details { margin: .4em 0 1em; } summary { cursor: pointer; font-weight: 600; }
img { max-width: 100%; border: 1px solid #ddd; margin: .3em 0; } code { background: #f5f5f5; padding: 0 .2em; }
.muted { color: #666; }
"""


def _run_row(view: RunView) -> str:
    run = view.record
    status = run.shown_status
    return (
        f'<tr><td><a href="#{escape(run.label)}">{escape(run.label)}</a></td><td>{escape(run.step)}</td>'
        f'<td class="{status}">{status}</td><td>{escape(", ".join(view.input_labels) or "(files)")}</td>'
        f"<td>{escape(run.started_at[:19].replace('T', ' '))}</td><td>{duration_text(view.seconds)}</td>"
        f"<td>{escape(run.package_version)}</td><td>{escape(run.host)}</td></tr>"
    )


def _picture(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(path.name)}"><figcaption class="muted">' \
           f"{escape(path.name)}</figcaption></figure>"  # fmt: skip


def _notes(notes: tuple[Note, ...] | list[Note], *, with_unit: bool = True) -> str:
    if not notes:
        return '<p class="muted">No notes.</p>'
    rows = "".join(
        f'<tr><td class="{escape(n.level)}">{escape(n.level)}</td>'
        + (f"<td>{escape(n.unit or '(run)')}</td>" if with_unit else "")
        + f"<td>{escape(n.message)}</td></tr>"
        for n in notes
    )
    return f"<table>{rows}</table>"


def _run_section(view: RunView) -> str:
    run = view.record
    params = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(json.dumps(v))}</code></td></tr>"
                     for k, v in run.params.items())  # fmt: skip
    units = "".join(f'<tr><td>{escape(u.name)}</td><td class="{u.status}">{u.status}</td>'
                    f"<td>{escape((u.error or '').strip().splitlines()[0] if u.error else '')}</td></tr>"
                    for u in run.units.values())  # fmt: skip
    error = f'<p class="FAILED">{escape(run.error.strip().splitlines()[-1])}</p>' if run.error else ""
    return (
        f'<h3 id="{escape(run.label)}">{escape(run.label)}: {escape(run.step)} '
        f'<span class="{run.shown_status}">{run.shown_status}</span></h3>{error}'
        f"<p>Input: {escape(', '.join(view.input_labels) or 'files')}; took {duration_text(view.seconds)}; "
        f"tomoprep {escape(run.package_version)} on {escape(run.host)}; {view.n_outputs} output files in "
        f"<code>{escape(run.directory)}</code>.</p>"
        f"<details><summary>Parameters</summary><table>{params}</table></details>"
        f"<details><summary>Tilt series ({len(run.units)})</summary><table>{units}</table></details>"
        f"<details><summary>Notes ({len(view.notes)})</summary>{_notes(view.notes)}</details>"
        + "".join(_picture(p) for p in view.pictures)
    )


def _value(number: float | None, unit: str, digits: int = 2) -> str:
    space = "" if unit == "°" else " "
    return "not measured" if number is None else f"{number:.{digits}f}{space}{unit}"


def _series_section(view: SeriesView) -> str:
    excluded = "".join(f"<tr><td>{t.acquisition_index}</td><td>{t.tilt_deg:+.1f}°</td><td>{escape(t.reason)}</td>"
                       "</tr>" for t in view.excluded)  # fmt: skip
    excluded_table = (f"<table><tr><th>acquisition index</th><th>tilt</th><th>reason</th></tr>{excluded}</table>"
                      if view.excluded else "<p>No tilt excluded.</p>")  # fmt: skip
    aligned = "not aligned" if view.refined_axis_deg is None else f"aligned {view.refined_axis_deg:.2f}° (tilts' mean)"
    low_high = view.defocus_range_angstrom
    defocus = "not estimated" if low_high is None else f"{low_high[0] / 1e4:.2f} – {low_high[1] / 1e4:.2f} µm"
    facts = [
        ("state shown", f"as run {view.run_label} left it"),
        ("tilts", f"{view.n_tilts} from {view.tilt_range_deg[0]:+.1f}° to {view.tilt_range_deg[1]:+.1f}°, "
                  f"{len(view.excluded)} excluded"),
        ("tilt axis", f"nominal {view.nominal_axis_deg:.2f}°, {aligned}"),
        ("tilt offset", _value(view.tilt_offset_deg, "°")),
        ("specimen thickness", _value(view.thickness_angstrom, "Å", 0)),
        ("defocus hand (rlnTomoHand)", f"{view.hand:+d}"),
        ("hand from the CTF", view.ctf_hand or "not estimated"),
        ("defocus (tilt centres)", defocus),
        ("tomograms", "; ".join(view.tomograms) or "none yet"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    decisions = "".join(f'<tr><td>{escape(label)}</td><td class="{escape(n.level)}">{escape(n.level)}</td>'
                        f"<td>{escape(n.message)}</td></tr>" for label, n in view.decisions)  # fmt: skip
    decisions_table = f"<table>{decisions}</table>" if decisions else '<p class="muted">No notes.</p>'
    return (
        f'<h3 id="ts-{escape(view.name)}">{escape(view.name)}</h3><table>{rows}</table>'
        f"<h4>Excluded tilts</h4>{excluded_table}<h4>What the runs decided, and why</h4>{decisions_table}"
    )


def render_report(summary: ProjectSummary) -> str:
    """The whole page for ``summary``."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = "".join(_run_row(v) for v in summary.runs)
    header = "<tr><th>run</th><th>step</th><th>status</th><th>input</th><th>started (UTC)</th><th>took</th>" \
             "<th>version</th><th>host</th></tr>"  # fmt: skip
    series_links = ", ".join(f'<a href="#ts-{escape(s.name)}">{escape(s.name)}</a>' for s in summary.series)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>tomoprep report: '
        f"{escape(summary.root.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>tomoprep report: {escape(summary.root.name)}</h1>"
        f'<p class="muted">Project <code>{escape(str(summary.root))}</code>; report made {made} by tomoprep '
        f"{escape(__version__)}. Runs made with tomoprep {escape(', '.join(summary.versions) or '-')} on "
        f"{escape(', '.join(summary.hosts) or '-')}.</p>"
        f"<h2>Runs</h2><p>Each run's input is the run it read; the first takes files.</p>"
        f"<table>{header}{runs}</table>"
        f"<h2>Tilt series</h2><p>{series_links or 'None yet.'}</p>"
        + "".join(_series_section(s) for s in summary.series)
        + "<h2>Every run</h2>"
        + "".join(_run_section(v) for v in reversed(summary.runs))
        + "</body></html>\n"
    )


def write_report(summary: ProjectSummary, path: Path) -> Path:
    """Write the page for ``summary`` to ``path`` (its folder made if needed); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(summary), encoding="utf-8")
    return path
