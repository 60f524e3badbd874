"""A member's hub socket over a real websocket (to a daphne server or through nginx)."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import websockets


async def connect_ws(
    server: Any, cookie: dict[str, str], *, ssl_context: ssl.SSLContext | None = None
) -> Any:
    """A hub socket of `server` (anything with `url` and `ws_url`) past the hello/welcome handshake."""
    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
        origin=server.url,
        open_timeout=10,
        ssl=ssl_context,
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def next_frame(ws: Any, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
    """The next frame of type `kind` whose fields equal `match`, skipping the others."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
