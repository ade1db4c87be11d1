"""`tomoprep config`: the project's settings of where units run, checked as the command line's options, used as the
defaults of the commands that run steps (an option on the command line wins), and noted in each run's log."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from small_project import import_params, write_stacks
from tomoprep.cli.main import build_app
from tomoprep.execution.options import OPTIONS, setting_name
from tomoprep.project import init_project, open_project
from tomoprep.project.settings import settings_path


def tomoprep(*args: str):
    """Run a ``tomoprep`` command line in this process; returns typer's result."""
    return CliRunner().invoke(build_app(args[0]), list(args))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path / "project").close()
    return tmp_path / "project"


def _import_args(root: Path, tmp_path: Path) -> list[str]:
    params = import_params(write_stacks(tmp_path / "stacks"))
    return ["import", "-p", str(root), *(f"--{k.replace('_', '-')}={v}" for k, v in params.items())]


def _notes(root: Path, run_id: int) -> tuple[list[str], list[str]]:
    """The run's log lines about where units run, and its units' ``ran on HOST (process PID)`` lines."""
    with open_project(root) as proj:
        events = proj.events(run_id)
    return ([m for _, _, u, m in events if u is None and m.startswith("units run with:")],
            [m for _, _, u, m in events if u is not None and m.startswith("ran on ")])  # fmt: skip


def test_set_get_unset_and_list_round_trip_through_the_project_folder(project: Path) -> None:
    p = ["-p", str(project)]
    for key, value in (("executor", "dask"), ("jobs", "3"), ("memory", "64GB"), ("min_jobs", "2"),
                       ("scheduler", "tcp://head-node:8786")):  # fmt: skip
        done = tomoprep("config", "set", key, value, *p)
        assert done.exit_code == 0, done.output
    assert "(was 3 in the project" in tomoprep("config", "set", "jobs", "4", *p).output
    assert tomoprep("config", "get", "executor", *p).output == "dask\n"
    assert tomoprep("config", "get", "jobs", *p).output == "4\n"
    assert tomoprep("config", "get", "cores", *p).output == "8\n"  # not set: the default
    assert tomoprep("config", "get", *p).output.splitlines() == [
        "executor = dask", "jobs = 4", "memory = 64GB", "min-jobs = 2", "scheduler = tcp://head-node:8786"]  # fmt: skip
    stored = tomllib.loads(settings_path(project).read_text())
    assert stored == {"executor": "dask", "jobs": 4, "memory": "64GB", "min-jobs": 2,
                      "scheduler": "tcp://head-node:8786"}  # numbers as TOML numbers  # fmt: skip
    listed = CliRunner().invoke(build_app("config"), ["config", "list", *p], env={"COLUMNS": "200"}).output
    rows = {line.split("│")[1].strip(): line.split("│")[2:4] for line in listed.splitlines() if line.count("│") > 4}
    assert set(rows) == {setting_name(n) for n in OPTIONS}
    assert [c.strip() for c in rows["jobs"]] == ["4", "project setting"]
    assert [c.strip() for c in rows["walltime"]] == ["04:00:00", "default"]
    assert "removed" in tomoprep("config", "unset", "executor", *p).output
    assert "was not set" in tomoprep("config", "unset", "executor", *p).output
    assert tomoprep("config", "get", "executor", *p).output == "local\n"
    assert "executor" not in tomllib.loads(settings_path(project).read_text())
    assert tomoprep("repair", *p).exit_code == 0  # the settings are not part of the index that repair rebuilds
    assert tomoprep("config", "get", "jobs", *p).output == "4\n"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [("executor", "daks", "local or dask"), ("cluster", "pbs", "local or slurm"), ("jobs", "0", "≥ 1"),
     ("cores", "eight", "≥ 1"), ("gpus", "2.0", "≥ 0"), ("max-jobs", "1.5", "≥ 1"), ("memory", "lots", "32GB"),
     ("walltime", "4 hours", "04:00:00"), ("scheduler", "head-node", "tcp://head-node:8786"),
     ("queue", "gpu queue", "no spaces")],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_key_and_what_it_takes(project: Path, key: str, value: str,
                                                                  allowed: str) -> None:  # fmt: skip
    done = tomoprep("config", "set", key, value, "-p", str(project))
    assert done.exit_code == 2 and f"{key}: {value!r} is not allowed" in done.output and allowed in done.output
    assert not settings_path(project).exists()


def test_an_unknown_key_is_refused_with_the_keys_there_are(project: Path) -> None:
    done = tomoprep("config", "set", "executer", "dask", "-p", str(project))
    assert done.exit_code == 2 and "'executer' is not a setting" in done.output and "max-worker-losses" in done.output


def test_the_command_line_option_follows_the_same_rules(project: Path, tmp_path: Path) -> None:
    done = tomoprep(*_import_args(project, tmp_path), "--walltime", "4 hours")
    assert done.exit_code == 2 and "--walltime: '4 hours' is not allowed" in done.output
    with open_project(project) as proj:
        assert proj.list_runs() == []  # refused before anything ran


def test_a_bad_hand_edited_settings_file_is_refused_naming_the_file(project: Path, tmp_path: Path) -> None:
    settings_path(project).write_text('executor = "dask"\ncores = 0\n')
    done = tomoprep(*_import_args(project, tmp_path))
    assert done.exit_code == 2 and "settings.toml" in done.output and "cores" in done.output, done.output
    assert tomoprep("config", "set", "cores", "4", "-p", str(project)).exit_code == 0  # the fix the error names
    settings_path(project).write_text("executor = dask\n")
    done = tomoprep("config", "list", "-p", str(project))
    assert done.exit_code == 2 and "settings.toml" in done.output and "not valid TOML" in done.output
    settings_path(project).unlink()
    settings_path(project).mkdir()  # a file that cannot be read: a clear error, not a crash
    done = tomoprep("config", "set", "jobs", "2", "-p", str(project))
    assert done.exit_code == 2 and "settings.toml: cannot be read" in done.output, done.output


def test_the_command_line_wins_over_the_project_setting_and_the_log_says_which_gave_what(
    project: Path, tmp_path: Path
) -> None:
    for key, value in (("executor", "dask"), ("jobs", "2")):
        assert tomoprep("config", "set", key, value, "-p", str(project)).exit_code == 0
    done = tomoprep(*_import_args(project, tmp_path), "--executor", "local", "-j", "1")
    assert done.exit_code == 0, done.output
    where, ran_on = _notes(project, 1)
    assert where == ["units run with: executor local (command line), jobs 1 (command line)"]
    assert ran_on == []  # one job: in this process, not on the cluster the project setting names


def test_a_project_setting_is_the_default_of_a_step_command(project: Path, tmp_path: Path) -> None:
    assert tomoprep("config", "set", "jobs", "2", "-p", str(project)).exit_code == 0
    done = tomoprep(*_import_args(project, tmp_path))
    assert done.exit_code == 0, done.output
    where, ran_on = _notes(project, 1)
    assert where == ["units run with: executor local (default), jobs 2 (project setting)"]
    pids = {int(line.rsplit(" ", 1)[1].rstrip(")")) for line in ran_on}
    assert len(ran_on) == 2 and os.getpid() not in pids  # in the pool of 2 processes the setting asked for
