"""A meeting whose members all leave at once (their sockets closed together: a meeting's end,
a hub's sockets cut): the engine tells nobody already leaving what he now receives.

Each departure frees a slot of every other member; without this, each of the members whose
own leave is still queued was sent a reception per departure before his own: N²/2 replies
to sockets already closed (4,851 at 100, which filled the hub process's channel-layer inbox
that nobody read any more: 3,741 ``ChannelFull`` in every assembly run, docs/performance.md).
Real aiortc peers answering one engine's offers, as in tests/signaling/test_spread_engine.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig, TrackSource
from tests.parallel import worker_port
from tests.signaling.sfu.peers import ClientPeer, ToneAudioTrack, wait_until
from tests.signaling.test_spread_engine import BASE, Browsers

pytestmark = pytest.mark.timeout(120)

MEMBERS = {31: "amina", 32: "karim", 33: "nadia", 34: "rachid"}


@pytest.fixture
async def meeting():
    browsers = Browsers()
    port = worker_port(41500)
    # Three audio slots: each member hears the three others (his slots are full).
    engine = MeetingEngine(
        Sfu(SfuConfig(port_min=port, port_max=port + 99, audio_slots=3, video_slots=4)),
        reply=browsers.reply, publish=browsers.publish,
    )
    yield browsers, engine
    await engine.close()
    for _engine, _user, peer in browsers.peers.values():
        await peer.close()


def receptions(browsers: Browsers, name: str) -> list[m.Reception]:
    return [e for e in browsers.events.get(name, []) if isinstance(e, m.Reception)]


def hears_the_others(browsers: Browsers, user: int) -> bool:
    """His peer receives each other member's voice (his three audio slots are full)."""
    peer = browsers.peers[MEMBERS[user]][2]
    return all(len(peer.frames_from(str(other), TrackSource.MICROPHONE)) >= 5 for other in MEMBERS if other != user)


async def members_joined(browsers: Browsers, engine: MeetingEngine) -> None:
    for user, name in MEMBERS.items():
        peer = ClientPeer(name, tracks={TrackSource.MICROPHONE: ToneAudioTrack()})
        browsers.peers[name] = (engine, user, peer)
        engine.submit(m.Join(**BASE, user=user, reply_to=name, ref="j", name=name, publish=("mic",)))
    await wait_until(
        lambda: all(hears_the_others(browsers, user) for user in MEMBERS), what="each member hearing the three others"
    )
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")


async def test_members_leaving_together_are_not_told_of_each_others_departures(meeting: Any) -> None:
    browsers, engine = meeting
    await members_joined(browsers, engine)
    before = {name: len(receptions(browsers, name)) for name in MEMBERS.values()}

    # All four sockets close at once: four leaves reach the engine before it handles the first.
    for user, name in MEMBERS.items():
        engine.submit(m.Leave(**BASE, user=user, reply_to=name))
    await wait_until(lambda: engine.meeting_ids() == (), what="the meeting emptied")
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")

    after = {name: len(receptions(browsers, name)) - before[name] for name in MEMBERS.values()}
    assert after == dict.fromkeys(MEMBERS.values(), 0)


async def test_a_worker_stopping_with_its_meeting_full_tells_nobody_what_he_receives(meeting: Any) -> None:
    # The assembly bench's teardown, and a worker's restart: the engine closes its members one
    # after the other, and each close freed a slot of everyone still in, a reception each —
    # N²/2 replies (~2,700 at 100 with the hub stopped first, 1,679 of them ChannelFull) from
    # a worker that is going away, whose sockets are told to rejoin elsewhere anyway.
    browsers, engine = meeting
    await members_joined(browsers, engine)
    before = {name: len(receptions(browsers, name)) for name in MEMBERS.values()}
    await engine.close()
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")
    after = {name: len(receptions(browsers, name)) - before[name] for name in MEMBERS.values()}
    assert after == dict.fromkeys(MEMBERS.values(), 0)


class BusyRedis:
    """The worker's channel on a busy Redis: each read is a round trip (the loop turns meanwhile),
    and a read may take every message queued (``receive_queued``) or one (``receive``)."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.queued = list(messages)

    async def receive(self, channel: str) -> dict[str, Any]:
        return (await self.receive_queued(channel, most=1))[0]

    async def receive_queued(self, channel: str, *, most: int = 64) -> list[dict[str, Any]]:
        while not self.queued:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        taken, self.queued = self.queued[:most], self.queued[most:]
        return taken


async def test_a_worker_reads_every_leave_queued_before_it_handles_the_first(meeting: Any) -> None:
    # The hundred sockets of an assembly closed within a second; the worker read its channel one
    # message a read, so the leaves came in about as fast as it handled the departures, and each
    # departure sent a reception to every member whose leave it had not read yet.
    from signaling.worker import channel_read

    browsers, engine = meeting
    await members_joined(browsers, engine)
    before = {name: len(receptions(browsers, name)) for name in MEMBERS.values()}
    redis = BusyRedis([
        {"type": "sfu.command", "command": m.Leave(**BASE, user=user, reply_to=name).model_dump(mode="json")}
        for user, name in MEMBERS.items()
    ])
    reader = asyncio.ensure_future(channel_read(redis, "sfu.test", engine, worker_id="test"))
    try:
        await wait_until(lambda: engine.meeting_ids() == (), what="the meeting emptied")
        await wait_until(lambda: not engine._outboxes, what="every reply handed over")
    finally:
        reader.cancel()
    after = {name: len(receptions(browsers, name)) - before[name] for name in MEMBERS.values()}
    assert after == dict.fromkeys(MEMBERS.values(), 0)


def reception(estimate_kbps: int) -> m.Reception:
    return m.Reception(audio_only=False, videos=(), estimate_kbps=estimate_kbps)


@pytest.fixture
async def slow_engine():
    """An engine whose replies wait until released, as a busy channel layer makes them."""
    delivered: list[m.Event] = []
    gate = asyncio.Event()
    replying = {"now": 0, "most": 0}

    async def reply(reply_to: str, event: m.Event) -> None:
        replying["now"] += 1
        replying["most"] = max(replying["most"], replying["now"])
        try:
            await gate.wait()
            delivered.append(event)
        finally:
            replying["now"] -= 1

    port = worker_port(41600)
    engine = MeetingEngine(Sfu(SfuConfig(port_min=port, port_max=port + 9)), reply=reply, publish=lambda *_: None)
    engine.replying = replying  # type: ignore[attr-defined]
    yield engine, delivered, gate
    gate.set()
    await engine.close()


async def test_a_reception_waiting_behind_another_is_replaced_by_a_newer_one(slow_engine: Any) -> None:
    # While the worker's replies queue (Redis busy: a meeting emptying sends a reception per
    # departure to each member still in), only the last of his waiting receptions is sent.
    engine, delivered, gate = slow_engine
    engine._send("amina", reception(100), 7)  # in flight
    await asyncio.sleep(0)
    for kbps in (200, 300, 400):
        engine._send("amina", reception(kbps), 7)
    gate.set()
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")
    assert [e.estimate_kbps for e in delivered] == [100, 400]


async def test_a_reception_never_passes_an_event_queued_before_it(slow_engine: Any) -> None:
    # An offer names the m-lines a later reception's slots refer to: the order holds.
    engine, delivered, gate = slow_engine
    engine._send("amina", reception(100), 7)
    await asyncio.sleep(0)
    engine._send("amina", reception(200), 7)
    engine._send("amina", m.Offer(sdp="v=0", revision=2, mlines=()), 7)
    engine._send("amina", reception(300), 7)
    engine._send("amina", reception(400), 7)
    gate.set()
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")
    assert [getattr(e, "estimate_kbps", e.kind) for e in delivered] == [100, 200, "offer", 400]


async def test_the_replies_in_flight_at_once_are_bounded(slow_engine: Any) -> None:
    # A hundred members' receptions at once took every connection of the worker's Redis pool
    # (100): the worker's own read of its channel waited behind them, so the leaves of a
    # meeting emptying came in one per departure, each departure sending a reception to every
    # member whose leave was not read yet. Bounded, the rest wait in their queues, where a
    # newer reception replaces a waiting one.
    from signaling.engine import REPLIES_IN_FLIGHT

    engine, delivered, gate = slow_engine
    for index in range(REPLIES_IN_FLIGHT + 20):
        engine._send(f"member{index}", reception(100), 7)
    await wait_until(lambda: engine.replying["now"] >= REPLIES_IN_FLIGHT, what="the first replies under way")
    await asyncio.sleep(0.05)
    assert engine.replying["most"] == REPLIES_IN_FLIGHT
    gate.set()
    await wait_until(lambda: not engine._outboxes, what="every reply handed over")
    assert len(delivered) == REPLIES_IN_FLIGHT + 20
