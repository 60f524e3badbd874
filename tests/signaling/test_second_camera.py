"""A masterclass presenter's second camera (his hands at work), through the meeting engine
with real aiortc peers: a presenter publishes two videos and a listener receives both; a
listener, even one let speak, and anyone in an ordinary meeting are refused with a typed error;
one second camera at most."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.errors import ErrorCode
from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig, TrackSource
from tests.parallel import worker_port
from tests.signaling.clients import offer_from_frame, track_slot
from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from tests.signaling.test_engine import Inbox

pytestmark = pytest.mark.timeout(120)

# Amina presents, Karim listens, Nadia hosts (no presenter).
AMINA, KARIM, NADIA = 11, 12, 13
BASE: dict[str, Any] = {"meeting": 8, "room": 3}


class Browsers(Inbox):
    """The engine's events by address; an offer is answered by that address's aiortc peer, and
    with slots a reception says whom each of its m-lines carries now."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: MeetingEngine | None = None
        self.peers: dict[str, tuple[int, ClientPeer]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def reply(self, reply_to: str, event: m.Event) -> None:
        await super().reply(reply_to, event)
        if isinstance(event, m.Reception) and reply_to in self.peers:
            for line in event.slots:
                self.peers[reply_to][1].slots[line.mid] = track_slot(line.model_dump())
        if isinstance(event, m.Offer) and reply_to in self.peers:
            task = asyncio.ensure_future(self._answer(reply_to, event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _answer(self, reply_to: str, event: m.Offer) -> None:
        user, peer = self.peers[reply_to]
        sdp = await peer.answer(offer_from_frame(event.model_dump()))
        assert self.engine is not None
        self.engine.submit(m.Answer(**BASE, user=user, reply_to=reply_to, sdp=sdp, revision=event.revision))


#: One m-line per track, and slots (as in production: HIRFA_SFU_AUDIO_SLOTS, _VIDEO_SLOTS).
MODES = {"per-track": {}, "slots": {"audio_slots": 3, "video_slots": 9}}


@pytest.fixture(params=list(MODES))
async def engine(request):
    browsers = Browsers()
    config = SfuConfig(port_min=worker_port(42100), port_max=worker_port(42199), allocation_interval=0, **MODES[request.param])
    engine = MeetingEngine(Sfu(config), reply=browsers.reply, publish=browsers.publish)
    engine.slots = request.param == "slots"  # type: ignore[attr-defined]
    browsers.engine = engine
    engine.inbox = browsers  # type: ignore[attr-defined]
    yield engine
    await engine.close()
    for _user, peer in browsers.peers.values():
        await peer.close()


async def _join(engine: MeetingEngine, user: int, name: str, *, tracks=None, **fields: Any) -> ClientPeer:
    peer = ClientPeer(name, tracks=tracks or {})
    engine.inbox.peers[name] = (user, peer)  # type: ignore[attr-defined]
    engine.submit(m.Join(**BASE, user=user, reply_to=name, ref="j", name=name, **fields))
    (event, *_rest) = await engine.inbox.next(name)  # type: ignore[attr-defined]
    assert isinstance(event, m.Joined), event
    return peer


def _state(engine: MeetingEngine, user: int):
    live = engine._meetings[BASE["meeting"]]
    return next(p for p in engine.state_frame(live).participants if p.user.id == user)


def _errors(engine: MeetingEngine, reply_to: str) -> list[tuple[str, str | None]]:
    return [(e.code, e.ref) for e in engine.inbox.events.get(reply_to, []) if isinstance(e, m.EngineError)]  # type: ignore[attr-defined]


async def _settled(engine: MeetingEngine) -> None:
    live = engine._meetings[BASE["meeting"]]
    for _ in range(100):
        await asyncio.sleep(0.02)
        if live.queue.empty():
            return


def _presenter_tracks() -> dict[TrackSource, Any]:
    return {
        TrackSource.MICROPHONE: ToneAudioTrack(),
        TrackSource.CAMERA: PatternVideoTrack(),
        TrackSource.CAMERA2: PatternVideoTrack(width=176, height=144),
    }


async def test_a_presenter_shows_his_hands_on_a_second_camera_and_a_listener_receives_both(engine):
    await _join(
        engine, AMINA, "amina", tracks=_presenter_tracks(), presenter=True, masterclass=True, publish=("mic", "camera")
    )
    karim = await _join(engine, KARIM, "karim", listener=True, masterclass=True)
    # She shows her hands once she is in (as her page does, at a tap).
    await wait_until(lambda: len(karim.frames_from(str(AMINA), TrackSource.CAMERA)) >= 5, what="karim sees her face")
    engine.submit(m.Publish(**BASE, user=AMINA, reply_to="amina", ref="hands", source="camera2"))
    await wait_until(lambda: len(karim.frames_from(str(AMINA), TrackSource.CAMERA2)) >= 10, what="karim sees her hands")
    await wait_until(lambda: len(karim.frames_from(str(AMINA), TrackSource.CAMERA)) >= 10, what="karim sees her face")
    assert _errors(engine, "amina") == []
    assert _state(engine, AMINA).tracks == ["camera", "camera2", "mic"]
    assert engine.state_frame(engine._meetings[8]).masterclass is True
    # Her videos come first in every subscriber's allocation (`video_rank`), his do not.
    sfu_meeting = engine._meetings[8].sfu_meeting
    assert sfu_meeting.is_presenter(str(AMINA)) and not sfu_meeting.is_presenter(str(KARIM))
    # Per track, one msid stream per publisher: her voice and both her videos (lip sync with
    # the face); slots carry one msid each (signaling/sfu/README.md).
    assert karim.pc.remoteDescription is not None
    msids = {line.split()[0] for line in karim.pc.remoteDescription.sdp.splitlines() if line.startswith("a=msid:")}
    if not engine.slots:  # type: ignore[attr-defined]
        assert msids == {f"a=msid:hirfa-{AMINA}"}, msids
    # The hands are a camera like the first: simulcast layers asked for on its m-line.
    offers = [e for e in engine.inbox.events["amina"] if isinstance(e, m.Offer)]  # type: ignore[attr-defined]
    assert offers[-1].sdp.count("a=simulcast:recv") == 2

    # One second camera at most.
    engine.submit(m.Publish(**BASE, user=AMINA, reply_to="amina", ref="again", source="camera2"))
    await _settled(engine)
    assert _errors(engine, "amina") == [(ErrorCode.TOO_MANY_TRACKS.value, "again")]

    # She puts it away: karim's m-line for it goes idle.
    engine.submit(m.Unpublish(**BASE, user=AMINA, reply_to="amina", source="camera2"))
    await wait_until(lambda: _state(engine, AMINA).tracks == ["camera", "mic"], what="her hands unpublished")
    await wait_until(
        lambda: all(s.source is not TrackSource.CAMERA2 for s in karim.slots.values()), what="karim's m-line idle"
    )
    assert karim.frames_from(str(AMINA), TrackSource.CAMERA)


async def test_a_listener_even_let_speak_and_an_ordinary_meeting_have_no_second_camera(engine):
    await _join(engine, AMINA, "amina", presenter=True, masterclass=True, publish=("mic",))
    await _join(engine, KARIM, "karim", listener=True, masterclass=True, publish=("camera2",))
    await _join(engine, NADIA, "nadia", host=True, masterclass=True)
    await _settled(engine)
    assert _state(engine, KARIM).tracks == []
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="no", source="camera2"))
    engine.submit(m.Speak(**BASE, user=AMINA, reply_to="amina", target=KARIM, allowed=True))
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="still-no", source="camera2"))
    engine.submit(m.Publish(**BASE, user=KARIM, reply_to="karim", ref="voice", source="mic"))
    # The masterclass's host may show one.
    engine.submit(m.Publish(**BASE, user=NADIA, reply_to="nadia", ref="host", source="camera2"))
    await _settled(engine)
    assert _errors(engine, "karim") == [
        (ErrorCode.NOT_ALLOWED_TO_SPEAK.value, "no"),
        (ErrorCode.PRESENTERS_ONLY.value, "still-no"),
    ]
    assert _state(engine, KARIM).tracks == ["mic"]
    assert _errors(engine, "nadia") == [] and _state(engine, NADIA).tracks == ["camera2"]


async def test_an_ordinary_meetings_host_has_no_second_camera(engine):
    await _join(engine, NADIA, "nadia", host=True, publish=("mic", "camera", "camera2"))
    await _settled(engine)
    engine.submit(m.Publish(**BASE, user=NADIA, reply_to="nadia", ref="hands", source="camera2"))
    await _settled(engine)
    assert _errors(engine, "nadia") == [(ErrorCode.PRESENTERS_ONLY.value, "hands")]
    assert _state(engine, NADIA).tracks == ["camera", "mic"]
    assert engine.state_frame(engine._meetings[8]).masterclass is False
