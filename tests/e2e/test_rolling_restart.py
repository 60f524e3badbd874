"""A rolling restart of two hubs (``hirfa serve``, as production runs them) during a
message run and a meeting: each hub in turn gets SIGTERM, closes its sockets with
1012 once their frame in hand is done, leaves its meetings and exits 0; its
clients reconnect to the other hub at once (as nginx would send them), send again
what was not acknowledged, and rejoin the meeting. Not a message is lost or
stored twice, and the meeting's media flows again (the time it took is printed;
docs/operations.md quotes it)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from rooms.models import Message, Room, RoomKind
from signaling import services
from signaling.sfu import TrackSource
from tests import factories
from tests.e2e.test_meetings_workers import isolated_redis, sfu_workers  # noqa: F401  (fixtures)
from tests.e2e.test_operations import get, metric
from tests.hubclient import Chatter, Hubs, connect_ws
from tests.parallel import worker_port
from tests.servers import DaphneServer, daphne_factory, free_port, session_cookie  # noqa: F401
from tests.signaling.clients import MeetingClient, WebSocket, wait_until
from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

SEND_EVERY = 0.1
#: The run goes on until both hubs have restarted; at most this many messages.
MESSAGES_MAX = 3000


async def rejoin_when_closed(client: MeetingClient, hubs: Hubs, user: Any, meeting: int, log: list[float]) -> None:
    """Watch `client`'s socket; when its hub closes it, reconnect elsewhere and rejoin (a new peer)."""
    while True:
        reader = client._reader
        try:
            await reader
        except websockets.exceptions.ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1012, exc
        closed_at = time.monotonic()
        log.append(closed_at)
        cookie = await sync_to_async(session_cookie)(user)
        while True:
            try:
                ws = await connect_ws(hubs.pick(), cookie)
                break
            except (OSError, websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed):
                await asyncio.sleep(0.05)
        await client.peer.close()
        client.peer = ClientPeer(
            client.name, tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()}
        )
        client.socket = WebSocket(ws)
        client._reader = asyncio.get_running_loop().create_task(client._read())
        await client.join(meeting)


async def media_flowing(x: MeetingClient, y: MeetingClient, *, more: int = 5) -> None:
    start = {(c.name, s): len(c.frames_from(o.user_id, s)) for c, o in ((x, y), (y, x)) for s in ("mic", "camera")}
    await wait_until(
        lambda: all(
            len(c.frames_from(o.user_id, s)) >= start[(c.name, s)] + more for c, o in ((x, y), (y, x)) for s in ("mic", "camera")
        ),
        timeout=60,
        what=f"media between {x.name} and {y.name}",
    )


async def test_a_rolling_restart_of_the_hubs_loses_no_message_and_brings_the_meeting_back(
    daphne_factory, sfu_workers, isolated_redis  # noqa: F811
):
    @sync_to_async
    def setup():
        trade, wilaya = factories.trade(), factories.wilaya()
        amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
        yacine = factories.yacine(pottery_=trade)
        nadia = factories.nadia(pottery_=trade)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
        meeting = services.meeting_start(user=nadia, room_id=room.pk).meeting
        return room.pk, meeting, amina, nadia, session_cookie(amina), session_cookie(yacine)

    room, meeting, amina, nadia, amina_cookie, yacine_cookie = await setup()
    ops_port = free_port()
    worker = await asyncio.to_thread(sfu_workers, "w1", worker_port(45200), ops_port)
    env = {
        "REDIS_URL": isolated_redis,
        "HIRFA_SFU_PLACEMENT": "workers",
        "HIRFA_SFU_HEARTBEAT_SECONDS": "0.5",
        # The run sends faster than a person may.
        "HIRFA_RATE_BURST": "1000",
        "HIRFA_RATE_PER_SECOND": "100",
    }
    first = await asyncio.to_thread(daphne_factory, env, hirfa_serve=True)
    second = await asyncio.to_thread(daphne_factory, env, hirfa_serve=True)
    hubs = Hubs([first, second])

    sender = Chatter("amina", amina_cookie, room, hubs)
    receiver = Chatter("yacine", yacine_cookie, room, hubs)
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(receiver.run())]
    # Both meeting participants start on the first hub, so that each restart moves one of them.
    hubs._next = 0
    n = MeetingClient("nadia", nadia.pk, WebSocket(await connect_ws(first, await sync_to_async(session_cookie)(nadia))))
    a = MeetingClient("amina", amina.pk, WebSocket(await connect_ws(second, await sync_to_async(session_cookie)(amina))))
    closes: dict[str, list[float]] = {"nadia": [], "amina": []}
    try:
        await n.join(meeting)
        await a.join(meeting)
        await media_flowing(n, a)
        # The worker's gauges: two participants, each receiving the other's two tracks.
        ops = f"http://127.0.0.1:{ops_port}"
        assert get(f"{ops}/readyz")[0] == 200
        labels = f'worker="{worker.worker_id}"'
        get(f"{ops}/metrics")
        await asyncio.sleep(1)
        _, text = get(f"{ops}/metrics")
        assert metric(text, "hirfa_sfu_meetings", labels) == 1
        assert metric(text, "hirfa_sfu_participants", labels) == 2
        assert metric(text, "hirfa_sfu_forwarded_streams", labels) == 4
        assert metric(text, "hirfa_sfu_ports_in_use", labels) == 2
        assert (metric(text, "hirfa_sfu_forward_bits_per_second", labels) or 0) > 0
        watchers = [
            asyncio.create_task(rejoin_when_closed(n, hubs, nadia, meeting, closes["nadia"])),
            asyncio.create_task(rejoin_when_closed(a, hubs, amina, meeting, closes["amina"])),
        ]
        tasks += watchers

        restarted = asyncio.Event()
        sent: list[str] = []

        async def message_run() -> None:
            for i in range(MESSAGES_MAX):
                if restarted.is_set():
                    return
                sent.append(f"m{i}")
                await sender.send(f"m{i}", f"message {i} de Amina")
                await asyncio.sleep(SEND_EVERY)

        run = asyncio.create_task(message_run())
        media_back: list[float] = []
        for index, hub in enumerate(list(hubs.servers)):
            await asyncio.sleep(1.0)
            hubs.down.add(hub.port)
            hub.process.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(hub.process.wait, 30)
            assert status == 0, hub.log_tail()
            assert "Traceback" not in hub.log_tail(400), hub.log_tail(400)
            moved = n if index == 0 else a
            closed_list = closes[moved.name]
            await wait_until(lambda closed_list=closed_list: closed_list, what=f"{moved.name}'s socket closed")
            try:
                await media_flowing(n, a)
            except AssertionError:
                for w in watchers:  # what the rejoining clients met
                    print("rejoin watcher:", w.done() and (w.cancelled() or w.exception()))
                raise
            media_back.append(time.monotonic() - closed_list[-1])
            # The hub comes back, on the same port, with the new code.
            replacement = await asyncio.to_thread(daphne_factory, env, port=hub.port, hirfa_serve=True)
            hubs.servers[hubs.servers.index(hub)] = replacement
            hubs.down.discard(hub.port)
        restarted.set()
        await run
        expected = set(sent)
        await wait_until(lambda: not sender.unacked, what="every send acknowledged")
        await wait_until(lambda: len(receiver.seen) >= len(expected), what="every message at the receiver")

        stored = await sync_to_async(
            lambda: list(Message.objects.filter(room_id=room).values_list("client_id", flat=True))
        )()
        assert sorted(stored) == sorted(expected), "lost or duplicated in the database"
        assert sorted(receiver.seen.values()) == sorted(expected), "lost or duplicated at the receiver"
        assert sender.errors == [] and receiver.errors == []
        assert 1012 in sender.closes + receiver.closes
        assert set(sender.closes + receiver.closes) <= {1012}
        print(
            f"\nrolling restart of 2 hubs: {len(expected)} messages, 0 lost, 0 duplicated; "
            f"closes {sender.closes + receiver.closes}; media back after "
            + ", ".join(f"{t:.2f} s" for t in media_back)
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in (n, a):
            await c.close()
        for ws in (sender.ws, receiver.ws):
            if ws is not None:
                await ws.close()
