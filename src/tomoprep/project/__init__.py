"""The project store: SQLite index plus one folder per run. Knows nothing of cryo-ET."""

from tomoprep.project.records import RunRecord, UnitRecord
from tomoprep.project.store import Project, RepairReport, init_project, open_project, repair_project

__all__ = ["Project", "RepairReport", "RunRecord", "UnitRecord", "init_project", "open_project", "repair_project"]
