"""The web UI in a real browser (Debian's Chromium driven by Playwright) against a real server on a real project.

Skipped where Chromium is not installed (`.ci/run` installs it with apt-get). Each page is photographed into
docs/web/ for docs/web.md.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _serving(root: Path) -> Iterator[str]:
    """A uvicorn server of the project at ``root`` in a thread; its address without the token."""
    import uvicorn

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
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(small_root: Path) -> Iterator[str]:
    """The small project served."""
    with _serving(small_root) as address_:
        yield address_


@pytest.fixture(scope="module")
def processed_server(processed_project: Path) -> Iterator[str]:
    """The processed project (motion correction, cleaning, alignment, CTF) served."""
    with _serving(processed_project) as address_:
        yield address_


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


def test_a_step_launched_from_its_form_runs_and_the_page_shows_it_finish(server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{server}/?token={TOKEN}")
    page.click("a[href='/launch/clean']")
    page.fill("#shift_fraction", "2")  # above its limit of 1
    page.fill("#working_size_px", "-5")  # below its limit of 128
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('status').textContent.includes('invalid')")
    assert "2 invalid field(s)" in page.inner_text("#status")
    assert "less than or equal to 1" in page.inner_text("#error-shift_fraction")
    assert "greater than or equal to 128" in page.inner_text("#error-working_size_px")
    PICTURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PICTURES / "launch.png"), full_page=True)
    page.fill("#shift_fraction", "0.15")
    page.fill("#working_size_px", "512")
    page.uncheck("#auto")
    page.fill("#exclude", "TS_B:2")
    page.select_option("#input_run", "002_clean")
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/0*_clean")
    try:
        page.wait_for_function("document.body.innerText.includes('SUCCEEDED')", timeout=120_000)  # the poller reloads
    except Exception:
        raise AssertionError(page.inner_text("body")) from None
    label = page.url.rsplit("/", 1)[1]
    run = page.request.get(f"{server}/api/runs/{label}").json()
    assert run["params"]["exclude"] == "TS_B:2" and run["params"]["auto"] is False
    assert run["inputs"] == ["002_clean"]
    page.close()


def _open_plots(browser, processed_server: str, path: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{processed_server}/?token={TOKEN}")
    page.goto(f"{processed_server}{path}")
    page.wait_for_selector("#plots .plot svg .point")
    return page, errors


def _hover_each_chart(page, kind: str) -> list[str]:
    """Hover the first point of each chart of ``kind`` drawn per tilt; the tooltips' texts."""
    texts = []
    charts = page.locator(f"#plots .kind-{kind} .plot:not(.axis-search)")
    for k in range(charts.count()):
        chart = charts.nth(k)
        chart.locator(".point").first.hover(force=True)  # points may overlap: the one on top answers
        tooltip = chart.locator(".tooltip")
        tooltip.wait_for(state="visible")
        texts.append(tooltip.inner_text())
    return texts


@pytest.mark.parametrize(
    ("path", "kind", "charts"),
    [("/runs/002_motioncorr", "motion", 2), ("/series/TS_01", "motion", 2), ("/runs/004_align", "alignment", 3)],
)
def test_plots_show_the_tilt_of_a_hovered_point(processed_server: str, browser, path: str, kind: str,
                                                charts: int) -> None:  # fmt: skip
    page, errors = _open_plots(browser, processed_server, path)
    assert page.locator(f"#plots .kind-{kind} .plot:not(.axis-search)").count() == charts
    texts = _hover_each_chart(page, kind)
    assert all(re.search(r"tilt [+-]?\d+\.\d°, acquisition #\d+", text) for text in texts), texts
    if path.startswith("/series/"):  # as the newest run left it: the tilt the cleaning excluded (+30°, #5) is hollow
        hollow = page.locator(f"#plots .kind-{kind} circle.point[fill='#fff']")
        assert hollow.count() >= 3  # on its trajectory and at its total
        hollow.last.hover(force=True)
        said = page.locator(f"#plots .kind-{kind} .tooltip:visible").inner_text()
        assert "tilt +30.0°, acquisition #5" in said and "excluded: manual" in said
    if kind == "alignment":
        assert "Thickness: " in page.inner_text(f"#plots .kind-{kind} .facts")
        assert any(text.startswith("tilt") and re.search(r"match score -?\d\.\d{3}", text) for text in texts), texts
        _check_axis_searches(page)
    if path != "/runs/002_motioncorr":  # the pictures of docs/web.md
        page.locator(f"#plots .kind-{kind} .point").last.hover(force=True)
        PICTURES.mkdir(parents=True, exist_ok=True)
        page.locator(f"#plots .kind-{kind}").screenshot(path=str(PICTURES / f"plots-{kind}.png"))
    assert not errors, errors
    page.close()


def _check_axis_searches(page) -> None:
    """The axis searches' curves: common lines, then the final cross-prediction, each with its chosen angle marked
    (the final one the refined axis the facts give) and a tooltip giving the angle and score of a point."""
    searches = page.locator("#plots .kind-alignment .plot.axis-search")
    assert searches.count() == 2
    titles = [searches.nth(k).locator(".title").text_content() for k in range(2)]
    assert titles == ["Axis search: common lines", "Axis search: cross-prediction (final)"]
    chosen = searches.nth(1).locator(".mark-label").text_content()
    refined = re.search(r"refined (-?\d+\.\d\d)°", page.inner_text("#plots .kind-alignment .facts"))
    assert refined and chosen == f"chosen {refined.group(1)}°", (chosen, refined)
    searches.nth(1).locator(".point").first.hover(force=True)
    assert re.match(r"axis -?\d+\.\d\d°: score -?\d\.\d{4}", searches.nth(1).locator(".tooltip").inner_text())


def test_clicking_a_ctf_point_draws_that_tilts_spectrum(processed_server: str, browser) -> None:
    page, errors = _open_plots(browser, processed_server, "/runs/005_ctf")
    page.wait_for_selector("#plots .plot-spectrum svg")
    assert page.locator("#plots .kind-ctf .plot").count() == 4  # 3 charts and the spectrum of the tilt nearest 0°
    assert "Spectrum of tilt 0.0° (#0)" in page.inner_text("#plots .plot-spectrum")
    texts = _hover_each_chart(page, "ctf")
    assert all("defocus" in text or "data at" in text for text in texts), texts
    first = page.locator("#plots .kind-ctf .plot").first
    points = first.locator(".point")
    target = points.nth(points.count() - 1)  # the last acquired, whichever tilt it is
    target.hover(force=True)
    said = first.locator(".tooltip").inner_text()
    index = int(re.search(r"acquisition #(\d+)", said).group(1))
    angle = re.search(r"tilt ([+-]?\d+\.\d)°", said).group(1)
    target.click(force=True)
    page.wait_for_function(f"document.querySelector('#plots .plot-spectrum').innerText.includes('(#{index})')")
    assert f"Spectrum of tilt {angle}° (#{index})" in page.inner_text("#plots .plot-spectrum")
    chosen = page.locator("#plots .kind-ctf .point.chosen")
    assert chosen.count() == 3 and {chosen.nth(k).get_attribute("data-tilt") for k in range(3)} == {str(index)}
    page.locator("#plots .plot-spectrum .point").nth(5).hover(force=True)
    PICTURES.mkdir(parents=True, exist_ok=True)
    page.locator("#plots .kind-ctf").screenshot(path=str(PICTURES / "plots-ctf.png"))
    assert not errors, errors
    page.close()


def test_a_run_launched_elsewhere_shows_up_live_on_the_project_page(server: str, browser) -> None:
    """The project page follows the project by server-sent events: a run started by another client appears, and
    its status changes, without the page being reloaded by hand or asking the API."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{server}/?token={TOKEN}")
    page.wait_for_function("document.body.dataset.live === 'events'")
    launch = {"params": {"auto": False, "exclude": "TS_A:3"}, "input_run": "002_clean"}
    answer = page.request.post(f"{server}/api/steps/clean/runs", data=launch)
    label = answer.json()["run"]
    page.wait_for_function(f"document.body.innerText.includes('{label}')", timeout=60_000)
    row = page.locator("table tr", has_text=label)
    try:
        page.wait_for_function(
            f"Array.from(document.querySelectorAll('tr')).some(r => r.innerText.includes('{label}') "
            "&& r.innerText.includes('SUCCEEDED'))", timeout=120_000)  # fmt: skip
    except Exception:
        raise AssertionError(page.inner_text("body")) from None
    assert "SUCCEEDED" in row.inner_text()
    assert any(url.endswith("/api/events") for url in asked)
    assert not any(url.endswith("/api/runs") for url in asked)  # no polling: the stream did it
    page.close()


def test_a_running_runs_page_appends_its_log_lines_live_and_reloads_when_it_ends(server: str, small_root: Path,
                                                                                browser) -> None:  # fmt: skip
    """A run made by another process's runner (here a thread with a step of the tests): a line logged while a unit
    works reaches its page by server-sent events without a reload; the page reloads once the run has ended."""
    import importlib.util

    from tomoprep.execution import run_step
    from tomoprep.project import open_project

    path = Path(__file__).parents[1] / "execution" / "toy_steps.py"
    spec = importlib.util.spec_from_file_location("toy_steps_browser", path)
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{server}/?token={TOKEN}")
    runs: list = []

    def work() -> None:
        with open_project(small_root) as project:
            run_step(project, toy.TOY, {"names": ["TS_01", "TS_02"], "seconds_per_unit": 8.0},
                     on_created=runs.append)  # fmt: skip

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 30
    while not runs:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page.goto(f"{server}/runs/{runs[0].label}")
    page.wait_for_function("document.body.dataset.live === 'events'")
    fallback = browser.new_page(viewport={"width": 1200, "height": 900})  # a browser without EventSource
    fallback.add_init_script("delete window.EventSource")
    fallback.goto(f"{server}/?token={TOKEN}")
    fallback.goto(f"{server}/runs/{runs[0].label}")
    fallback.wait_for_function("document.body.dataset.live === 'polling'")
    page.evaluate("window.notReloaded = true")
    with open_project(small_root) as project:
        project.log_event(runs[0].id, "a note written while TS_01 works", unit="TS_01")
    page.wait_for_function("document.getElementById('log').textContent.includes('while TS_01 works')")
    assert page.evaluate("window.notReloaded === true")  # the line came by the stream, into the page as it was
    assert page.inner_text("#run-status") == "RUNNING"
    page.wait_for_function("document.getElementById('run-status').textContent === 'SUCCEEDED' && "
                           "window.notReloaded === undefined", timeout=60_000)  # fmt: skip
    worker.join(timeout=30)
    assert "made TS_02" in page.inner_text("#log")
    fallback.wait_for_function("document.getElementById('run-status').textContent === 'SUCCEEDED'", timeout=30_000)
    page.close()
    fallback.close()


def test_a_chart_draws_values_beyond_its_span_on_the_edge_and_says_so(server: str, browser) -> None:
    """chart.js as the pages load it: a point above the fixed y limits is a triangle on the top edge whose
    tooltip gives its value; the others are circles at their values, hollow where asked."""
    page = browser.new_page()
    page.goto(f"{server}/?token={TOKEN}")
    page.set_content('<link rel="stylesheet" href="/static/style.css"><div id="box"></div>')
    page.add_script_tag(url=f"{server}/static/chart.js")
    page.evaluate("""() => drawChart(document.getElementById("box"), {title: "t", x: {label: "tilt angle (°)"},
        y: {label: "defocus (µm)", range: [3, 5], clip: true}, series: [{colour: "#00f", line: "x", points: [
          {x: -10, y: 4.0, tip: "a"}, {x: 0, y: 9.5, tip: "far off: 9.5 µm"},
          {x: 10, y: 4.2, tip: "b", hollow: true}]}]})""")
    assert page.locator("#box circle.point").count() == 2 and page.locator("#box circle[fill='#fff']").count() == 1
    edge = page.locator("#box path.point")
    assert edge.count() == 1
    frame_top = page.locator("#box .axes rect").bounding_box()["y"]
    assert abs(edge.bounding_box()["y"] + edge.bounding_box()["height"] / 2 - frame_top) < 6  # on the top edge
    edge.hover(force=True)
    assert page.inner_text("#box .tooltip") == "far off: 9.5 µm\n(beyond the plotted span)"
    page.close()
