"""Daphne's websocket writer without a Twisted reactor: a real autobahn protocol over a real
kernel socket, behind a send callable shaped like daphne's. Used by the fan-out's tests
(tests/hub/test_realtime*.py) and its CPU bench (bench/fanout_cpu.py); no Django needed."""

from __future__ import annotations

import functools
from collections import deque
from typing import Any


class FakeTwistedTransport:
    """The attributes of twisted.internet.tcp.Server that DirectSocket reads, over a real socket."""

    TLS = False

    def __init__(self, sock: Any) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)
        self._tempDataLen += len(data)


def daphne_send(sock: Any, server: Any = None, factory: Any = None) -> tuple[Any, Any]:
    """A send callable shaped like daphne's, partial(Server.handle_reply, protocol), and the
    protocol; on `server` and `factory` when given (many sockets of one server), else new ones."""
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from autobahn.websocket.protocol import TrafficStats
    from daphne.server import Server

    if server is None:
        server = Server.__new__(Server)
        server.connections = {}
    protocol = WebSocketServerProtocol()
    protocol.factory = factory if factory is not None else WebSocketServerFactory()
    protocol.state = WebSocketServerProtocol.STATE_OPEN
    protocol.send_queue = deque()
    protocol._perMessageCompress = None
    protocol.transport = FakeTwistedTransport(sock)  # type: ignore[assignment]  # a fake, see above
    # What autobahn's connectionMade would set up, for sendPreparedMessage's bookkeeping.
    protocol.trafficStats = TrafficStats()
    protocol.peer = "tcp:127.0.0.1:0"
    protocol.logOctets = False  # type: ignore[attr-defined]  # set by connectionMade
    server.connections[protocol] = {}
    return functools.partial(server.handle_reply, protocol), protocol
