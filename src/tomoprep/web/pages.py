"""Server-rendered pages of the web UI: the project, a run, a tilt series. Plain HTML, one stylesheet served by the
package, no script but the small poller that refreshes a page while a run is running."""

from __future__ import annotations

import json
from html import escape
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
"""

#: While a run shown on a page is running, the page asks the API every few seconds and reloads when the answer
#: changes (a unit finished), or once nothing is running any more (the run may end before the first answer).
POLLER = """<script>
(function () {
  const url = document.body.dataset.poll; if (!url) return;
  let last = null;
  setInterval(async () => {
    const answer = await fetch(url, {credentials: "same-origin"}); if (!answer.ok) return;
    const text = await answer.text();
    if ((last !== null && text !== last) || !text.includes('"RUNNING"')) location.reload();
    last = text;
  }, 2000);
})();
</script>"""


def layout(title: str, body: str, *, project: Project, poll: str | None = None) -> str:
    """A whole page: the header with the project's name, ``body``, and the poller when ``poll`` names an API path."""
    data = f' data-poll="{escape(poll)}"' if poll else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · tomoprep</title>'
        f'<link rel="stylesheet" href="/static/style.css"></head><body{data}>'
        f'<header><a href="/"><b>tomoprep</b> · {escape(project.root.name)}</a></header>'
        f"<main><h1>{escape(title)}</h1>{body}</main>{POLLER if poll else ''}</body></html>"
    )


def run_link(label: str) -> str:
    """A link to a run's page."""
    return f'<a href="/runs/{quote(label)}">{escape(label)}</a>'


def project_page(project: Project, runs: list[RunView], series: list[SeriesView], *, steps: str = "") -> str:
    """The project: its runs, newest first, and its tilt series; ``steps`` links to the steps' forms."""
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
    body = f"<h2>Runs</h2>{launch}{table}<h2>Tilt series</h2><ul>{names or '<li>None yet.</li>'}</ul>"
    return layout("Project", body, project=project, poll="/api/runs" if running else None)


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
    log = "\n".join(f"{t[:19]} {level:7} {unit or '-':10} {message}" for t, level, unit, message in events
                    if level != "DEBUG")  # fmt: skip
    pictures = "".join(_picture(project, path) for _, kind, path in artifacts if kind == "png")
    outputs = "".join(f'<li><a href="/files/{quote(path)}">{escape(path)}</a></li>' for _, kind, path in artifacts
                      if kind != "png")  # fmt: skip
    inputs = ", ".join(run_link(label) for label in view.input_labels) or "files"
    body = (
        f'<p>Step <b>{escape(run.step)}</b>, status <span class="{run.shown_status}">{run.shown_status}</span>; '
        f"input {inputs}; took {duration_text(view.seconds)}; tomoprep {escape(run.package_version)} on "
        f"{escape(run.host)}; folder <code>{escape(run.directory)}</code>.</p>{actions}"
        + (f'<pre class="ERROR">{escape(run.error)}</pre>' if run.error else "")
        + f"<h2>Parameters</h2><table>{params}</table><h2>Tilt series</h2><table>{units}</table>"
        f"<h2>Log</h2><pre>{escape(log)}</pre><h2>Pictures</h2>{pictures or '<p>None.</p>'}"
        f"<h2>Outputs</h2><ul>{outputs or '<li>None.</li>'}</ul>"
    )
    poll = f"/api/runs/{quote(run.label)}" if run.status == "RUNNING" else None
    return layout(f"Run {run.label}", body, project=project, poll=poll)


def series_page(project: Project, view: SeriesView) -> str:
    """A tilt series: its state, excluded tilts with reasons, and what the runs decided about it."""
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
        + f"<h2>What the runs decided, and why</h2><table>{notes}</table>"
    )  # fmt: skip
    return layout(f"Tilt series {view.name}", body, project=project)
