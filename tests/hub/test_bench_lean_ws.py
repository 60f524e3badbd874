"""bench/lean_ws.py: the benches' receive-mostly websocket client reads every frame a server
may send, whole or split anywhere, answers pings, keeps the close code, and speaks to a real
`websockets` server (the ceiling of bench/chat_fanout.py) as a client must (masked frames)."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import uvloop
from websockets.asyncio.server import broadcast, serve

from bench import lean_ws


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def _client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmask what the client wrote (every client frame must be masked)."""
    out = []
    pos = 0
    while pos < len(data):
        opcode, second = data[pos] & 0x0F, data[pos + 1]
        assert second & 0x80, "a client frame must be masked"
        n, pos = second & 0x7F, pos + 2
        if n == 126:
            n, pos = struct.unpack("!H", data[pos:pos + 2])[0], pos + 2
        elif n == 127:
            n, pos = struct.unpack("!Q", data[pos:pos + 8])[0], pos + 8
        key, pos = data[pos:pos + 4], pos + 4
        out.append((opcode, bytes(b ^ key[i % 4] for i, b in enumerate(data[pos:pos + n]))))
        pos += n
    return out


def _open_socket() -> tuple[lean_ws.LeanSocket, FakeTransport, list[bytes]]:
    texts: list[bytes] = []
    sock = lean_ws.LeanSocket(host="127.0.0.1:1", path="/ws/", origin="http://127.0.0.1:1", cookie=None)
    transport = FakeTransport()
    sock.connection_made(transport)
    key = sock.key
    accept = lean_ws.accept_for(key)
    sock.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    assert sock.opened.done() and sock.opened.exception() is None
    sock.on_text = texts.append
    transport.written.clear()
    return sock, transport, texts


async def test_frames_split_anywhere_read_the_same() -> None:
    texts = [b'{"type":"message","id":1}', b"x" * 300, "é".encode() * 40_000]
    stream = b"".join(_server_frame(1, t) for t in texts)
    for cut in (1, 2, 3, 7, 129, 4096):
        sock, _, got = _open_socket()
        for i in range(0, len(stream), cut):
            sock.data_received(stream[i:i + cut])
        assert got == texts


async def test_a_fragmented_text_is_read_once_whole_with_a_ping_between() -> None:
    sock, transport, got = _open_socket()
    sock.data_received(_server_frame(1, b"hel", fin=False) + _server_frame(9, b"p1")
                       + _server_frame(0, b"lo", fin=False) + _server_frame(0, b"!"))
    assert got == [b"hello!"]
    assert _client_frames(bytes(transport.written)) == [(10, b"p1")]


async def test_the_close_code_is_kept_and_the_close_answered() -> None:
    sock, transport, _ = _open_socket()
    sock.data_received(_server_frame(8, struct.pack("!H", 4010) + b"too slow"))
    assert sock.close_code == 4010
    assert _client_frames(bytes(transport.written)) == [(8, struct.pack("!H", 4010))]
    sock.connection_lost(None)
    assert sock.close_code == 4010
    assert sock.closed.result() == 4010


async def test_a_connection_lost_without_a_close_frame_is_1006() -> None:
    sock, _, _ = _open_socket()
    sock.connection_lost(ConnectionResetError())
    assert sock.close_code == 1006


async def test_a_refused_upgrade_fails_the_opening() -> None:
    sock = lean_ws.LeanSocket(host="127.0.0.1:1", path="/ws/", origin="http://127.0.0.1:1", cookie="abc")
    transport = FakeTransport()
    sock.connection_made(transport)
    request = bytes(transport.written)
    assert b"Cookie: sessionid=abc\r\n" in request and b"Origin: http://127.0.0.1:1\r\n" in request
    sock.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(sock.opened.exception(), ConnectionError)
    assert transport.closed


async def test_it_speaks_to_a_websockets_server() -> None:
    await _speak_to_a_websockets_server()


def test_it_speaks_to_a_websockets_server_on_uvloop() -> None:
    # The bench's client processes run on uvloop, whose transports are not asyncio.Transport.
    uvloop.run(_speak_to_a_websockets_server())


async def _speak_to_a_websockets_server() -> None:
    subscribers: set[Any] = set()
    heard: list[Any] = []

    async def handler(ws: Any) -> None:
        async for raw in ws:
            heard.append(json.loads(raw))
            subscribers.add(ws)
            await ws.send(json.dumps({"type": "subscribed"}))
        subscribers.discard(ws)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        sock = await lean_ws.connect(f"ws://127.0.0.1:{port}/", origin=f"http://127.0.0.1:{port}",
                                     cookie=None, timeout=10)
        sock.send_text(json.dumps({"type": "subscribe", "room": 1, "é": "ü"}))
        async with asyncio.timeout(10):
            assert json.loads(await sock.recv()) == {"type": "subscribed"}
        got: list[bytes] = []
        sock.on_text = got.append
        broadcast(subscribers, "x" * 70_000)
        broadcast(subscribers, '{"type":"message","id":7}')
        async with asyncio.timeout(10):
            while len(got) < 2:
                await asyncio.sleep(0.01)
        assert got == [b"x" * 70_000, b'{"type":"message","id":7}']
        assert heard == [{"type": "subscribe", "room": 1, "é": "ü"}]
        await sock.close(timeout=5)
        assert sock.close_code == 1000
