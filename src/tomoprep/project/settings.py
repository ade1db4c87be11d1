"""A project's settings: ``settings.toml`` in the project folder, one ``key = value`` line per setting.

The settings are a plain file beside the index, not rows of it: ``cat`` shows them, they travel with the folder,
and ``tomoprep repair`` (which rebuilds the index from the run folders) leaves them alone. This module knows only
keys and values (text or whole numbers); which keys exist and what they may hold is the caller's business.
"""

from __future__ import annotations

import fcntl
import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.project.records import write_text_atomic

SETTINGS_NAME = "settings.toml"
#: A setting's value as stored.
Value = str | int

HEADER = (
    "# tomoprep project settings: `tomoprep config set KEY VALUE` changes them, `tomoprep config list` shows\n"
    "# them with their defaults. An option given on the command line wins over the setting here.\n"
)


def settings_path(root: Path) -> Path:
    """The settings file of the project in ``root``."""
    return Path(root) / SETTINGS_NAME


def read_settings(root: Path) -> dict[str, Value]:
    """The settings of the project in ``root`` (none when it has no settings file), in file order.

    A file that is not TOML, or holds a value that is neither text nor a whole number, is refused naming the file
    and the key, with the fix.
    """
    path = settings_path(root)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc}).", "make it a file you can read, or remove "
                         "it (the settings then take their defaults).") from exc  # fmt: skip
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"is not valid TOML ({exc}).", "correct it, or delete it and set the settings "
                         "again with `tomoprep config set KEY VALUE`.") from exc  # fmt: skip
    for key, value in document.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(path, f"gives {key} = {value!r}; a setting is text or a whole number.",
                             f"correct it with `tomoprep config set {key} VALUE`.")  # fmt: skip
    return document


def _settings_text(settings: dict[str, Value]) -> str:
    # json.dumps writes a TOML basic string for text (same quoting and escapes) and a TOML integer for a number.
    return HEADER + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the settings' lock, so two processes changing settings at once do not lose one's change."""
    with open(Path(root) / ".settings.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def change_setting(root: Path, key: str, value: Value | None) -> dict[str, Value]:
    """Set ``key`` to ``value`` (``None`` removes it) in the settings of the project in ``root``; returns the
    settings as they now are. The file is written through a temporary file and a rename; a folder it cannot be
    written in is refused naming the file."""
    try:
        with _locked(root):
            settings = read_settings(root)
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
            write_text_atomic(settings_path(root), _settings_text(settings))
    except OSError as exc:
        fix = f"make {Path(root)} a folder you can write to (its permissions, free space)."
        raise InputError(settings_path(root), f"cannot be written ({exc.strerror or exc}).", fix) from exc
    return settings
