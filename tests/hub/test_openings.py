"""The order of openings (hub/openings.py): the newest first, none whose client gave up."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.testing import WebsocketCommunicator

from hub import asgi
from hub.openings import OpeningQueue
from tests.hub.test_asgi import session_cookie_for

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


async def _waiting(queue: OpeningQueue, count: int) -> None:
    for _ in range(200):
        if queue.waiting == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{queue.waiting} openings waiting, not {count}")


async def test_the_newest_opening_waiting_is_served_first():
    queue = OpeningQueue(at_once=1, patience=20.0)
    first = await queue.turn(arrived=queue.clock(), gone=lambda: False)
    assert first is not None
    served: list[str] = []

    async def opening(name: str) -> None:
        turn = await queue.turn(arrived=queue.clock(), gone=lambda: False)
        assert turn is not None
        served.append(name)
        turn.done()

    tasks = []
    for name in ("oldest", "middle", "newest"):
        tasks.append(asyncio.ensure_future(opening(name)))
        await _waiting(queue, len(tasks))
    first.done()
    await asyncio.gather(*tasks)
    assert served == ["newest", "middle", "oldest"]
    assert queue.serving == 0 and queue.waiting == 0


async def test_an_opening_whose_client_left_or_that_waited_too_long_is_dropped_and_passes_its_turn_on():
    now = [100.0]
    queue = OpeningQueue(at_once=1, patience=20.0, clock=lambda: now[0])
    first = await queue.turn(arrived=now[0], gone=lambda: False)
    assert first is not None
    old = asyncio.ensure_future(queue.turn(arrived=now[0], gone=lambda: False))
    await _waiting(queue, 1)
    left = asyncio.ensure_future(queue.turn(arrived=now[0] + 19, gone=lambda: True))
    await _waiting(queue, 2)
    now[0] += 21  # the first opening waited 21 s; the one whose client left, 2 s
    first.done()
    assert await left is None
    assert await old is None
    assert queue.serving == 0 and queue.waiting == 0
    assert await queue.turn(arrived=now[0], gone=lambda: False) is not None


async def test_a_cancelled_opening_gives_its_place_back():
    queue = OpeningQueue(at_once=1, patience=20.0)
    first = await queue.turn(arrived=queue.clock(), gone=lambda: False)
    assert first is not None
    cancelled = asyncio.ensure_future(queue.turn(arrived=queue.clock(), gone=lambda: False))
    await _waiting(queue, 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert queue.waiting == 0
    first.done()
    assert queue.serving == 0


@pytest.mark.django_db(transaction=True)
async def test_an_opening_whose_client_left_while_it_waited_has_no_session_read(settings, monkeypatch):
    """In a crowd, openings wait for their turn; one whose client closed its connection
    meanwhile costs nothing more (on main its session was read and its socket set up and
    accepted for nobody: the hub's CPU went to clients that had given up)."""
    settings.HIRFA_OPENINGS_READ_AT_ONCE = 1
    read: list[str] = []
    reading = threading.Event()
    release = threading.Event()
    original = asgi.session_member

    def slow_read(session, *args):
        read.append(session.session_key)
        reading.set()
        release.wait(5)
        return original(session, *args)

    monkeypatch.setattr(asgi, "session_member", slow_read)
    amina = await session_cookie_for("amina")
    yacine = await session_cookie_for("yacine")
    first = WebsocketCommunicator(asgi.application, "/ws/", headers=[ORIGIN, (b"cookie", amina)])
    first_connected = asyncio.ensure_future(first.connect(timeout=10))
    for _ in range(500):
        if reading.is_set():
            break
        await asyncio.sleep(0.01)
    assert reading.is_set()
    gone = WebsocketCommunicator(asgi.application, "/ws/", headers=[ORIGIN, (b"cookie", yacine)])
    await gone.send_input({"type": "websocket.connect"})
    await gone.send_input({"type": "websocket.disconnect", "code": 1006})
    for _ in range(10):
        await asyncio.sleep(0)  # the client's connect and disconnect reach the hub first
    release.set()
    assert (await first_connected)[0]
    await gone.wait(timeout=5)
    assert await gone.receive_nothing()
    assert read == [amina.decode().split("=", 1)[1]]
    await first.disconnect()
