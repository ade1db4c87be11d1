"""``tomoprep serve``: the web UI of a project on this machine, or on a shared one behind its token."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tomoprep.errors import TomoprepError
from tomoprep.web.security import is_local_host, new_token

if TYPE_CHECKING:
    import uvicorn


class ServeError(TomoprepError):
    """The server cannot start as asked."""


def free_port(host: str) -> int:
    """A port free on ``host`` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def address(host: str, port: int, token: str) -> str:
    """The address to open: ``http://HOST:PORT/?token=TOKEN`` (no token part when there is none)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def check_binding(host: str, token: str | None) -> str:
    """The token to use: ``token``, or a new random one when ``None``. An empty token (no check) is refused on an
    address other machines can reach."""
    if token is None:
        return new_token()
    if not token and not is_local_host(host):
        raise ServeError(
            f"serving on {host} without a token would let anyone who can reach this machine read and run the "
            "project. Fix: leave --token out (a random one is made), or serve on 127.0.0.1 and use an SSH tunnel."
        )
    return token


#: Seconds the server waits, once interrupted, for open requests (event streams among them) before it stops.
SHUTDOWN_S = 2


def serve(project_root: Path, *, host: str, port: int, token: str | None) -> None:
    """Run the web UI of the project at ``project_root`` until interrupted, printing its address first."""
    import uvicorn

    from tomoprep.project import open_project
    from tomoprep.web.app import create_app

    with open_project(project_root, read_only=True):  # a clear error now, not on the first page
        pass
    token = check_binding(host, token)
    port = port or free_port(host)
    app = create_app(project_root, token=token)
    print(address("127.0.0.1" if host in ("0.0.0.0", "::") else host, port, token), flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_S)
    _stopping_server(config, app.state.stopping).run()


def _stopping_server(config: uvicorn.Config, stopping: threading.Event) -> uvicorn.Server:
    """uvicorn's server, which first sets ``stopping`` (the app's event streams end) when asked to stop (Ctrl-C):
    pages following runs hold their requests open, and a graceful stop waits for every request."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stopping.set()
            super().handle_exit(sig, frame)

    return Server(config)
