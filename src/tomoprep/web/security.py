"""Who may ask, and what may be served: the token every request carries, and files only from inside the project.

Token
    ``tomoprep serve`` makes a random token and prints the address with it, as Jupyter does. A request carries it
    as ``?token=...`` (the first visit: the answer sets a cookie and sends the browser on without it), as the
    cookie, or as ``Authorization: Bearer ...`` (scripts). Anything else gets 401.
Files
    A path asked for is taken relative to the project root and resolved (``..`` and symbolic links followed); it
    is served only when what it resolves to lies inside the project folder, so neither ``../`` nor a link pointing
    out reveals a file of the machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path

COOKIE = "tomoprep_token"


def new_token() -> str:
    """A random token (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_matches(given: str | None, token: str) -> bool:
    """Whether ``given`` is the token (compared in constant time)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def is_local_host(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (a loopback address or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def inside_project(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names in the project at ``root``, or ``None`` where it resolves outside it (or is
    absolute, or does not exist as a file)."""
    if not relative or Path(relative).is_absolute():
        return None
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path
