"""A receive-mostly websocket client for the benches' load generators.

The receivers of bench/chat_fanout.py share two cores with the servers they measure; with
the `websockets` client (frames parsed in Python, a task woken and an async iterator per
frame) they cost about as much CPU per frame as the server does per delivery. This client is
an `asyncio.Protocol`: the kernel's bytes are cut into frames in `data_received` and each
text handed whole, as bytes, to one callable (`LeanSocket.on_text`), with no task, queue or
decoding in between. It still speaks the protocol a client must (RFC 6455): the opening
checks the server's accept key; its own frames are masked; pings are answered; fragmented
messages are put together; a close frame's code is kept (`close_code`, 1006 when the
connection ends without one) and answered.

Not a general client: no TLS, no extensions, no size limit (the servers are local and
measured, not trusted to be hostile), and text handed over as bytes (a caller that reads a
text decodes it, as `json.loads` does).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
NO_STATUS, ABNORMAL, PROTOCOL_ERROR = 1005, 1006, 1002
_MAX_HEAD = 65536


def accept_for(key: bytes) -> bytes:
    """The `Sec-WebSocket-Accept` a server must answer to `key`."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455 says SHA-1


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a fresh key as RFC 6455 requires."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + body


class LeanSocket(asyncio.Protocol):
    """One client connection. `opened` resolves once the server accepted the upgrade; every
    text after that goes to `on_text` (by default kept for `recv`); `closed` resolves with
    the close code when the connection is gone."""

    def __init__(self, *, host: str, path: str, origin: str, cookie: str | None) -> None:
        loop = asyncio.get_running_loop()
        self.key = base64.b64encode(os.urandom(16))
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()
        self.close_code: int | None = None
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.on_text: Callable[[bytes], object] = self._inbox.put_nowait
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
            + (f"Cookie: sessionid={cookie}\r\n" if cookie else "") + "\r\n"
        ).encode()
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._rest = b""
        self._parts: list[bytes] | None = None
        self._parts_opcode = OP_TEXT
        self._close_sent = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast("asyncio.Transport", transport)
        self._transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = ABNORMAL
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the opening: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        self._inbox.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            data = self._opening(data)
            if not data:
                return
        if self._rest:
            data = self._rest + data
        pos, end = 0, len(data)
        while end - pos >= 2:
            first, second = data[pos], data[pos + 1]
            n, head = second & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = (data[pos + 2] << 8) | data[pos + 3], 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            stop = pos + head + n
            if stop > end:
                break
            opcode = first & 0x0F
            if second & 0x80 or first & 0x70:  # a masked server frame, or a reserved bit
                self._fail()
                return
            payload = data[pos + head:stop]
            pos = stop
            if opcode == OP_TEXT and first & 0x80 and self._parts is None:
                self.on_text(payload)
            elif not self._frame(opcode, bool(first & 0x80), payload):
                return
        self._rest = data[pos:]

    # --- what a caller uses ---

    def send_text(self, text: str) -> None:
        if self._transport is not None and not self._close_sent:
            self._transport.write(masked_frame(OP_TEXT, text.encode()))

    async def recv(self) -> bytes:
        """The next text, while `on_text` is the default; ConnectionError once closed."""
        text = await self._inbox.get()
        if text is None:
            self._inbox.put_nowait(None)
            raise ConnectionError(f"the connection is closed ({self.close_code})")
        return text

    def take_kept(self) -> list[bytes]:
        """The texts kept for `recv` and not read yet (hand them on before replacing `on_text`)."""
        kept = []
        while not self._inbox.empty():
            text = self._inbox.get_nowait()
            if text is not None:
                kept.append(text)
        return kept

    async def close(self, timeout: float = 2) -> None:
        """Send a normal close and wait (bounded) for the server to end the connection."""
        if self._transport is None or self.closed.done():
            return
        if not self._close_sent:
            self._close_sent = True
            self._transport.write(masked_frame(OP_CLOSE, struct.pack("!H", 1000)))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self._transport.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- inside ---

    def _opening(self, data: bytes) -> bytes:
        """Read the server's answer to the upgrade; answer what follows it."""
        self._head += data
        cut = self._head.find(b"\r\n\r\n")
        if cut < 0:
            if len(self._head) > _MAX_HEAD:
                self._refuse("an opening answer without an end")
            return b""
        head, rest = self._head[:cut], self._head[cut + 4:]
        self._head = b""
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if not lines[0].startswith(b"HTTP/1.1 101"):
            self._refuse(f"the server answered {lines[0]!r}")
            return b""
        if headers.get(b"sec-websocket-accept") != accept_for(self.key):
            self._refuse("a wrong Sec-WebSocket-Accept")
            return b""
        if headers.get(b"sec-websocket-extensions"):
            self._refuse("an extension nobody asked for")
            return b""
        self.opened.set_result(None)
        return rest

    def _refuse(self, why: str) -> None:
        self.opened.set_exception(ConnectionError(why))
        if self._transport is not None:
            self._transport.close()

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> bool:
        """Every frame but a whole text; False when the connection must stop being read."""
        assert self._transport is not None
        if opcode in (OP_TEXT, OP_BINARY):
            if self._parts is not None:
                self._fail()
                return False
            self._parts, self._parts_opcode = [payload], opcode
            return True
        if opcode == OP_CONTINUATION:
            if self._parts is None:
                self._fail()
                return False
            self._parts.append(payload)
            if fin:
                whole, kind = b"".join(self._parts), self._parts_opcode
                self._parts = None
                if kind == OP_TEXT:
                    self.on_text(whole)
            return True
        if opcode == OP_PING:
            if not self._close_sent:
                self._transport.write(masked_frame(OP_PONG, payload))
            return True
        if opcode == OP_PONG:
            return True
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NO_STATUS
            self.close_code = code
            if not self._close_sent:
                self._close_sent = True
                self._transport.write(masked_frame(OP_CLOSE, b"" if code == NO_STATUS else payload[:2]))
            return False
        self._fail()
        return False

    def _fail(self) -> None:
        self.close_code = PROTOCOL_ERROR
        if self._transport is not None:
            self._transport.abort()


async def connect(url: str, *, origin: str, cookie: str | None, timeout: float) -> LeanSocket:
    """Open `url` (ws:// only) and answer the socket once the server has accepted it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    sock: LeanSocket | None = None
    try:
        async with asyncio.timeout(timeout):
            _, sock = await loop.create_connection(
                lambda: LeanSocket(host=f"{host}:{port}", path=parts.path or "/", origin=origin, cookie=cookie),
                host, port,
            )
            await sock.opened
    except BaseException:
        if sock is not None:
            sock.abort()
        raise
    return sock
