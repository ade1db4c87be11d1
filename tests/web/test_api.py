"""The web UI's app on a real project, through FastAPI's TestClient: the token, the pages, the JSON API, and files
only from inside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from small_project import EXCLUDED, build_project
from tomoprep.web.app import create_app
from tomoprep.web.security import is_local_host
from tomoprep.web.serve import ServeError, address, check_binding

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project (import, clean by hand), with a file outside it and a link from inside to that file."""
    folder = tmp_path_factory.mktemp("web")
    project_root = build_project(folder)
    (folder / "secret.txt").write_text("not for the browser")
    os.symlink(folder / "secret.txt", project_root / "runs" / "002_clean" / "link_out.txt")
    return project_root


@pytest.fixture
def client(root: Path) -> TestClient:
    return TestClient(create_app(root, token=TOKEN))


def test_requests_without_the_token_are_refused_and_the_token_once_sets_a_cookie(client: TestClient) -> None:
    for path in ("/", "/api/runs", "/runs/001_import", "/files/runs/001_import/run.json", "/openapi.json"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    first = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and "token" not in first.headers["location"]
    assert "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie carries on


def test_the_pages_show_the_runs_a_run_and_a_series_with_its_exclusions(client: TestClient) -> None:
    client.get(f"/?token={TOKEN}")
    home = client.get("/").text
    table = home[home.index("<table") :]
    assert table.index("002_clean") < table.index("001_import")  # newest first
    assert 'href="/series/TS_B"' in home
    run = client.get("/runs/002_clean").text
    assert "&quot;TS_A:1;TS_B:0,4&quot;" in run and 'href="/runs/001_import"' in run
    series = client.get("/series/TS_B").text
    assert series.count("manual") >= 2
    assert 'id="plots"' not in series  # imported and cleaned: nothing to plot
    assert client.get("/runs/999_nothing").status_code == 404
    style = client.get("/static/style.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


def test_the_api_gives_runs_series_and_tilts_as_json(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    runs = client.get("/api/runs", headers=headers).json()
    assert [r["label"] for r in runs] == ["001_import", "002_clean"]
    assert runs[1]["inputs"] == ["001_import"] and runs[1]["params"]["exclude"] == EXCLUDED
    detail = client.get("/api/runs/2", headers=headers).json()
    assert detail["label"] == "002_clean" and detail["events"] and detail["artifacts"]
    series = client.get("/api/runs/002_clean/tilt-series", headers=headers).json()
    excluded = {s["name"]: [t["acquisition_index"] for t in s["tilts"] if t["excluded"]] for s in series}
    assert excluded == {"TS_A": [1], "TS_B": [0, 4]}
    views = client.get("/api/series", headers=headers).json()
    assert {v["name"]: len(v["excluded"]) for v in views} == {"TS_A": 1, "TS_B": 2}


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/..%2Fsecret.txt",
        "/files/runs/../../secret.txt",
        "/files/runs/002_clean/link_out.txt",  # a link inside the project that points out of it
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/runs/002_clean",  # a folder
    ],
)
def test_no_file_outside_the_project_is_ever_served(client: TestClient, path: str) -> None:
    answer = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404, (path, answer.status_code)
    assert "not for the browser" not in answer.text and "root:" not in answer.text


def test_a_file_of_the_project_is_served(client: TestClient, root: Path) -> None:
    answer = client.get("/files/runs/002_clean/tilt_series.star", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.content == (root / "runs" / "002_clean" / "tilt_series.star").read_bytes()


def test_serving_without_a_token_is_refused_on_an_address_others_can_reach() -> None:
    with pytest.raises(ServeError, match="without a token"):
        check_binding("0.0.0.0", "")
    with pytest.raises(ServeError):
        check_binding("192.168.1.20", "")
    assert check_binding("127.0.0.1", "") == ""
    made = check_binding("0.0.0.0", None)
    assert len(made) >= 40 and made != check_binding("0.0.0.0", None)
    assert is_local_host("::1") and is_local_host("localhost") and not is_local_host("example.org")
    assert address("127.0.0.1", 8123, "abc") == "http://127.0.0.1:8123/?token=abc"


@pytest.mark.slow
def test_two_browsers_and_a_command_line_cleaning_at_once_lose_no_run(root: Path, tmp_path: Path) -> None:
    """Two gallery saves through the app (each in its own thread, as two users) while `tomoprep clean` runs in
    another process: every run is recorded once, with its own number, folder and result."""
    import shutil
    import subprocess
    import sys
    import threading

    copy = Path(shutil.copytree(root, tmp_path / "project", symlinks=True))
    answers: dict[str, dict] = {}

    def save(series: str, tilt: int) -> None:
        client = TestClient(create_app(copy, token=TOKEN))
        answer = client.post(f"/api/runs/002_clean/series/{series}/exclusions", json={"exclude": [tilt]},
                             headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        answers[series] = {"code": answer.status_code, **answer.json()}

    command = [sys.executable, "-m", "tomoprep", "clean", "-p", str(copy), "--no-auto", "--exclude", "TS_A:4",
               "--input", "002_clean"]  # fmt: skip
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    users = [threading.Thread(target=save, args=args) for args in (("TS_A", 3), ("TS_B", 2))]
    for user in users:
        user.start()
    for user in users:
        user.join(timeout=300)
    output, _ = cli.communicate(timeout=300)
    assert cli.returncode == 0, output
    assert all(a["code"] == 200 and a["status"] == "SUCCEEDED" for a in answers.values()), answers
    client = TestClient(create_app(copy, token=TOKEN))
    runs = client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    labels = [r["label"] for r in runs]
    assert len(labels) == 5 and len(set(labels)) == 5 and all(r["status"] == "SUCCEEDED" for r in runs)
    excluded_by_run = {}
    for label in labels[2:]:
        series = client.get(f"/api/runs/{label}/tilt-series", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        excluded_by_run[label] = {s["name"]: [t["acquisition_index"] for t in s["tilts"] if t["excluded"]]
                                  for s in series}  # fmt: skip
    expected = [{"TS_A": [1, 3], "TS_B": [0, 4]}, {"TS_A": [1], "TS_B": [0, 2, 4]}, {"TS_A": [1, 4], "TS_B": [0, 4]}]
    assert sorted(excluded_by_run.values(), key=str) == sorted(expected, key=str)


TOY_PLUGIN = (Path(__file__).parents[1] / "execution" / "toy_steps.py").read_text()


@pytest.mark.slow
def test_a_launched_run_can_be_stopped_and_resumed(tmp_path: Path, install_plugin_steps, monkeypatch) -> None:
    """A run started from the UI runs in its own process: stopping it records it FAILED (interrupted), resuming
    finishes it without redoing the units done."""
    import time

    from tomoprep.project import init_project

    folder = install_plugin_steps({"toy": "toy_steps:TOY"}, {"toy_steps.py": TOY_PLUGIN})
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")  # the worker's too
    with init_project(tmp_path / "project"):
        pass
    client = TestClient(create_app(tmp_path / "project", token=TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    log = tmp_path / "calls.txt"
    params = {"names": ["TS_01", "TS_02", "TS_03"], "seconds_per_unit": 1.5, "call_log": str(log)}
    started = client.post("/api/steps/toy/runs", json={"params": params}, headers=headers)
    assert started.status_code == 200, started.text
    label = started.json()["run"]
    deadline = time.monotonic() + 60
    while not log.is_file() or "TS_02" not in log.read_text():  # stopped during the second unit
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.post(f"/api/runs/{label}/stop", headers=headers).status_code == 200
    while client.get(f"/api/runs/{label}", headers=headers).json()["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = client.get(f"/api/runs/{label}", headers=headers).json()
    assert stopped["status"] == "FAILED" and "KeyboardInterrupt" in stopped["error"]
    assert client.post(f"/api/runs/{label}/stop", headers=headers).status_code == 409  # not running any more
    assert client.post(f"/api/runs/{label}/resume", headers=headers).json()["run"] == label
    while client.get(f"/api/runs/{label}", headers=headers).json()["status"] != "SUCCEEDED":
        assert time.monotonic() < deadline + 60
        time.sleep(0.2)
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls.count("TS_01") == 1 and calls.count("TS_03") == 1  # the unit done before the stop is not redone


def test_a_form_with_invalid_fields_gets_every_problem_at_once(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.post("/api/steps/clean/runs", headers=headers,
                         json={"params": {"shift_fraction": 2, "working_size_px": -5, "colour": "red"}})  # fmt: skip
    assert answer.status_code == 422
    fields = sorted(e["field"] for e in answer.json()["detail"]["errors"])
    assert fields == ["colour", "shift_fraction", "working_size_px"]
    form = client.get("/launch/clean", headers=headers).text
    assert 'id="working_size_px"' in form and 'min="128"' in form and 'max="4096"' in form
    assert '<option value="002_clean" selected>' in form  # the default input run
    assert client.get("/launch/nothing", headers=headers).status_code == 404
