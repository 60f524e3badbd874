"""The meeting engine's seam, without a socket or a network: typed commands in, typed
events out; malformed messages are refused where they cross a process boundary."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from hub.errors import ErrorCode
from hub.protocol import MeetingState
from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig
from tests.parallel import worker_port

AMINA, KARIM = 11, 12
BASE = {"meeting": 7, "room": 3}


class Inbox:
    """The events the engine sends, by address."""

    def __init__(self) -> None:
        self.events: dict[str, list[m.Event]] = {}
        self.published: list[tuple[str, MeetingState]] = []

    async def reply(self, reply_to: str, event: m.Event) -> None:
        self.events.setdefault(reply_to, []).append(event)

    def publish(self, group: str, frame: MeetingState) -> None:
        self.published.append((group, frame))

    async def next(self, reply_to: str, count: int = 1) -> list[m.Event]:
        for _ in range(200):
            if len(self.events.get(reply_to, [])) >= count:
                return self.events[reply_to]
            await asyncio.sleep(0.01)
        raise AssertionError(f"{reply_to} got {self.events.get(reply_to)}")


@pytest.fixture
async def engine():
    inbox = Inbox()
    engine = MeetingEngine(
        Sfu(SfuConfig(port_min=worker_port(47000), port_max=worker_port(47099))), reply=inbox.reply, publish=inbox.publish
    )
    engine.inbox = inbox  # type: ignore[attr-defined]
    yield engine
    await engine.close()


def test_malformed_commands_are_refused_on_arrival():
    good = {"op": "answer", **BASE, "user": AMINA, "reply_to": "a", "sdp": "v=0", "revision": 2}
    assert m.command_from(good) == m.Answer(**BASE, user=AMINA, reply_to="a", sdp="v=0", revision=2)
    for bad in (
        {**good, "revision": None},  # no more `int(x or 0)` guesses
        {**good, "op": "dance"},
        {k: v for k, v in good.items() if k != "reply_to"},
        {"op": "host_mute", **BASE, "user": KARIM, "reply_to": "k", "target": "amina", "source": "mic", "muted": True},
    ):
        with pytest.raises(ValidationError):
            m.command_from(bad)


def test_a_newer_hubs_or_workers_fields_are_ignored_on_arrival():
    """Rolling deploys: a hub or worker one version ahead may add fields to what crosses the
    channel layer; the older side reads what it knows instead of dropping the message."""
    good = {"op": "answer", **BASE, "user": AMINA, "reply_to": "a", "sdp": "v=0", "revision": 2}
    assert m.command_from({**good, "surprise": 1}) == m.command_from(good)
    offer = m.Offer(
        sdp="v=0", revision=3,
        mlines=(m.OfferLine(mid="0", kind="audio", direction="subscribe", user=AMINA, source="mic"),),
    )
    raw = offer.model_dump(mode="json")
    raw["layers"] = ["q", "h"]
    raw["mlines"][0]["priority"] = "high"
    assert m.event_from(raw) == offer
    info = m.WorkerInfo(channel="sfu.w1", load=3, ports=3, at=1.0)
    assert m.WorkerInfo.model_validate_json(info.model_dump_json()[:-1] + ', "cores": 2}') == info


def test_events_survive_the_channel_layer_unchanged():
    offer = m.Offer(
        sdp="v=0",
        revision=3,
        mlines=(m.OfferLine(mid="0", kind="audio", direction="subscribe", user=AMINA, source="mic"),),
    )
    assert m.event_from(offer.model_dump(mode="json")) == offer
    with pytest.raises(ValidationError):
        m.event_from({"kind": "ended", "reason": "bored"})


async def test_a_command_for_a_meeting_he_is_not_in_is_refused_with_a_code(engine):
    engine.submit(m.Hand(**BASE, user=AMINA, reply_to="a", ref="r1", up=True))
    (event,) = await engine.inbox.next("a")
    assert event == m.EngineError(
        meeting=BASE["meeting"], code=ErrorCode.NO_SESSION.value, message="You are not in this meeting.", ref="r1"
    )


async def test_a_full_meeting_refuses_a_newcomer(engine):
    engine._max_participants = 0
    engine.submit(m.Join(**BASE, user=AMINA, reply_to="a", ref="j", name="Amina"))
    (event,) = await engine.inbox.next("a")
    assert isinstance(event, m.EngineError) and event.code == ErrorCode.FORBIDDEN.value
    assert event.message == "The meeting is full." and event.ref == "j"


async def test_the_lobby_holds_a_member_until_he_leaves(engine):
    engine.submit(m.Join(**BASE, user=AMINA, reply_to="a", ref="j", name="Amina", lobby=True, must_wait=True))
    (event,) = await engine.inbox.next("a")
    assert event == m.Lobby(meeting=BASE["meeting"], ref="j")  # stamped with its meeting
    assert engine.meeting_ids() == (7,)
    # A leave from another socket of hers is not hers to give.
    engine.submit(m.Leave(**BASE, user=AMINA, reply_to="elsewhere"))
    await asyncio.sleep(0.05)
    assert engine.meeting_ids() == (7,)
    engine.submit(m.Leave(**BASE, user=AMINA, reply_to="a"))
    for _ in range(100):
        if not engine.meeting_ids():
            break
        await asyncio.sleep(0.01)
    assert engine.meeting_ids() == ()
    assert engine.load == 0
