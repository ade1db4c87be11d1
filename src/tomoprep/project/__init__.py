"""The project store: SQLite index plus one folder per run. Knows nothing of cryo-ET."""

from tomoprep.project.records import RunRecord, UnitRecord
from tomoprep.project.store import Project, init_project, open_project

__all__ = ["Project", "RunRecord", "UnitRecord", "init_project", "open_project"]
