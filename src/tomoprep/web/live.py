"""Live updates by server-sent events: ``/api/events`` (the project's runs) and ``/api/runs/RUN/events`` (one run's
status and new log lines).

The index is read once a second for each open stream (the runs are written by other processes, which cannot
signal this one); an event is sent only when what it carries changed. A page compares each event's ``signature``
with the one it was made with and reloads when they differ, so a change made between the page and its stream is
not missed, and a reconnection (EventSource reconnects by itself) costs no reload. A stream ends after
``STREAM_S``, when its run has ended, or when the server stops; the token is checked as for any request (the
cookie goes with an EventSource of the same origin).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from tomoprep.project import Project, RunRecord
from tomoprep.web.context import ProjectContext
from tomoprep.web.pages import log_line, project_signature, run_signature

#: Seconds between two readings of the index for a stream.
TICK_S = 1.0
#: Seconds a stream stays open before the browser is asked to reconnect (it sends ``Last-Event-ID``).
STREAM_S = 300.0
#: Seconds of silence after which a comment is sent, so that proxies and tunnels keep the stream open.
KEEPALIVE_S = 15.0
#: Milliseconds the browser waits before reconnecting a stream that ended.
RETRY_MS = 2000


def _message(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event: ``event:``, ``id:`` (where given) and one ``data:`` line of JSON."""
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data)}\n\n"


def _runs(opened: Project) -> list[RunRecord]:
    """Every run, oldest first, from the index alone (a stream reads it every second: no tilt-series file)."""
    return sorted(opened.list_runs(), key=lambda r: r.id)


def _runs_state(context: ProjectContext) -> dict[str, Any]:
    with context.project() as opened:
        runs = _runs(opened)
    return {"signature": project_signature(runs),
            "runs": [{"label": r.label, "status": r.status, "shown_status": r.shown_status} for r in runs]}  # fmt: skip


def _run_state(context: ProjectContext, ref: str, after: int) -> tuple[RunRecord, dict[str, Any], list[dict]]:
    """The run, its status event, and its log events after the first ``after`` (numbered from 1 as ``id``)."""
    with context.project() as opened:
        record = next((r for r in _runs(opened) if ref in (r.label, str(r.id))), None)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no run {ref!r} in this project")
        events = opened.events(record.id)
    status = {"label": record.label, "status": record.status, "shown_status": record.shown_status,
              "signature": run_signature(record),
              "units": {u.name: u.status for u in record.units.values()}}  # fmt: skip
    lines = [{"id": k, "level": e[1], "unit": e[2], "message": e[3], "text": log_line(*e)}
             for k, e in enumerate(events, start=1) if k > after]  # fmt: skip
    return record, status, lines


async def _stream(request: Request, produce: Callable[[], AsyncIterator[str]]) -> AsyncIterator[str]:
    """``produce``'s events, stopped when the browser goes, with the reconnection delay first."""
    yield f"retry: {RETRY_MS}\n\n"
    async for message in produce():
        if await request.is_disconnected():
            return
        yield message


def add_event_routes(app: FastAPI, context: ProjectContext) -> None:
    """``GET /api/events`` and ``GET /api/runs/RUN/events`` (``?after=N``: log lines after the first N). Streams
    end within a tick once ``app.state.stopping`` is set (the server is stopping)."""
    stopping = app.state.stopping

    @app.get("/api/events")
    async def project_events(request: Request) -> StreamingResponse:
        async def produce() -> AsyncIterator[str]:
            last, quiet, end = None, time.monotonic(), time.monotonic() + STREAM_S
            while time.monotonic() < end and not stopping.is_set():
                state = await asyncio.to_thread(_runs_state, context)
                if state != last:
                    last, quiet = state, time.monotonic()
                    yield _message("runs", state)
                elif time.monotonic() - quiet > KEEPALIVE_S:
                    quiet = time.monotonic()
                    yield ": keepalive\n\n"
                await asyncio.sleep(TICK_S)

        return _event_response(_stream(request, produce))

    @app.get("/api/runs/{ref}/events")
    async def run_events(request: Request, ref: str, after: int = 0) -> StreamingResponse:
        after = max(after, int(request.headers.get("last-event-id") or 0))
        await asyncio.to_thread(_run_state, context, ref, after)  # 404 for an unknown run, before streaming

        async def produce() -> AsyncIterator[str]:
            sent, last, quiet, end = after, None, time.monotonic(), time.monotonic() + STREAM_S
            while time.monotonic() < end and not stopping.is_set():
                record, status, lines = await asyncio.to_thread(_run_state, context, ref, sent)
                for line in lines:
                    sent = line["id"]
                    yield _message("log", line, event_id=sent)
                changed = bool(lines)
                if status != last:
                    last, changed = status, True
                    yield _message("status", status, event_id=sent)
                if changed:
                    quiet = time.monotonic()
                if record.status != "RUNNING":
                    return
                if time.monotonic() - quiet > KEEPALIVE_S:
                    quiet = time.monotonic()
                    yield ": keepalive\n\n"
                await asyncio.sleep(TICK_S)

        return _event_response(_stream(request, produce))


def _event_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip
