// Live updates of a page: <body data-events data-signature [data-poll]>. Server-sent events (the server's
// /api/events or /api/runs/RUN/events) bring run status changes and new log lines; the page appends the log lines
// to <pre id="log"> and reloads when the signature of what it shows changes (a unit finished, the run ended). If
// the browser has no EventSource or the stream fails, it asks data-poll every 2 s instead.
"use strict";

(function () {
  const body = document.body, shown = body.dataset.signature;
  let pollTimer = null;

  function changed(signature) {
    if (signature !== shown) location.reload();
  }

  // The signature the server's pages compute (pages.py), from /api/runs or /api/runs/RUN.
  function signatureOf(answer) {
    if (Array.isArray(answer)) return answer.map(r => `${r.label}:${r.shown_status}`).join(";");
    const units = Object.keys(answer.units).sort().map(name => `${name}:${answer.units[name].status}`);
    return `${answer.status}|${units.join(",")}`;
  }

  function poll() {
    if (pollTimer || !body.dataset.poll) return;
    body.dataset.live = "polling";
    pollTimer = setInterval(async () => {
      const answer = await fetch(body.dataset.poll, {credentials: "same-origin"});
      if (answer.ok) changed(signatureOf(await answer.json()));
    }, 2000);
  }

  function appendLog(line) {
    const log = document.getElementById("log");
    if (!log || line.level === "DEBUG") return;
    log.textContent += (log.textContent ? "\n" : "") + line.text;
  }

  if (!body.dataset.events) return;
  if (typeof EventSource === "undefined") { poll(); return; }
  const source = new EventSource(body.dataset.events);
  body.dataset.live = "connecting";
  source.addEventListener("open", () => { body.dataset.live = "events"; });
  source.addEventListener("log", event => appendLog(JSON.parse(event.data)));
  source.addEventListener("status", event => {
    const status = JSON.parse(event.data);
    const label = document.getElementById("run-status");
    if (label) { label.textContent = status.shown_status; label.className = status.shown_status; }
    if (status.status !== "RUNNING") source.close();  // the stream ends with the run; do not reconnect
    changed(status.signature);
  });
  source.addEventListener("runs", event => changed(JSON.parse(event.data).signature));
  source.addEventListener("error", () => {
    // A stream that ended reconnects by itself (readyState CONNECTING); one refused (401, 404) is CLOSED.
    if (source.readyState === EventSource.CLOSED) poll();
  });
})();
