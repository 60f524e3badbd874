"""A masterclass in the meeting engine: its listeners publish nothing until a presenter or
host lets them speak, and their right ends at once when stopped (typed errors, no socket)."""

from __future__ import annotations

import asyncio

import pytest

from hub.errors import ErrorCode
from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig
from tests.parallel import worker_port
from tests.signaling.test_engine import Inbox

# Amina presents, Karim listens, Nadia hosts (no presenter).
AMINA, KARIM, NADIA = 11, 12, 13
BASE = {"meeting": 7, "room": 3}


@pytest.fixture
async def engine():
    inbox = Inbox()
    engine = MeetingEngine(Sfu(SfuConfig(port_min=worker_port(47100), port_max=worker_port(47199))), reply=inbox.reply, publish=inbox.publish)
    engine.inbox = inbox  # type: ignore[attr-defined]
    yield engine
    await engine.close()


def _state(engine: MeetingEngine, user: int):
    live = engine._meetings[BASE["meeting"]]
    return next(p for p in engine.state_frame(live).participants if p.user.id == user)


async def _settled(engine: MeetingEngine) -> None:
    """Every queued command of the meeting handled."""
    live = engine._meetings[BASE["meeting"]]
    for _ in range(200):
        if live.queue.empty():
            await asyncio.sleep(0.01)
            if live.queue.empty():
                return
        await asyncio.sleep(0.01)


async def _join(engine, user, reply_to, **fields):
    engine.submit(m.Join(**BASE, user=user, reply_to=reply_to, ref="j", name=reply_to, **fields))
    (event, *_rest) = await engine.inbox.next(reply_to)
    assert isinstance(event, m.Joined), event


async def _masterclass(engine: MeetingEngine) -> None:
    await _join(engine, AMINA, "amina", presenter=True, publish=("mic", "camera"))
    await _join(engine, KARIM, "karim", listener=True, publish=("mic", "camera"))
    await _join(engine, NADIA, "nadia", host=True)
    await _settled(engine)


def _errors(engine, reply_to):
    return [e for e in engine.inbox.events.get(reply_to, []) if isinstance(e, m.EngineError)]


async def test_a_listener_joins_publishing_nothing_and_is_refused_with_a_typed_error(engine):
    await _masterclass(engine)
    amina, karim = _state(engine, AMINA), _state(engine, KARIM)
    assert (amina.presenter, amina.listener, amina.may_speak, amina.tracks) == (True, False, True, ["camera", "mic"])
    assert (karim.presenter, karim.listener, karim.may_speak, karim.tracks) == (False, True, False, [])
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="p", source="mic"))
    await _settled(engine)
    (error,) = _errors(engine, "karim")
    assert (error.code, error.ref) == (ErrorCode.NOT_ALLOWED_TO_SPEAK.value, "p")
    assert _state(engine, KARIM).tracks == []


async def test_a_presenter_lets_a_listener_speak_and_stopping_ends_it_at_once(engine):
    await _masterclass(engine)
    engine.submit(m.Hand(**BASE, user=KARIM, reply_to="karim", up=True))
    engine.submit(m.Speak(**BASE, user=AMINA, reply_to="amina", target=KARIM, allowed=True))
    await _settled(engine)
    karim = _state(engine, KARIM)
    assert (karim.may_speak, karim.hand) == (True, False)
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="p", source="mic"))
    await _settled(engine)
    assert _errors(engine, "karim") == []
    assert _state(engine, KARIM).tracks == ["mic"]

    engine.submit(m.Speak(**BASE, user=AMINA, reply_to="amina", target=KARIM, allowed=False))
    await _settled(engine)
    karim = _state(engine, KARIM)
    # Nothing of his is forwarded any more: his publication is gone on the server.
    assert (karim.may_speak, karim.tracks) == (False, [])
    assert engine._meetings[7].sfu_meeting.publishes(str(KARIM)) == frozenset()
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="again", source="mic"))
    await _settled(engine)
    assert [(e.code, e.ref) for e in _errors(engine, "karim")] == [(ErrorCode.NOT_ALLOWED_TO_SPEAK.value, "again")]


async def test_a_host_lets_speak_too_but_a_listener_may_not_and_only_listeners_are_let(engine):
    await _masterclass(engine)
    engine.submit(m.Speak(**BASE, user=KARIM, reply_to="karim", ref="s", target=AMINA, allowed=False))
    engine.submit(m.Speak(**BASE, user=NADIA, reply_to="nadia", ref="s", target=AMINA, allowed=False))
    engine.submit(m.Speak(**BASE, user=NADIA, reply_to="nadia", ref="ok", target=KARIM, allowed=True))
    await _settled(engine)
    assert [e.code for e in _errors(engine, "karim")] == [ErrorCode.FORBIDDEN.value]
    assert [e.code for e in _errors(engine, "nadia")] == [ErrorCode.INVALID.value]
    assert _state(engine, AMINA).tracks == ["camera", "mic"]
    assert _state(engine, KARIM).may_speak is True


async def test_the_right_to_speak_ends_when_the_listener_leaves(engine):
    await _masterclass(engine)
    engine.submit(m.Speak(**BASE, user=AMINA, reply_to="amina", target=KARIM, allowed=True))
    engine.submit(m.Leave(**BASE, user=KARIM, reply_to="karim"))
    await _settled(engine)
    await _join(engine, KARIM, "karim2", listener=True, publish=("mic",))
    await _settled(engine)
    assert (_state(engine, KARIM).may_speak, _state(engine, KARIM).tracks) == (False, [])


async def test_an_ordinary_meeting_has_no_listeners(engine):
    await _join(engine, KARIM, "karim", publish=("mic",))
    await _settled(engine)
    karim = _state(engine, KARIM)
    assert (karim.listener, karim.presenter, karim.may_speak, karim.tracks) == (False, False, True, ["mic"])
