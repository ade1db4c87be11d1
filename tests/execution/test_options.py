"""Where units run: each option from the command line, else the project's setting, else its default, checked by the
same rules wherever it comes from."""

from __future__ import annotations

import pytest

from tomoprep.execution.options import OPTIONS, OptionError, resolve_execution

NOT_GIVEN = dict.fromkeys(OPTIONS)


def test_the_command_line_wins_over_the_setting_and_the_setting_over_the_default() -> None:
    given = NOT_GIVEN | {"executor": "local", "cores": 4}
    settings = {"executor": "dask", "jobs": 3, "cores": "16", "max-jobs": 9}
    execution = resolve_execution(given, settings)
    assert execution.values["executor"] == "local" and execution.sources["executor"] == "command line"
    assert execution.values["cores"] == 4 and execution.sources["cores"] == "command line"
    assert execution.values["jobs"] == 3 and execution.sources["jobs"] == "project setting"
    assert execution.values["max_jobs"] == 9 and execution.sources["max_jobs"] == "project setting"
    assert execution.values["walltime"] == "04:00:00" and execution.sources["walltime"] == "default"


@pytest.mark.parametrize(
    ("given", "settings", "note"),
    [({}, {}, "executor local (default), jobs 1 (default)"),
     ({"executor": "dask"}, {"scheduler": "tcp://h:8786"},
      "executor dask (command line), scheduler tcp://h:8786 (project setting), max-worker-losses 1 (default)"),
     ({"jobs": 3}, {"executor": "dask"},
      "executor dask (project setting), cluster local (default), jobs 3 (command line), max-worker-losses 1 (default)"),
     ({}, {"executor": "dask", "cluster": "slurm", "queue": "gpu", "gpus": 1},
      "executor dask (project setting), cluster slurm (project setting), cores 8 (default), memory 32GB (default), "
      "gpus 1 (project setting), queue gpu (project setting), walltime 04:00:00 (default), min-jobs 0 (default), "
      "max-jobs 4 (default), max-worker-losses 1 (default)")],
)  # fmt: skip
def test_the_note_names_the_options_that_matter_for_the_executor_with_their_sources(given, settings, note) -> None:
    assert resolve_execution(NOT_GIVEN | given, settings).note() == f"units run with: {note}"


def test_a_bad_setting_names_the_file_the_key_and_what_it_takes() -> None:
    with pytest.raises(OptionError, match=r"^gpus \(project setting in /p/settings.toml\): 'two' .* ≥ 0"):
        resolve_execution(NOT_GIVEN, {"gpus": "two"}, settings_file="/p/settings.toml")
    with pytest.raises(OptionError, match=r"^/p/settings.toml: 'gpu' is not a setting .* use one of: executor"):
        resolve_execution(NOT_GIVEN, {"gpu": 1}, settings_file="/p/settings.toml")
    with pytest.raises(OptionError, match=r"^--jobs: 0 is not allowed; it takes a whole number ≥ 1"):
        resolve_execution(NOT_GIVEN | {"jobs": 0}, {})


def test_fewer_slurm_jobs_at_most_than_at_least_is_refused_saying_where_each_came_from() -> None:
    settings = {"executor": "dask", "cluster": "slurm", "min_jobs": 5}
    with pytest.raises(OptionError, match=r"min-jobs 5 \(project setting\) is more than max-jobs 2 \(command line\)"):
        resolve_execution(NOT_GIVEN | {"max_jobs": 2}, settings)
    assert resolve_execution(NOT_GIVEN | {"max_jobs": 2}, {"min_jobs": 5}).values["executor"] == "local"  # unused
