"""Units on a real Dask cluster: the same outputs as the local executor, a worker killed mid-unit, the SLURM job
script, and `dask scheduler` + `dask worker` started as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from small_project import EXCLUDED, import_params, write_stacks
from tomoprep.cli.execution import OPTIONS
from tomoprep.cli.main import build_app
from tomoprep.execution import run_step
from tomoprep.execution.dask_executor import ClusterSettings, dask_executor, slurm_cluster
from tomoprep.project import init_project, open_project
from tomoprep.steps import builtin_steps, get_step

distributed = pytest.importorskip("distributed")
TOY_PLUGIN = (Path(__file__).parent / "toy_steps.py").read_text()


def _tables(root: Path) -> dict[str, str]:
    files = sorted(root.glob("runs/*/tilt_series/*.star"))
    return {str(p.relative_to(root)): "".join(line for line in p.read_text().splitlines(True)
                                              if not line.startswith("#")) for p in files}  # fmt: skip


def _import_and_clean(root: Path, glob: str, executor) -> None:
    with init_project(root) as project:
        for name, params in (("import", import_params(glob)), ("clean", {"auto": True, "exclude": EXCLUDED})):
            run = run_step(project, get_step(name), params, executor=executor)
            assert run.status == "SUCCEEDED", run.error


def test_no_step_has_a_parameter_named_as_an_execution_option() -> None:
    for step in builtin_steps():
        assert not set(step.params.model_fields) & set(OPTIONS), step.name


def test_the_slurm_job_script_carries_the_options() -> None:
    settings = ClusterSettings(cluster="slurm", cores=12, memory="64GB", gpus=2, queue="gpu", walltime="02:30:00")
    cluster = slurm_cluster(settings)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=12", "#SBATCH -t 02:30:00", "#SBATCH --gres=gpu:2"):
        assert line in script, script
    assert "--nthreads 12" in script and "--resources GPU=2" in script and "#SBATCH --mem=60G" in script


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_outputs_of_the_local_executor(tmp_path: Path) -> None:
    glob = write_stacks(tmp_path / "stacks")
    _import_and_clean(tmp_path / "local", glob, None)
    with dask_executor(ClusterSettings(workers=2)) as executor:
        _import_and_clean(tmp_path / "dask", glob, executor)
    assert _tables(tmp_path / "dask") == _tables(tmp_path / "local") and len(_tables(tmp_path / "dask")) == 4
    with open_project(tmp_path / "dask") as project:
        notes = [m for _, _, unit, m in project.events(2) if unit and m.startswith("ran on ")]
    assert len(notes) == 2  # each unit says which worker ran it


@pytest.mark.slow
def test_a_worker_killed_mid_unit_has_its_unit_run_again_and_the_run_finishes(
    tmp_path: Path, install_plugin_steps, monkeypatch
) -> None:
    import dask

    folder = install_plugin_steps({"toy": "toy_steps:TOY"}, {"toy_steps.py": TOY_PLUGIN})
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")  # the workers'
    log = tmp_path / "calls.txt"
    params = {"names": ["TS_01", "TS_02", "TS_03", "TS_04"], "seconds_per_unit": 3.0, "call_log": str(log)}
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    result: dict[str, object] = {}

    def run_toy() -> None:  # the project's index is used in the thread that opened it
        settings = ClusterSettings(scheduler=cluster.scheduler_address)
        with init_project(tmp_path / "project") as project, dask_executor(settings) as executor:
            result["run"] = run_step(project, get_step("toy"), params, executor=executor)

    try:
        worker = threading.Thread(target=run_toy)
        worker.start()
        deadline = time.monotonic() + 180
        while (not log.is_file() or not log.read_text().strip()) and worker.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first_unit, pid = log.read_text().split()[:2]
        os.kill(int(pid), signal.SIGKILL)  # the worker process running the first unit, mid-unit
        worker.join(timeout=300)
    finally:
        cluster.close()
    run = result["run"]
    assert run.status == "SUCCEEDED" and not run.failed_units, run.error
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls.count(first_unit) == 2  # run again once, elsewhere
    assert sorted(set(calls)) == params["names"] and len(calls) == 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_a_scheduler_and_workers_started_as_processes_run_a_step_from_the_command_line(tmp_path: Path) -> None:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "distributed.cli"]
    processes = [subprocess.Popen([*dask_cli[:2], "distributed.cli.dask_scheduler", "--port", str(port),
                                   "--dashboard-address", ":0", "--host", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        time.sleep(3)
        processes += [subprocess.Popen([*dask_cli[:2], "distributed.cli.dask_worker", address, "--nthreads", "1",
                                        "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(2)]  # fmt: skip
        glob = write_stacks(tmp_path / "stacks")
        _import_and_clean(tmp_path / "local", glob, None)
        root = tmp_path / "dask"
        init_project(root).close()
        app = build_app("import")
        runner = CliRunner()
        done = runner.invoke(app, ["import", "-p", str(root), "--stack", glob, "--tilt-axis-angle-deg", "85",
                                   "--dose-per-tilt-e-per-angstrom2", "3", "--executor", "dask", "--scheduler",
                                   address])  # fmt: skip
        assert done.exit_code == 0, done.output
        done = CliRunner().invoke(build_app("clean"), ["clean", "-p", str(root), "--exclude", EXCLUDED,
                                                       "--executor", "dask", "--scheduler", address])  # fmt: skip
        assert done.exit_code == 0, done.output
        assert _tables(root) == _tables(tmp_path / "local")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster_and_worker_pids():
    """A local Dask cluster of 2 worker processes, its scheduler's address, and its workers' process ids."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
        yield cluster.scheduler_address, pids
    finally:
        cluster.close()


def _where_units_ran(root: Path, run_id: int) -> tuple[list[str], dict[str, int]]:
    """The run's lines on where its units run, and the process id each unit says it ran in."""
    with open_project(root) as project:
        events = project.events(run_id)
    notes = [m for _, _, unit, m in events if unit is None and m.startswith("units run with:")]
    ran = {unit: int(m.rsplit(" ", 1)[1].rstrip(")")) for _, _, unit, m in events if unit and m.startswith("ran on ")}
    return notes, ran


@pytest.mark.slow
def test_a_resumed_run_goes_to_the_cluster_of_the_project_settings(tmp_path: Path, cluster_and_worker_pids) -> None:
    import dataclasses

    address, worker_pids = cluster_and_worker_pids
    root = tmp_path / "project"
    clean = get_step("clean")

    def interrupted(payload, params, out_dir):
        if out_dir.name == "TS_B":
            raise KeyboardInterrupt  # as a Ctrl-C reaches a unit: TS_A is done, TS_B is not
        return clean.run(payload, params, out_dir)

    with init_project(root) as project:
        imported = run_step(project, get_step("import"), import_params(write_stacks(tmp_path / "stacks")))
        assert imported.status == "SUCCEEDED", imported.error
        with pytest.raises(KeyboardInterrupt):
            run_step(project, dataclasses.replace(clean, run=interrupted), {"exclude": EXCLUDED})
    for key, value in (("executor", "dask"), ("scheduler", address)):
        assert CliRunner().invoke(build_app("config"), ["config", "set", key, value, "-p", str(root)]).exit_code == 0
    done = CliRunner().invoke(build_app("run"), ["run", "--resume", "2", "-p", str(root)])
    assert done.exit_code == 0, done.output
    notes, ran = _where_units_ran(root, 2)
    assert notes == [f"units run with: executor dask (project setting), scheduler {address} (project setting), "
                     "max-worker-losses 1 (default)"]  # fmt: skip
    assert list(ran) == ["TS_B"] and ran["TS_B"] in worker_pids  # only the unit not done, on a worker of the cluster


@pytest.mark.slow
def test_a_workflow_run_goes_to_the_cluster_the_command_line_names(tmp_path: Path, cluster_and_worker_pids) -> None:
    address, worker_pids = cluster_and_worker_pids
    root = tmp_path / "project"
    init_project(root).close()
    set_local = ["config", "set", "executor", "local", "-p", str(root)]  # the command line wins over it
    assert CliRunner().invoke(build_app("config"), set_local).exit_code == 0
    workflow = tmp_path / "workflow.toml"
    glob = write_stacks(tmp_path / "stacks")
    workflow.write_text(f'[import]\nstack = "{glob}"\ntilt_axis_angle_deg = 85.0\ndose_per_tilt_e_per_angstrom2 = 3.0\n'
                        f'[clean]\nexclude = "{EXCLUDED}"\n')  # fmt: skip
    done = CliRunner().invoke(build_app("workflow"), ["workflow", "run", str(workflow), "-p", str(root),
                                                      "--executor", "dask", "--scheduler", address])  # fmt: skip
    assert done.exit_code == 0, done.output
    for run_id in (1, 2):
        notes, ran = _where_units_ran(root, run_id)
        assert notes == [f"units run with: executor dask (command line), scheduler {address} (command line), "
                         "max-worker-losses 1 (default)"]  # fmt: skip
        assert sorted(ran) == ["TS_A", "TS_B"] and set(ran.values()) <= worker_pids
