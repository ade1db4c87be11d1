"""Plugin steps join through the ``tomoprep.steps`` entry points, each guarded: a broken one is named in a warning
and left out, the others load, and no plugin takes the name of another step.

The plugins here are a real installed distribution: a ``.dist-info`` folder with its ``entry_points.txt`` on
``sys.path``, found by :mod:`importlib.metadata` as pip-installed plugins are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tomoprep.steps import BUILTIN_STEP_MODULES, all_steps, get_step

PLUGIN_MODULE = """
from pathlib import Path

from tomoprep.steps.base import Params, Step, UnitOutput


class GreetParams(Params):
    pass


def greet(payload, params, output_dir: Path) -> UnitOutput:
    return UnitOutput(tilt_series=payload, notes=("hello",))


GOOD = Step(name="greet", title="Say hello to each tilt series.", params=GreetParams, run=greet)
TAKEN_NAME = Step(name="align", title="A second step named align.", params=GreetParams, run=greet)
NOT_A_STEP = 3
"""

ENTRY_POINTS = """[tomoprep.steps]
greet = tomoprep_test_plugins:GOOD
second_align = tomoprep_test_plugins:TAKEN_NAME
number = tomoprep_test_plugins:NOT_A_STEP
broken = tomoprep_test_broken_plugin:STEP
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding an installed plugin distribution, put first on ``sys.path``."""
    (tmp_path / "tomoprep_test_plugins.py").write_text(PLUGIN_MODULE)
    (tmp_path / "tomoprep_test_broken_plugin.py").write_text("raise ImportError('needs a library not installed')\n")
    info = tmp_path / "tomoprep_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tomoprep-test-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_good_plugins_load_and_bad_ones_are_named_in_warnings(plugins: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps = all_steps()
        greet, align = get_step("greet"), get_step("align")
    names = [step.name for step in steps]
    assert names[: len(BUILTIN_STEP_MODULES)] == list(BUILTIN_STEP_MODULES)
    assert names.count("greet") == 1 and names.count("align") == 1
    assert align.title != "A second step named align." and greet.title == "Say hello to each tilt series."
    messages = sorted({str(w.message) for w in caught})
    assert len(messages) == 3
    broken, number, second_align = messages
    assert "'broken'" in broken and "ImportError: needs a library not installed" in broken
    assert "'number'" in number and "of type 'int', not a tomoprep Step" in number
    assert "'second_align'" in second_align and "a step named 'align' exists already" in second_align


def test_the_command_line_lists_the_good_plugin_and_warns_of_the_others(plugins: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(plugins), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "tomoprep", "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "greet" in done.stdout and "Say hello to each tilt series." in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    warned = " ".join((done.stdout + done.stderr).split())
    for name in ("'broken'", "'number'", "'second_align'"):
        assert f"warning: plugin step {name}" in warned
