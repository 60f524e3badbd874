"""Meeting participants over a real websocket to a daphne server, and leak probes.

``remote_client`` logs a user in (a session cookie), opens the hub socket of a
:class:`~tests.servers.DaphneServer`, says hello and wraps it in the same
:class:`~tests.signaling.clients.MeetingClient` the communicator tests use.
``udp_ports`` and ``peer_connections_open`` count what a process holds, so a
test can check that leaving, failing, removal and shutdown free everything.
"""

from __future__ import annotations

import functools
import gc
import weakref
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection
from channels.db import database_sync_to_async

from tests.conftest import skip_or_fail
from tests.servers import DaphneServer, hub_socket, session_cookie
from tests.signaling.clients import MeetingClient, WebSocket


async def open_hub_socket(server: DaphneServer, user: Any) -> WebSocket:
    """A hub socket of ``server`` logged in as ``user``, past the hello/welcome handshake."""
    cookie = await database_sync_to_async(session_cookie)(user)
    return WebSocket(await hub_socket(server, cookie))


async def remote_client(
    server: DaphneServer, user: Any, name: str, *, publish: tuple[str, ...] = ("mic", "camera")
) -> MeetingClient:
    """A meeting participant (aiortc peer) talking to ``server`` over a real websocket."""
    return MeetingClient(name, user.pk, await open_hub_socket(server, user), publish=publish)


# --- leak probes -------------------------------------------------------------------------


def _socket_inodes(pid: int | str) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        name = str(target)
        if name.startswith("socket:["):
            inodes.add(name[len("socket:[") : -1])
    return inodes


def udp_ports(pid: int | str = "self", *, port_min: int = 0, port_max: int = 65535) -> list[int]:
    """The local ports of the UDP sockets process ``pid`` holds open in [port_min, port_max]."""
    if not Path("/proc/net/udp").exists():
        skip_or_fail("no /proc/net/udp here: cannot count UDP sockets")
    inodes = _socket_inodes(pid)
    ports = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[9] in inodes and port_min <= port <= port_max:
                ports.append(port)
    return sorted(ports)


#: Every RTCPeerConnection made in this process since this module was imported (at collection,
#: before any test runs).
_peer_connections: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()


def _register_peer_connections() -> None:
    real_init = RTCPeerConnection.__init__
    if getattr(real_init, "_hirfa_registered", False):
        return

    @functools.wraps(real_init)
    def init(self: RTCPeerConnection, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        _peer_connections.add(self)

    init._hirfa_registered = True  # type: ignore[attr-defined]
    RTCPeerConnection.__init__ = init  # type: ignore[method-assign]


_register_peer_connections()


def peer_connections_open(*, collect: bool = False) -> int:
    """RTCPeerConnections of this process that are not closed.

    Cheap enough to poll while media flows: it reads a registry of the connections made, not
    the heap. A ``gc.collect()`` and a scan of the test process's 277,000 objects took 0.25 s of
    CPU (2 to 5 s at load 15), during which the loop that runs the peers and the SFU stood still;
    polled every 50 ms, that starved the very closing a test waited for. ``collect`` first
    collects garbage, so that connections dropped unclosed by earlier tests do not count.
    """
    if collect:
        gc.collect()
    return sum(1 for pc in list(_peer_connections) if pc.connectionState != "closed")
