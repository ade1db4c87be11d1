"""`tomoprep report`: one self-contained HTML page with the runs, parameters, pictures and per-series decisions."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from small_project import build_project
from tomoprep.cli.main import build_app
from tomoprep.project import open_project
from tomoprep.report import summarize_project


class _Resources(HTMLParser):
    """Every address the page would load (src, href of stylesheets/scripts) and its script tags."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.scripts += tag == "script"
        if tag in ("img", "script", "iframe") and values.get("src"):
            self.loaded.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.loaded.append(values["href"] or "")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project (import, clean by hand) with a picture recorded with the cleaning; read only."""
    root = build_project(tmp_path_factory.mktemp("report"))
    with open_project(root) as project:
        cleaned = project.get_run("002_clean")
        figure = Figure(figsize=(2, 1))  # as a step records its QC plot
        figure.subplots().plot([0, 1], [0, 1])
        picture = project.run_dir(cleaned) / "TS_A" / "qc.png"
        picture.parent.mkdir(exist_ok=True)
        figure.savefig(picture)
        project.add_artifact(cleaned.id, picture, kind="png", unit="TS_A")
    return root


def test_the_report_is_one_page_that_loads_nothing_and_shows_every_run_parameter_and_picture(
    built: Path, tmp_path: Path
) -> None:
    root = built
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(build_app("report"), ["report", "-p", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    resources = _Resources()
    resources.feed(page)
    assert resources.scripts == 0
    assert resources.loaded and all(src.startswith("data:image/png;base64,") for src in resources.loaded)
    assert "001_import" in page and "002_clean" in page and page.count('class="SUCCEEDED"') >= 2
    assert "tilt_axis_angle_deg" in page and "dose_per_tilt_e_per_angstrom2" in page  # every parameter of every run
    assert "&quot;TS_A:1;TS_B:0,4&quot;" in page  # ... with its value as given
    assert re.search(r"tomoprep 0\.\d+\.\d+", page)


def test_the_report_says_per_series_which_tilts_were_excluded_and_why(built: Path) -> None:
    root = built
    with open_project(root, read_only=True) as project:
        summary = summarize_project(project)
    series = {s.name: s for s in summary.series}
    assert sorted(series) == ["TS_A", "TS_B"]
    assert [(t.acquisition_index, t.tilt_deg) for t in series["TS_B"].excluded] == [(0, -6.0), (4, 6.0)]
    assert all(t.reason for t in series["TS_B"].excluded)
    assert series["TS_A"].run_label == "002_clean" and series["TS_A"].refined_axis_deg is None
    assert any("excluded" in note.message for _, note in series["TS_A"].decisions)
    assert not summary.runs[0].pictures and "qc.png" in [p.name for p in summary.runs[1].pictures]


def test_a_failed_run_shows_as_failed_with_its_error(built: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(built, tmp_path / "copy"))
    with open_project(root) as project:
        failed = project.create_run("align", {"working_size_px": 256}, [2], "0.1.0")
        project.set_run_status(failed.id, "FAILED", error="Traceback ...\nValueError: no slab found")
    out = tmp_path / "r.html"
    assert CliRunner().invoke(build_app("report"), ["report", "-p", str(root), "-o", str(out)]).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert 'class="FAILED">FAILED' in page and "ValueError: no slab found" in page
