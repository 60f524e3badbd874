"""Every place where the hub reaches into daphne, Twisted and autobahn internals
to write live events straight to a websocket.

Under daphne, the ASGI `send` of a websocket passes each frame through three
coroutine layers (Channels' session wrapper, which reads the session on every
call, daphne's server, its protocol) and frames the same text once per socket.
For live events that is most of the cost of a delivery. `DirectSocket` reaches
the autobahn protocol behind daphne's `send` (a functools.partial of
`Server.handle_reply` bound to the protocol), frames each text once for all
sockets with autobahn's public `prepareMessage`/`sendPreparedMessage`, and
reads how many bytes the Twisted transport still holds, which is the only
place a slow reader shows: daphne's `send` never blocks. For a group's live
events the fan-out goes further (`DirectSocket.write_each`, through the lanes of
hub/realtime.py): the frame's bytes (header and text; a server's frames are not
masked) are built once and each socket gets one `send()` of them, with no call
per socket into the consumer or autobahn. When anything is
missing at run time (another server, the test communicator, TLS, compression)
`DirectSocket.find` answers None and the consumer keeps using the ASGI `send`.

The private names used here (`PRIVATE_NAMES`, each covered by a test in
tests/hub/test_daphne_hooks.py) belong to the versions in `PINNED`, which
pyproject.toml pins; importing this module with other versions fails at once
rather than misbehaving later.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, TypeVar

from django.conf import settings

PINNED = {"daphne": "4.2.3", "autobahn": "26.10.2", "Twisted": "26.10.0", "channels": "4.3.2"}

for _package, _wanted in PINNED.items():
    _found = importlib.metadata.version(_package)
    if _found != _wanted:  # pragma: no cover - guarded by the pin
        raise ImportError(
            f"hub.daphne_hooks relies on {_package} {_wanted} internals, found {_package} {_found}"
        )

# (owner, name): every private or undocumented attribute this module reads.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("channels.sessions.InstanceSessionWrapper", "real_send"),
    ("daphne.server.Server", "handle_reply"),
    ("daphne.server.Server", "connections"),
    ("autobahn.twisted.websocket.WebSocketServerProtocol", "_perMessageCompress"),
    ("autobahn.twisted.websocket.WebSocketServerProtocol", "send_queue"),
    ("autobahn.twisted.websocket.WebSocketServerProtocol", "state"),
    ("autobahn.twisted.websocket.WebSocketServerProtocol", "sendCloseFrame"),
    ("autobahn.websocket.protocol.PreparedMessage", "payloadHybi"),
    ("twisted.internet.tcp.Server", "TLS"),
    ("twisted.internet.tcp.Server", "socket"),
    ("twisted.internet.tcp.Server", "dataBuffer"),
    ("twisted.internet.tcp.Server", "offset"),
    ("twisted.internet.tcp.Server", "_tempDataLen"),
    ("twisted.internet.tcp.Server", "disconnecting"),
    ("autobahn.websocket.protocol", "pformat"),
    ("autobahn.websocket.protocol.Timings", "_timings"),
    ("autobahn.websocket.protocol", "hltype"),
    ("autobahn.websocket.protocol", "hlval"),
    ("autobahn.twisted.websocket", "hltype"),
    ("autobahn.twisted.websocket", "hlval"),
)

SEND_BACKLOG_MAX_BYTES_DEFAULT = 1 << 20

T = TypeVar("T")


class _Pretty:
    """`pprint.pformat(value)`, computed only when it is written out."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        import pprint

        return pprint.pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _debug_lines_formatted_when_written() -> None:
    """autobahn pretty-prints its ~40 options and the peer's transport for a debug line on
    every connection, whether debug lines are written or not: a tenth of a hub's CPU while
    a crowd connects. Its module's `pformat` now defers the work to the write."""
    import pprint

    from autobahn.websocket import protocol as autobahn_protocol

    autobahn_protocol.pformat = _Pretty  # type: ignore[assignment]
    # The one place that returns the text itself (timings, off unless asked for).
    autobahn_protocol.Timings.__str__ = lambda self: pprint.pformat(self._timings)  # type: ignore[method-assign]


class _Styled:
    """`style(*args)` (autobahn's coloured `hltype`/`hlval`), computed only when it is written out."""

    __slots__ = ("args", "style")

    def __init__(self, style: Any, *args: object) -> None:
        self.style = style
        self.args = args

    def __str__(self) -> str:
        return str(self.style(*self.args))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _debug_arguments_styled_when_written() -> None:
    """autobahn builds its debug lines' arguments before the log level is checked: for every
    chunk received, frame sent and connection made or lost, `hltype` and `hlval` colour text
    with click.style (about 30 calls per socket opening). Its two websocket modules now hand
    the log an object that colours when it is written."""
    from autobahn import util as autobahn_util
    from autobahn.twisted import websocket as autobahn_twisted
    from autobahn.websocket import protocol as autobahn_protocol

    hltype, hlval = autobahn_util.hltype, autobahn_util.hlval
    for module in (autobahn_protocol, autobahn_twisted):
        module.hltype = functools.partial(_Styled, hltype)  # type: ignore[attr-defined]
        module.hlval = functools.partial(_Styled, hlval)  # type: ignore[attr-defined]


_debug_lines_formatted_when_written()
_debug_arguments_styled_when_written()


def send_backlog_max_bytes() -> int:
    """Bytes a socket's transport may hold unsent before the socket is closed with 4010."""
    return int(getattr(settings, "HIRFA_SEND_BACKLOG_MAX_BYTES", SEND_BACKLOG_MAX_BYTES_DEFAULT))


#: Texts framed lately, kept for every socket of the process: a live event is framed once
#: for all of them, and so is each frame of a replay that a crowd resuming together is sent
#: (the 2,500 members of a restarted hub each replay the same 60 messages).
FRAMED_KEPT = 256


class _Framed:
    """The last `FRAMED_KEPT` texts framed (autobahn's `PreparedMessage`), oldest dropped first."""

    __slots__ = ("factory", "frames", "last", "last_text")

    def __init__(self) -> None:
        self.factory: object = None
        self.frames: OrderedDict[str, object] = OrderedDict()
        # The fan-out hands the same text to every socket in a row: no lookup for those.
        self.last_text: str | None = None
        self.last: object = None

    def get(self, factory: Any, text: str) -> Any:
        if text is self.last_text and factory is self.factory:
            return self.last
        frames = self.frames
        if factory is not self.factory:
            frames.clear()
            self.factory = factory
        prepared = frames.get(text)
        if prepared is None:
            prepared = factory.prepareMessage(text.encode("utf-8"), isBinary=False)
            frames[text] = prepared
            if len(frames) > FRAMED_KEPT:
                frames.popitem(last=False)
        self.last_text = text
        self.last = prepared
        return prepared


_framed = _Framed()


def _send_now(transport: Any, data: bytes) -> int:
    """Write `data` to the kernel now, as asyncio's transports do, instead of registering for
    writability and writing on the next turn (two epoll_ctl calls and a reactor callback per
    socket per event); what the kernel did not take goes to Twisted's buffer. The bytes still
    held unsent. Only when the transport holds nothing and nothing is queued before `data`."""
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        sent = 0  # Twisted's own write below meets the error and closes the socket
    if sent < len(data):
        transport.write(data[sent:])
        return len(data) - sent
    return 0


class DirectSocket:
    """Writes whole text frames straight to one daphne websocket.

    Guarantees: `write` either hands the complete frame to the transport (True)
    or does nothing (False, the socket is not open); frames keep their order;
    `backlog` is the number of bytes accepted but not yet written to the
    kernel, or None when it cannot be read.
    """

    __slots__ = ("_conn", "_open_state", "_transport", "protocol", "server")

    def __init__(self, server: object, protocol: object, open_state: int) -> None:
        self.server = server
        self.protocol = protocol
        self._open_state = open_state
        self._transport: Any = None
        # daphne's record of the connection (`Server.connections`), kept once the socket is
        # open: daphne marks it "disconnected" and only then forgets it.
        self._conn: dict[str, Any] | None = None

    @classmethod
    def find(cls, send: object) -> DirectSocket | None:
        """The daphne websocket behind an ASGI `send` callable, or None."""
        seen = 0
        # Unwrap middleware that keep the next `send` as `real_send` (Channels' sessions).
        while seen < 5 and not isinstance(send, functools.partial):
            inner = getattr(getattr(send, "__self__", None), "real_send", None)
            if inner is None:
                return None
            send = inner
            seen += 1
        if not isinstance(send, functools.partial) or len(send.args) != 1 or send.keywords:
            return None
        server = getattr(send.func, "__self__", None)
        protocol = send.args[0]
        if getattr(send.func, "__name__", "") != "handle_reply" or server is None:
            return None
        # daphne's Server, or a subclass of it (`hirfa serve`'s, hub/shutdown.py).
        if not any(k.__module__.split(".")[0] == "daphne" for k in type(server).__mro__):
            return None
        factory = getattr(protocol, "factory", None)
        open_state = getattr(protocol, "STATE_OPEN", None)
        needed = ("sendPreparedMessage", "state", "transport")
        if not isinstance(open_state, int) or any(not hasattr(protocol, n) for n in needed):
            return None
        if not callable(getattr(factory, "prepareMessage", None)):
            return None
        # Compression would need a frame per socket; daphne does not negotiate it today.
        if getattr(protocol, "_perMessageCompress", None) is not None:
            return None
        if not isinstance(getattr(server, "connections", None), dict):
            return None
        return cls(server, protocol, open_state)

    def set_no_delay(self) -> None:
        """Turn Nagle's algorithm off: small frames must not wait for the peer's delayed ACK.

        Without it, a second small frame written before the first is acknowledged
        (an `ack` after the `message` it announces) waits up to 40 ms.
        """
        transport = getattr(self.protocol, "transport", None)
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if callable(set_no_delay):
            try:
                set_no_delay(True)
            except (OSError, AttributeError):
                # Gone already (a client that gave up while the handshake waited): Twisted
                # has dropped the transport's socket. The socket part closes on its own.
                pass

    def is_open(self) -> bool:
        protocol: Any = self.protocol
        if protocol.state != self._open_state:
            return False
        conn = self.server.connections.get(protocol)  # type: ignore[attr-defined]
        return conn is not None and not conn.get("disconnected")

    def write(self, text: str) -> int | None:
        """Hand `text` to the socket; None when it is not open, else the bytes still held unsent.

        Reading the backlog here, where the transport is at hand anyway, saves a
        second walk per socket per event (it was an eighth of the fan-out's time).
        """
        if not self.is_open():
            return None
        protocol: Any = self.protocol
        prepared = _framed.get(protocol.factory, text)
        return self._send(getattr(prepared, "payloadHybi", None), (prepared,))

    def write_many(self, texts: Sequence[str]) -> int | None:
        """`write` each of `texts` in order, in one write to the kernel when the socket allows it
        (a replay batch, or the live events that waited for this socket): one system call and
        one pass through the transport instead of one per frame."""
        if not self.is_open():
            return None
        protocol: Any = self.protocol
        factory = protocol.factory
        framed = [_framed.get(factory, text) for text in texts]
        payloads = [getattr(prepared, "payloadHybi", None) for prepared in framed]
        if all(isinstance(payload, bytes) for payload in payloads):
            return self._send(b"".join(payloads), framed)  # type: ignore[arg-type]
        return self._send(None, framed)

    @staticmethod
    def write_each(
        sockets: Sequence[tuple[T, DirectSocket]], texts: Sequence[str]
    ) -> tuple[list[T], list[tuple[T, int]]]:
        """`write_many(texts)` to each of `sockets` (owner, socket), the frames framed once for
        all of them and each socket's in one `send()`: a live event (or the events read from
        the bus in one turn) to the sockets of a group. Answers the owners whose socket is not
        open (nothing written to it: the owner's own path decides), and those whose socket
        still holds bytes unsent after the write, with that count.

        The common case is written out here rather than through `write_many` (a dozen
        calls per socket): a socket open, its plain transport holding nothing, one
        `send()` of the whole frame (docs/architecture.md, "Live events")."""
        not_open: list[T] = []
        holding: list[tuple[T, int]] = []
        factory: object = None
        framed: list[Any] = []
        data = b""
        size = 0
        for owner, direct in sockets:
            protocol: Any = direct.protocol
            conn = direct._conn
            if conn is None:
                conn = direct._conn = direct.server.connections.get(protocol)  # type: ignore[attr-defined]
            if protocol.state != direct._open_state or conn is None or conn.get("disconnected"):
                not_open.append(owner)
                continue
            if protocol.factory is not factory:
                factory = protocol.factory
                framed = [_framed.get(factory, text) for text in texts]
                payloads = [getattr(prepared, "payloadHybi", None) for prepared in framed]
                joined = b"".join(payloads) if all(isinstance(p, bytes) for p in payloads) else None  # type: ignore[arg-type]
                data = joined if joined is not None else b""
                size = len(data)
            transport = direct._transport
            if (
                size
                and transport  # a plain transport, found on an earlier write
                and not transport.dataBuffer
                and not transport._tempDataLen
                and not transport.disconnecting
                and not protocol.send_queue
            ):
                unsent = _send_now(transport, data)
                if unsent:
                    holding.append((owner, unsent))
                continue
            held = direct._send(data or None, framed)
            if held:
                holding.append((owner, held))
        return not_open, holding

    def _send(self, data: bytes | None, framed: Sequence[Any]) -> int:
        """Write `data` (the frames of `framed`, joined) to the kernel at once when nothing is
        held before it, else queue the frames behind what is; the bytes still held unsent."""
        protocol: Any = self.protocol
        transport = self._plain_transport()
        if data is not None and transport is not None and not transport.disconnecting:
            held = self._held(transport)
            if held == 0 and not protocol.send_queue:
                return _send_now(transport, data)  # nothing is queued before it
            for prepared in framed:
                protocol.sendPreparedMessage(prepared)
            return held + len(data)
        for prepared in framed:
            protocol.sendPreparedMessage(prepared)
        backlog = self.backlog()
        return 0 if backlog is None else backlog

    def close_with(self, code: int, reason: str | None = None) -> bool:
        """Start the closing handshake with `code`, which may be a registered code like
        1012 (service restart) that autobahn's public `sendClose` refuses, and `reason`
        (at most 123 bytes of UTF-8), which daphne's ASGI close drops; False when the
        socket is not open."""
        if not self.is_open():
            return False
        protocol: Any = self.protocol
        reason_utf8 = reason.encode("utf-8")[:123] if reason else None
        protocol.sendCloseFrame(code=code, reasonUtf8=reason_utf8, isReply=False)
        return True

    def plain(self) -> bool:
        """Whether the socket's transport is plain TCP, which `write_each` writes to itself."""
        return self._plain_transport() is not None

    def _plain_transport(self) -> Any:
        """The TCP transport when it is a plain (not TLS) Twisted socket transport, else None."""
        transport = self._transport
        if transport is None:
            transport = getattr(self.protocol, "transport", None)
            ok = (
                transport is not None
                and not getattr(transport, "TLS", True)
                and hasattr(transport, "socket")
                and callable(getattr(transport.socket, "send", None))
                and all(hasattr(transport, n) for n in ("dataBuffer", "offset", "_tempDataLen"))
                and hasattr(self.protocol, "send_queue")
            )
            transport = transport if ok else False
            self._transport = transport
        return transport or None

    @staticmethod
    def _held(transport: Any) -> int:
        return len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)

    def backlog(self) -> int | None:
        """Bytes held by the Twisted transport (and autobahn's own queue) not yet sent."""
        protocol: Any = self.protocol
        transport = protocol.transport
        # TLS and other wrappers keep the socket's transport one level down.
        for _ in range(3):
            if transport is None:
                return None
            if hasattr(transport, "dataBuffer"):
                break
            transport = getattr(transport, "transport", None)
        else:
            return None
        try:
            held = len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)
            queue = getattr(protocol, "send_queue", None)
            if queue:
                held += sum(len(chunk) for chunk, _ in queue)
        except (AttributeError, TypeError, ValueError):
            return None
        return held
