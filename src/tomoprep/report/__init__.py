"""A report of a project: what was run, with which parameters, what it decided and why, as one HTML page."""

from tomoprep.report.page import write_report
from tomoprep.report.summary import ProjectSummary, RunView, SeriesView, summarize_project

__all__ = ["ProjectSummary", "RunView", "SeriesView", "summarize_project", "write_report"]
