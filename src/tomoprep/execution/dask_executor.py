"""Units on a Dask cluster: an existing scheduler, a local cluster, or SLURM jobs through dask-jobqueue.

The runner sees a standard :class:`concurrent.futures.Executor` (Dask's ``Client.get_executor``): units are
submitted, results come back to this process, and only this process writes the project's index (no SQLite over a
network file system); each unit writes its files into the run folder, which must be on a file system the workers
share. A worker lost mid-unit has its unit run again on another worker by Dask's scheduler, up to
``max_worker_losses`` times (Dask's ``distributed.scheduler.allowed-failures``), after which the unit fails with
the reason and the other units carry on.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from tomoprep.errors import TomoprepError


class ClusterError(TomoprepError):
    """A Dask cluster could not be reached or started."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where units run on Dask.

    ``scheduler`` is the address of a running scheduler (``tcp://HOST:8786``); without it a cluster is started:
    ``cluster="local"`` starts ``workers`` worker processes on this machine, ``cluster="slurm"`` submits SLURM jobs
    of ``cores`` cores, ``memory`` (``"64GB"``), ``gpus`` GPUs, on ``queue`` for ``walltime`` (``"04:00:00"``),
    scaled between ``min_jobs`` and ``max_jobs`` as the units need them.
    """

    scheduler: str | None = None
    cluster: Literal["local", "slurm"] = "local"
    workers: int = 2
    cores: int = 8
    memory: str = "32GB"
    gpus: int = 0
    queue: str | None = None
    walltime: str = "04:00:00"
    min_jobs: int = 0
    max_jobs: int = 4
    max_worker_losses: int = 1


def slurm_cluster(settings: ClusterSettings) -> Any:
    """A dask-jobqueue ``SLURMCluster`` for ``settings`` (nothing is submitted until it scales): one worker
    process per job with its cores, memory and GPUs (``--gres=gpu:N``), adapting between the job limits."""
    from dask_jobqueue import SLURMCluster

    extra = [f"--gres=gpu:{settings.gpus}"] if settings.gpus else []
    cluster = SLURMCluster(
        cores=settings.cores,
        processes=1,
        memory=settings.memory,
        queue=settings.queue,
        walltime=settings.walltime,
        job_extra_directives=extra,
        worker_extra_args=[f"--resources GPU={settings.gpus}"] if settings.gpus else [],
    )
    return cluster


@contextmanager
def dask_executor(settings: ClusterSettings) -> Iterator[Executor]:
    """An executor whose units run on the Dask cluster ``settings`` name; the cluster started here (if any) is
    closed on leaving."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": settings.max_worker_losses}):
        cluster: Any = None
        try:
            if settings.scheduler:
                client = Client(settings.scheduler, timeout="20s")
            elif settings.cluster == "slurm":
                cluster = slurm_cluster(settings)
                cluster.adapt(minimum_jobs=settings.min_jobs, maximum_jobs=settings.max_jobs)
                client = Client(cluster)
            else:
                cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)  # fmt: skip
                client = Client(cluster)
        except OSError as exc:
            where = settings.scheduler or f"a {settings.cluster} cluster"
            raise ClusterError(f"could not reach {where}: {exc}. Fix: check the address (tcp://HOST:PORT) "
                               "and that the scheduler runs.") from exc  # fmt: skip
        try:
            executor = client.get_executor(pure=False)
            threads = sum(client.nthreads().values()) or settings.workers
            executor._max_workers = threads  # the runner's submission window
            yield executor
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
