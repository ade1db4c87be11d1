"""Live updates by server-sent events, read through TestClient's streaming: a running run's status changes and new
log lines as they happen, a finished run's stream that ends, the project's stream, and the token check."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tomoprep.execution import run_step
from tomoprep.project import init_project, open_project
from tomoprep.web import live
from tomoprep.web.app import create_app

TOKEN = "live-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _toy_step():
    path = Path(__file__).parents[1] / "execution" / "toy_steps.py"
    spec = importlib.util.spec_from_file_location("toy_steps_for_web", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TOY


def _events(client: TestClient, path: str, *, stop=lambda kind, data: False, **kwargs) -> list[tuple[str, dict]]:
    """The ``(event, data)`` pairs of a stream, until it ends or ``stop`` says so."""
    found: list[tuple[str, dict]] = []
    kind = None
    with client.stream("GET", path, headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                found.append((kind, json.loads(line[6:])))
                if stop(kind, found[-1][1]):
                    break
    return found


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    with init_project(tmp_path / "project"):
        pass
    return tmp_path / "project"


def test_a_running_runs_stream_brings_its_log_lines_and_status_changes_then_ends(project_root: Path,
                                                                               monkeypatch) -> None:  # fmt: skip
    monkeypatch.setattr(live, "TICK_S", 0.2)  # the index read five times a second: a quick test
    toy = _toy_step()
    client = TestClient(create_app(project_root, token=TOKEN))

    def work() -> None:
        with open_project(project_root) as project:
            run_step(project, toy, {"names": ["TS_01", "TS_02", "TS_03"], "seconds_per_unit": 0.5})

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 30
    while not client.get("/api/runs", headers=HEADERS).json():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = _events(client, "/api/runs/1/events")
    worker.join(timeout=30)
    statuses = [data for kind, data in events if kind == "status"]
    assert statuses[0]["status"] == "RUNNING" and statuses[-1]["status"] == "SUCCEEDED"
    assert any(s["status"] == "RUNNING" and "SUCCEEDED" in s["units"].values() for s in statuses)  # mid-run
    assert len({s["signature"] for s in statuses}) == len(statuses)  # an event only for a change
    lines = [data for kind, data in events if kind == "log"]
    made = [line["unit"] for line in lines if line["message"].startswith("made ")]
    assert made == ["TS_01", "TS_02", "TS_03"]
    assert [line["id"] for line in lines] == list(range(1, len(lines) + 1))
    first_made = next(k for k, (kind, data) in enumerate(events) if kind == "log" and data["message"] == "made TS_01")
    assert any(kind == "status" and data["status"] == "RUNNING" for kind, data in events[first_made:])  # live
    assert "made TS_02" in lines[[line["unit"] for line in lines].index("TS_02")]["text"]


def test_a_finished_runs_stream_gives_the_lines_not_yet_shown_and_its_status_then_ends(project_root: Path) -> None:
    with open_project(project_root) as project:
        run_step(project, _toy_step(), {"names": ["TS_01", "TS_02"]})
    client = TestClient(create_app(project_root, token=TOKEN))
    everything = _events(client, "/api/runs/1/events")
    count = sum(kind == "log" for kind, _ in everything)
    assert count >= 3 and everything[-1][0] == "status" and everything[-1][1]["status"] == "SUCCEEDED"
    later = _events(client, "/api/runs/1/events?after=2")
    assert [d["id"] for k, d in later if k == "log"] == list(range(3, count + 1))
    reconnected = _events(client, "/api/runs/1/events", headers={"Last-Event-ID": str(count)})
    assert [kind for kind, _ in reconnected] == ["status"]
    page = client.get("/runs/1", headers=HEADERS).text
    assert "data-events" not in page  # a finished run's page follows nothing


def test_the_projects_stream_says_what_the_project_page_shows(project_root: Path) -> None:
    with open_project(project_root) as project:
        run_step(project, _toy_step(), {"names": ["TS_01"]})
    client = TestClient(create_app(project_root, token=TOKEN))
    ((_, data),) = _events(client, "/api/events", stop=lambda kind, data: kind == "runs")
    assert data["runs"] == [{"label": "001_toy", "status": "SUCCEEDED", "shown_status": "SUCCEEDED"}]
    page = client.get("/", headers=HEADERS).text
    assert f'data-signature="{data["signature"]}"' in page and 'data-events="/api/events"' in page
    assert '<script src="/static/live.js">' in page


def test_streams_need_the_token_and_a_known_run(project_root: Path) -> None:
    client = TestClient(create_app(project_root, token=TOKEN))
    for path in ("/api/events", "/api/runs/1/events"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/runs/7/events", headers=HEADERS).status_code == 404


def test_a_stopping_server_ends_its_streams(project_root: Path, monkeypatch) -> None:
    """``tomoprep serve`` sets ``app.state.stopping`` on Ctrl-C: an open stream ends instead of holding the stop."""
    monkeypatch.setattr(live, "TICK_S", 0.2)
    app = create_app(project_root, token=TOKEN)
    client = TestClient(app)
    threading.Timer(0.6, app.state.stopping.set).start()
    started = time.monotonic()
    assert [kind for kind, _ in _events(client, "/api/events")] == ["runs"]  # the first state, then the end
    assert time.monotonic() - started < 10
