"""Placing the files an exported project names inside its folder: symbolic links, or copies.

Every path written into an exported STAR file is relative to the export folder and resolves there, so the folder
can be used as another program's project directory as it is. A link holds the source's absolute path, so the
export folder can be moved; but where the export folder and the source lie in one folder that moves as a whole
(``moves_with``: the tomoprep project, for an export into it), the link is relative, so moving or copying that
folder keeps it working. With copies the export is self-contained.
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
    moves_with
        A folder moved or copied as a whole (the project): a link from inside it to a file inside it is relative.

    The same source placed twice gets the same name; two sources that would share a name get ``_1``, ``_2``...
    """

    def __init__(self, root: Path, *, copy: bool, moves_with: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.copy = copy
        self.moves_with = None if moves_with is None else Path(moves_with).resolve()
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
            os.symlink(self._link_text(source, target), target)
        self._placed[source] = relative
        return str(relative)

    def _link_text(self, source: Path, target: Path) -> str:
        """What the link ``target`` holds: ``source`` relative to the link's folder where both lie in
        ``moves_with``, else absolute."""
        within = self.moves_with
        if within is not None and source.is_relative_to(within) and target.is_relative_to(within):
            return os.path.relpath(source, target.parent)
        return str(source)

    def _free_name(self, relative: Path, source: Path) -> Path:
        candidate, k = relative, 0
        while candidate in self._names and self._names[candidate] != source:
            k += 1
            candidate = relative.with_name(f"{relative.stem}_{k}{relative.suffix}")
        self._names[candidate] = source
        return candidate
