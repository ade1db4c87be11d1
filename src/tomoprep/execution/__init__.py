"""The runner and its executors."""

from tomoprep.execution.executors import SerialExecutor, local_executor
from tomoprep.execution.runner import resume_run, run_step

__all__ = ["SerialExecutor", "local_executor", "resume_run", "run_step"]
