"""The web UI in a real browser (Debian's Chromium driven by Playwright) against a real server on a real project.

Skipped where Chromium is not installed (`.ci/run` installs it with apt-get). Each page is photographed into
docs/web/ for docs/web.md.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from small_project import build_project
from tomoprep.web.app import create_app
from tomoprep.web.serve import address, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.slow,
]
PICTURES = Path(__file__).parents[2] / "docs" / "web"
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A uvicorn server of the small project in a thread; its address without the token."""
    import uvicorn

    root = build_project(tmp_path_factory.mktemp("browser"))
    port = free_port("127.0.0.1")
    config = uvicorn.Config(create_app(root, token=TOKEN), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_the_printed_address_opens_the_project_and_its_pages_link_to_each_other(server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(address("127.0.0.1", int(server.rsplit(":", 1)[1]), TOKEN))
    assert "token" not in page.url  # the cookie holds it from here on
    rows = page.locator("table tr")
    assert rows.nth(1).inner_text().startswith("002_clean") and "SUCCEEDED" in rows.nth(1).inner_text()
    PICTURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PICTURES / "project.png"), full_page=True)
    page.click("text=002_clean")
    assert page.url.endswith("/runs/002_clean")
    assert "TS_A:1;TS_B:0,4" in page.inner_text("body")
    page.wait_for_load_state("load")  # the pictures in too
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(PICTURES / "run.png"), full_page=True)
    page.click("text=001_import")
    assert page.url.endswith("/runs/001_import")
    page.goto(f"{server}/")
    page.click("text=TS_B")
    assert page.locator("text=manual").count() >= 2
    page.screenshot(path=str(PICTURES / "series.png"), full_page=True)
    page.close()


def test_a_browser_without_the_token_sees_no_data(server: str, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    answer = page.goto(f"{server}/")
    assert answer is not None and answer.status == 401
    assert "002_clean" not in page.content() and "tomoprep serve" in page.inner_text("body")
    context.close()


def test_the_space_bar_in_a_gallery_excludes_a_tilt_and_saving_makes_a_new_cleaning_run(server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{server}/?token={TOKEN}")
    page.goto(f"{server}/runs/002_clean")
    page.click("a[href='/runs/002_clean/gallery/TS_A']")
    page.wait_for_load_state("load")
    tiles = page.locator(".tilt")
    assert tiles.count() == 5
    angles = [float(t.split("°")[0]) for t in tiles.all_inner_texts()]
    assert angles == sorted(angles)  # by tilt angle
    assert "excluded: manual" in tiles.nth(1).inner_text()  # tilt 1 (-3°), excluded by the cleaning shown
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")  # tilt 2 (0°): excluded
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Space")  # tilt 1: kept again
    assert page.locator(".tilt.changed").count() == 2 and "2 change(s)" in page.inner_text("#status")
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    PICTURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PICTURES / "gallery.png"), full_page=True)
    page.click("#save")
    page.wait_for_url("**/runs/003_clean")
    assert "SUCCEEDED" in page.inner_text("body")
    answer = page.request.get(f"{server}/api/runs/003_clean/tilt-series").json()
    excluded = {s["name"]: [t["acquisition_index"] for t in s["tilts"] if t["excluded"]] for s in answer}
    assert excluded == {"TS_A": [2], "TS_B": [0, 4]}  # the other series as it was
    assert page.request.get(f"{server}/api/runs/003_clean").json()["inputs"] == ["002_clean"]
    page.close()
