"""Placing the files an exported project names inside its folder: symbolic links, or copies.

Every path written into an exported STAR file is relative to the export folder and resolves there, so the folder
can be used as another program's project directory as it is. A link holds the source's absolute path, so the
export folder can be moved; with copies it is self-contained.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tomoprep.errors import InputError


class FilePlacer:
    """Puts source files under ``root`` by link or copy, and answers their path relative to ``root``.

    Parameters
    ----------
    root
        The export folder (created if needed).
    copy
        Copy the files instead of linking them.

    The same source placed twice gets the same name; two sources that would share a name get ``_1``, ``_2``...
    """

    def __init__(self, root: Path, *, copy: bool) -> None:
        self.root = Path(root).resolve()
        self.copy = copy
        self._placed: dict[Path, Path] = {}
        self._names: dict[Path, Path] = {}

    def place(
        self, source: Path, folder: str, *, what: str, rename: str | None = None, copy: bool | None = None
    ) -> str:
        """Link or copy ``source`` into ``root/folder`` (as ``rename`` if given, else under its own name) and
        return its path relative to ``root``; ``copy`` overrides the placer's choice for this file.

        Raises
        ------
        InputError
            If ``source`` does not exist (naming it and ``what`` it is).
        """
        source = Path(source).resolve()
        if not source.is_file():
            raise InputError(
                source,
                f"({what}) does not exist, so the export cannot name it.",
                "re-run the step that wrote it, or export the run whose files are still there (--input).",
            )
        if source in self._placed:
            return str(self._placed[source])
        relative = self._free_name(Path(folder) / (rename or source.name), source)
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if self.copy if copy is None else copy:
            shutil.copyfile(source, target)
        else:
            os.symlink(source, target)
        self._placed[source] = relative
        return str(relative)

    def _free_name(self, relative: Path, source: Path) -> Path:
        candidate, k = relative, 0
        while candidate in self._names and self._names[candidate] != source:
            k += 1
            candidate = relative.with_name(f"{relative.stem}_{k}{relative.suffix}")
        self._names[candidate] = source
        return candidate
