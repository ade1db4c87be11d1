"""Server-rendered pages of the web UI: the project, a run, a tilt series. Plain HTML and one stylesheet; the
scripts are small files of this package (``static/``): the plots, drawn as SVG from the API's JSON, and the live
updates of running runs."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

from tomoprep.project import Project, RunRecord
from tomoprep.project.records import duration_text
from tomoprep.report.summary import RunView, SeriesView

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; line-height: 1.4; }
header { background: #1f3b57; color: #fff; padding: .6em 1.5em; } header a { color: #fff; text-decoration: none; }
main { max-width: 1150px; margin: 1em auto; padding: 0 1.5em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: .25em .6em;
  text-align: left; vertical-align: top; } th { background: #f3f3f3; }
.SUCCEEDED { color: #11772d; font-weight: 600; } .FAILED { color: #b00020; font-weight: 600; }
.PARTIAL { color: #8a2be2; font-weight: 600; } .RUNNING { color: #b26a00; font-weight: 600; }
.WARNING { color: #8a5a00; } .ERROR { color: #b00020; } .muted { color: #666; }
img { max-width: 100%; border: 1px solid #ddd; } figure { margin: .5em 0; }
pre { background: #f6f6f6; padding: .5em; white-space: pre-wrap; overflow-wrap: anywhere; }
code { background: #f5f5f5; padding: 0 .2em; }
.plots { display: flex; flex-wrap: wrap; gap: .5em 1.5em; } .plot { position: relative; }
.plot svg { font: 11px system-ui, sans-serif; } .plot .title { font-weight: 600; font-size: 12px; }
.plot .point { cursor: pointer; } .plot .point:hover, .plot .point.chosen { stroke: #000; stroke-width: 2; }
.tooltip { position: absolute; pointer-events: none; background: #fff; border: 1px solid #888; padding: .2em .4em;
  font-size: 12px; white-space: pre; box-shadow: 0 1px 3px #0003; z-index: 2; }
.facts { margin: .3em 0; }
"""


def layout(
    title: str, body: str, *, project: Project, live: dict[str, str] | None = None, scripts: tuple[str, ...] = ()
) -> str:
    """A whole page: the header with the project's name, ``body``, and the scripts of this package it names.

    ``live`` makes the page follow changes (``static/live.js``): ``events`` the event stream, ``signature`` the
    state the page shows, ``poll`` the API path asked every 2 s where the stream fails (none: no fallback), ``log``
    how many log events the page holds.
    """
    data = "".join(f' data-{k}="{escape(v)}"' for k, v in (live or {}).items())
    names = (*scripts, *(("live.js",) if live else ()))
    tags = "".join(f'<script src="/static/{name}"></script>' for name in names)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · tomoprep</title>'
        f'<link rel="stylesheet" href="/static/style.css"><link rel="icon" href="data:,"></head><body{data}>'
        f'<header><a href="/"><b>tomoprep</b> · {escape(project.root.name)}</a></header>'
        f"<main><h1>{escape(title)}</h1>{body}</main>{tags}</body></html>"
    )


def project_signature(runs: list[RunRecord]) -> str:
    """What the project page shows of its runs' progress; ``static/live.js`` computes the same from ``/api/runs``."""
    return ";".join(f"{r.label}:{r.shown_status}" for r in runs)


def run_signature(run: RunRecord) -> str:
    """What a run's page shows of its progress; ``static/live.js`` computes the same from ``/api/runs/RUN``."""
    return f"{run.status}|" + ",".join(f"{name}:{run.units[name].status}" for name in sorted(run.units))


def log_line(time: str, level: str, unit: str | None, message: str) -> str:
    """One line of a run's log as its page shows it."""
    return f"{time[:19]} {level:7} {unit or '-':10} {message}"


def run_link(label: str) -> str:
    """A link to a run's page."""
    return f'<a href="/runs/{quote(label)}">{escape(label)}</a>'


def watch_section(state: dict[str, Any]) -> str:
    """What ``tomoprep watch`` last said of its session (:func:`tomoprep.live.watch.read_state`); empty where no
    watch ever ran in the project."""
    if not state.get("series") and not state.get("session"):
        return ""
    shown = "watching" if state.get("active") else "ended (its process is gone)" if state.get("gone") else "ended"
    counts = ", ".join(f"{n} {what}" for what, n in state.get("counts", {}).items())
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="watch-{escape(s.get("state", ""))}">{escape(s.get("state", ""))}</td>'
        f"<td>{escape(s.get('note') or '')}</td><td>{' '.join(run_link(r) for r in s.get('runs', []))}</td></tr>"
        for name, s in sorted(state.get("series", {}).items())
    )
    newest = state.get("newest_event") or ""
    return (f"<h2>Live session</h2><p>{escape(str(state.get('session', '')))}: <b>{shown}</b>"
            f"{' · ' + escape(counts) if counts else ''}{' · ' + escape(newest) if newest else ''}</p>"
            "<table><tr><th>tilt series</th><th>state</th><th>note</th><th>runs</th></tr>"
            f"{rows}</table>")  # fmt: skip


def project_page(
    project: Project, runs: list[RunView], series: list[SeriesView], *, steps: str = "", watch: str = ""
) -> str:
    """The project: its runs, newest first, and its tilt series; ``steps`` links to the steps' forms, ``watch`` is
    :func:`watch_section`'s."""
    rows = "".join(
        f"<tr><td>{run_link(v.record.label)}</td><td>{escape(v.record.step)}</td>"
        f'<td class="{v.record.shown_status}">{v.record.shown_status}</td>'
        f"<td>{', '.join(run_link(label) for label in v.input_labels) or '(files)'}</td>"
        f"<td>{escape(v.record.started_at[:19].replace('T', ' '))}</td><td>{duration_text(v.seconds)}</td></tr>"
        for v in reversed(runs)
    )
    table = ("<table><tr><th>run</th><th>step</th><th>status</th><th>input</th><th>started (UTC)</th><th>took</th>"
             f"</tr>{rows}</table>") if runs else "<p>No run yet.</p>"  # fmt: skip
    names = "".join(f'<li><a href="/series/{quote(s.name)}">{escape(s.name)}</a> <span class="muted">'
                    f"{s.n_tilts} tilts, {len(s.excluded)} excluded, as {escape(s.run_label)} left it</span></li>"
                    for s in series)  # fmt: skip
    running = any(v.record.status == "RUNNING" for v in runs)
    launch = f"<p>Run a step: {steps}</p>" if steps else ""
    body = f"{watch}<h2>Runs</h2>{launch}{table}<h2>Tilt series</h2><ul>{names or '<li>None yet.</li>'}</ul>"
    live = {"events": "/api/events", "signature": project_signature([v.record for v in runs])}
    return layout("Project", body, project=project, live={**live, "poll": "/api/runs"} if running else live)


def _picture(project: Project, path: str) -> str:
    return f'<figure><img src="/files/{quote(path)}" alt="{escape(path)}"><figcaption class="muted">' \
           f"{escape(path)}</figcaption></figure>"  # fmt: skip


ACTION_SCRIPT = """<script>
document.querySelectorAll("button[data-post]").forEach(button => button.addEventListener("click", async () => {
  const answer = await fetch(button.dataset.post, {method: "POST", credentials: "same-origin"});
  const result = await answer.json();
  if (!answer.ok) { document.getElementById("action-status").textContent = result.detail; return; }
  location.href = "/runs/" + encodeURIComponent(result.run);
}));
</script>"""


def run_actions(run: RunRecord, *, stoppable: bool) -> str:
    """Buttons of a run's page: stop (a run this server started, while it runs), resume (a stopped or partly
    failed run)."""
    buttons = []
    if stoppable:
        buttons.append(f'<button data-post="/api/runs/{quote(run.label)}/stop">Stop</button>')
    if run.status == "FAILED" or (run.status == "SUCCEEDED" and run.failed_units):
        buttons.append(f'<button data-post="/api/runs/{quote(run.label)}/resume">Resume</button>')
    if not buttons:
        return ""
    return f'<p>{" ".join(buttons)} <span id="action-status" role="status"></span></p>{ACTION_SCRIPT}'


def run_page(project: Project, view: RunView, events: list[tuple[str, str, str | None, str]],
             artifacts: list[tuple[str | None, str, str]], *, actions: str = "",
             tomograms: dict[str, tuple[float, ...]] | None = None) -> str:  # fmt: skip
    """A run: status, parameters, inputs, units (with links to their tilts and tomograms), log, pictures and
    outputs; ``tomograms`` gives the binnings of each series' tomograms."""
    tomograms = tomograms or {}
    run: RunRecord = view.record
    params = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(json.dumps(v))}</code></td></tr>"
                     for k, v in run.params.items())  # fmt: skip

    def gallery(name: str) -> str:
        if run.status != "SUCCEEDED":
            return ""
        links = [f'<a href="/runs/{quote(run.label)}/gallery/{quote(name)}">tilts</a>']
        links += [f'<a href="/runs/{quote(run.label)}/series/{quote(name)}/tomograms/{b:g}">tomogram bin {b:g}</a>'
                  for b in tomograms.get(name, ())]  # fmt: skip
        return " " + " ".join(links)

    units = "".join(f'<tr><td>{escape(u.name)}{gallery(u.name) if u.status == "SUCCEEDED" else ""}</td>'
                    f'<td class="{u.status}">{u.status}</td>'
                    f"<td>{escape((u.error or '').strip().splitlines()[-1] if u.error else '')}</td></tr>"
                    for u in run.units.values())  # fmt: skip
    log = "\n".join(log_line(*event) for event in events if event[1] != "DEBUG")
    pictures = "".join(_picture(project, path) for _, kind, path in artifacts if kind == "png")
    outputs = "".join(f'<li><a href="/files/{quote(path)}">{escape(path)}</a></li>' for _, kind, path in artifacts
                      if kind != "png")  # fmt: skip
    inputs = ", ".join(run_link(label) for label in view.input_labels) or "files"
    body = (
        f'<p>Step <b>{escape(run.step)}</b>, status <span id="run-status" class="{run.shown_status}">'
        f"{run.shown_status}</span>; "
        f"input {inputs}; took {duration_text(view.seconds)}; tomoprep {escape(run.package_version)} on "
        f"{escape(run.host)}; folder <code>{escape(run.directory)}</code>.</p>{actions}"
        + (f'<pre class="ERROR">{escape(run.error)}</pre>' if run.error else "")
        + f"<h2>Parameters</h2><table>{params}</table><h2>Tilt series</h2><table>{units}</table>"
        + (
            plots_section(
                run.label, PLOT_KINDS.get(run.step, ()), [u.name for u in run.units.values() if u.status == "SUCCEEDED"]
            )
            if run.status == "SUCCEEDED"
            else ""
        )
        + f'<h2>Log</h2><pre id="log">{escape(log)}</pre><h2>Pictures</h2>{pictures or "<p>None.</p>"}'
        f"<h2>Outputs</h2><ul>{outputs or '<li>None.</li>'}</ul>"
    )
    live = None
    if run.status == "RUNNING":
        api = f"/api/runs/{quote(run.label)}"
        live = {"events": f"{api}/events?after={len(events)}", "poll": api, "signature": run_signature(run)}
    return layout(f"Run {run.label}", body, project=project, live=live, scripts=PLOT_SCRIPTS)


#: The interactive plots of each step's runs (``static/plots.js`` draws them from ``/api/runs/RUN/series/NAME/plots``).
PLOT_KINDS = {"motioncorr": ("motion",), "align": ("alignment",), "ctf": ("ctf",)}
PLOT_SCRIPTS = ("chart.js", "plots.js")


def plots_section(label: str, kinds: tuple[str, ...], names: list[str]) -> str:
    """The placeholder ``static/plots.js`` fills with the plots of ``kinds`` (``motion``, ``alignment``, ``ctf``)
    of the series ``names`` of run ``label`` (which succeeded); empty where there is nothing to draw."""
    if not kinds or not names:
        return ""
    return (
        f'<h2>Plots</h2><p class="muted">Hover a point for its tilt; excluded or flagged tilts are drawn '
        f'hollow.</p><section id="plots" data-run="{escape(label)}" data-kinds="{" ".join(kinds)}" '
        f"data-series='{escape(json.dumps(names))}'></section>"
    )


def series_page(project: Project, view: SeriesView, *, plots: tuple[str, ...] = ()) -> str:
    """A tilt series: its state, excluded tilts with reasons, the ``plots`` (kinds) of the run that left it so, and
    what the runs decided about it."""
    facts = [
        ("state shown", f"as run {view.run_label} left it"),
        ("tilts", f"{view.n_tilts} from {view.tilt_range_deg[0]:+.1f}° to {view.tilt_range_deg[1]:+.1f}°"),
        ("tilt axis", f"nominal {view.nominal_axis_deg:.2f}°" + ("" if view.refined_axis_deg is None else
                                                                 f", aligned {view.refined_axis_deg:.2f}°")),
        ("specimen thickness", "not measured" if view.thickness_angstrom is None else
         f"{view.thickness_angstrom:.0f} Å"),
        ("hand from the CTF", view.ctf_hand or "not estimated"),
        ("tomograms", "; ".join(view.tomograms) or "none yet"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    excluded = "".join(f"<tr><td>{t.acquisition_index}</td><td>{t.tilt_deg:+.1f}°</td><td>{escape(t.reason)}</td>"
                       "</tr>" for t in view.excluded)  # fmt: skip
    notes = "".join(f'<tr><td>{run_link(label)}</td><td class="{escape(n.level)}">{escape(n.level)}</td>'
                    f"<td>{escape(n.message)}</td></tr>" for label, n in view.decisions)  # fmt: skip
    body = (
        f"<table>{rows}</table><h2>Excluded tilts</h2>"
        + (f"<table><tr><th>acquisition index</th><th>tilt</th><th>reason</th></tr>{excluded}</table>"
           if excluded else "<p>None.</p>")
        + plots_section(view.run_label, plots, [view.name])
        + f"<h2>What the runs decided, and why</h2><table>{notes}</table>"
    )  # fmt: skip
    return layout(f"Tilt series {view.name}", body, project=project, scripts=PLOT_SCRIPTS)
