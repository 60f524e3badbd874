"""A meeting spread over two workers' engines (signaling/spread.py), in this process: their
pipes carry media over real UDP between two SFUs, their peer messages go through a bus
whose delivery the test holds back, as a busy channel layer does; each participant is a
real aiortc peer answering its engine's offers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling import messages as m
from signaling.engine import MeetingEngine
from signaling.sfu import Sfu, SfuConfig, TrackSource
from tests.parallel import worker_port
from tests.signaling.clients import offer_from_frame, track_slot
from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from tests.signaling.test_engine import Inbox

pytestmark = pytest.mark.timeout(120)

NADIA, AMINA = 21, 22
BASE: dict[str, Any] = {"meeting": 9, "room": 4}
W1, W2 = "w1", "w2"


class Bus:
    """The workers' `signaling.spread.PeerBus` in one process: the meeting's hash and the
    channel layer. Messages of the kinds in ``held`` wait until `release`."""

    def __init__(self) -> None:
        self.engines: dict[str, MeetingEngine] = {}
        self.parts: dict[int, dict[str, tuple[str, int]]] = {}
        self.held: set[type[Any]] = set()
        self.waiting: list[tuple[str, m.PeerMessage]] = []
        #: Between noting a worker's part and reading the others' (Redis: two round trips).
        self.enter_delay = 0.0
        #: Every message sent, in order.
        self.log: list[m.PeerMessage] = []

    def of(self, worker: str) -> WorkerBus:
        return WorkerBus(self, worker)

    def deliver(self, worker: str, message: m.PeerMessage) -> None:
        self.log.append(message)
        if type(message) in self.held:
            self.waiting.append((worker, message))
        else:
            self.engines[worker].peer_message(message)

    def release(self, kind: type[Any]) -> None:
        self.held.discard(kind)
        waiting = [(w, message) for w, message in self.waiting if isinstance(message, kind)]
        self.waiting = [(w, message) for w, message in self.waiting if not isinstance(message, kind)]
        for worker, message in waiting:
            self.engines[worker].peer_message(message)


class WorkerBus:
    def __init__(self, bus: Bus, worker: str) -> None:
        self.bus = bus
        self.worker = worker

    async def enter(self, meeting_id: int, address: tuple[str, int]) -> dict[str, tuple[str, int]]:
        table = self.bus.parts.setdefault(meeting_id, {})
        table[self.worker] = address
        await asyncio.sleep(self.bus.enter_delay)
        return {w: a for w, a in table.items() if w != self.worker}

    async def leave(self, meeting_id: int) -> None:
        self.bus.parts.get(meeting_id, {}).pop(self.worker, None)

    async def send(self, worker: str, message: m.PeerMessage) -> None:
        self.bus.deliver(worker, message)


class Browsers(Inbox):
    """Each address's aiortc peer answers its engine's offers; a reception says whom each of
    its m-lines carries now (the page relabels its tiles)."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: dict[str, tuple[MeetingEngine, int, ClientPeer]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def reply(self, reply_to: str, event: m.Event) -> None:
        await super().reply(reply_to, event)
        if reply_to not in self.peers:
            return
        if isinstance(event, m.Reception):
            for line in event.slots:
                self.peers[reply_to][2].slots[line.mid] = track_slot(line.model_dump())
        if isinstance(event, m.Offer):
            task = asyncio.ensure_future(self._answer(reply_to, event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _answer(self, reply_to: str, event: m.Offer) -> None:
        engine, user, peer = self.peers[reply_to]
        sdp = await peer.answer(offer_from_frame(event.model_dump()))
        engine.submit(m.Answer(**BASE, user=user, reply_to=reply_to, sdp=sdp, revision=event.revision))


def _config(port_min: int) -> SfuConfig:
    # Slots, as in production (HIRFA_SFU_AUDIO_SLOTS, _VIDEO_SLOTS).
    return SfuConfig(port_min=port_min, port_max=port_min + 99, audio_slots=3, video_slots=4)


#: Each worker's own limit; the meeting's holds across both (issue 11).
MAX_PARTICIPANTS = 2


@pytest.fixture
async def spread():
    """Two workers' engines of one meeting, joined by a bus and by pipes."""
    bus, browsers = Bus(), Browsers()
    engines = {
        worker: MeetingEngine(
            Sfu(_config(port)), reply=browsers.reply, publish=browsers.publish, peers=bus.of(worker),
            max_participants=MAX_PARTICIPANTS,
        )
        for worker, port in ((W1, worker_port(41200)), (W2, worker_port(41300)))
    }
    bus.engines = engines
    yield bus, browsers, engines
    for engine in engines.values():
        await engine.close()
    for _engine, _user, peer in browsers.peers.values():
        await peer.close()


async def join(browsers: Browsers, engine: MeetingEngine, user: int, name: str, **fields: Any) -> ClientPeer:
    peer = ClientPeer(name, tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
    browsers.peers[name] = (engine, user, peer)
    engine.submit(m.Join(**BASE, user=user, reply_to=name, ref="j", name=name, publish=("mic", "camera"), **fields))
    (event, *_rest) = await browsers.next(name)
    assert isinstance(event, m.Joined), event
    return peer


def hears_and_sees(peer: ClientPeer, user: int, more: int = 10) -> bool:
    return all(len(peer.frames_from(str(user), source)) >= more for source in (TrackSource.MICROPHONE, TrackSource.CAMERA))


async def test_a_piped_track_that_arrives_before_its_workers_part_state_is_named_once_it_comes(spread):
    bus, browsers, engines = spread
    # The channel layer is slow: amina's first offer goes out before the workers pipe, and
    # the pipe (UDP, direct) is faster still: each worker's list of its participants comes
    # after the tracks it pipes.
    bus.held = {m.PipeOpen, m.PartState}
    nadia = await join(browsers, engines[W1], NADIA, "nadia", host=True)
    amina = await join(browsers, engines[W2], AMINA, "amina")
    await wait_until(lambda: any(isinstance(e, m.Offer) for e in browsers.events["amina"]), what="amina's first offer")
    bus.release(m.PipeOpen)
    await wait_until(
        lambda: sum(len(f) for f in amina.received.values()) >= 20 and sum(len(f) for f in nadia.received.values()) >= 20,
        what="media through the pipes",
    )
    assert not amina.frames_from(str(NADIA), TrackSource.MICROPHONE), "named before her worker said who she is"

    bus.release(m.PartState)
    await wait_until(lambda: hears_and_sees(amina, NADIA) and hears_and_sees(nadia, AMINA), what="each names the other's media")


# --- a host's rights reach the participants on the other worker (issue 11) ---------------


async def both_flowing(browsers: Browsers, engines: dict[str, MeetingEngine], **amina: Any):
    """Nadia hosts on the meeting's worker, amina is on the other; each hears and sees the other."""
    nadia = await join(browsers, engines[W1], NADIA, "nadia", host=True)
    peer = await join(browsers, engines[W2], AMINA, "amina", **amina)
    await wait_until(lambda: hears_and_sees(peer, NADIA) and hears_and_sees(nadia, AMINA), what="media both ways")
    return nadia, peer


def host(command: type[Any], **fields: Any) -> Any:
    return command(**BASE, user=NADIA, reply_to="nadia", ref="h", **fields)


def refusals(browsers: Browsers, reply_to: str) -> list[m.EngineError]:
    return [e for e in browsers.events.get(reply_to, []) if isinstance(e, m.EngineError)]


def ended(browsers: Browsers, reply_to: str) -> list[str]:
    return [e.reason for e in browsers.events.get(reply_to, []) if isinstance(e, m.Ended)]


def state_of(browsers: Browsers, user: int):
    """The participant as the last meeting state published (by any worker) shows him."""
    _group, frame = browsers.published[-1]
    return next((p for p in frame.participants if p.user.id == user), None)


def piped_from(engine: MeetingEngine, user: int) -> set[TrackSource]:
    meeting = engine.sfu.get_meeting(str(BASE["meeting"]))
    return {f.source for f in meeting.remote_forwarders() if f.participant_id == str(user)}


async def test_a_hosts_mute_reaches_a_participant_on_the_other_worker(spread):
    _bus, browsers, engines = spread
    nadia, _amina = await both_flowing(browsers, engines)

    engines[W1].submit(host(m.HostMute, target=AMINA, source="mic", muted=True))
    meeting_there = engines[W2].sfu.get_meeting(str(BASE["meeting"]))
    await wait_until(lambda: meeting_there.is_muted(str(AMINA), TrackSource.MICROPHONE), what="her worker mutes her")
    assert refusals(browsers, "nadia") == []
    # Her voice stops at her worker, so nothing of it crosses the pipe: what nadia got so far
    # is all she gets, while amina's picture goes on.
    voice = len(nadia.frames_from(str(AMINA), TrackSource.MICROPHONE))
    pictures = len(nadia.frames_from(str(AMINA), TrackSource.CAMERA))
    await wait_until(lambda: len(nadia.frames_from(str(AMINA), TrackSource.CAMERA)) >= pictures + 20, what="her picture")
    assert len(nadia.frames_from(str(AMINA), TrackSource.MICROPHONE)) <= voice + 2  # two in flight at most
    await wait_until(lambda: (p := state_of(browsers, AMINA)) is not None and p.host_muted == ["mic"], what="shown muted")

    engines[W1].submit(host(m.HostMute, target=AMINA, source="mic", muted=False))
    voice = len(nadia.frames_from(str(AMINA), TrackSource.MICROPHONE))
    await wait_until(lambda: len(nadia.frames_from(str(AMINA), TrackSource.MICROPHONE)) >= voice + 20, what="her voice back")


async def test_a_participant_removed_on_the_other_worker_is_cut_off_at_once_everywhere(spread):
    _bus, browsers, engines = spread
    await both_flowing(browsers, engines)

    engines[W1].submit(host(m.Remove, target=AMINA))
    await wait_until(lambda: ended(browsers, "amina") == ["removed"], what="amina told she is removed")
    assert refusals(browsers, "nadia") == []
    # Her peer is closed on her worker: nothing of hers is piped any more, and she receives nothing.
    assert engines[W2].load == 0
    await wait_until(lambda: not piped_from(engines[W1], AMINA), what="her tracks gone from the host's worker")
    await wait_until(lambda: not engines[W2].meeting_ids(), what="her worker holds nothing of the meeting")
    assert engines[W1].load == 1, "nadia stays"
    await wait_until(lambda: state_of(browsers, AMINA) is None, what="the meeting's state without her")


async def test_a_host_ending_the_meeting_ends_it_on_every_worker(spread):
    _bus, browsers, engines = spread
    await both_flowing(browsers, engines)

    engines[W1].submit(host(m.End))
    await wait_until(lambda: ended(browsers, "amina") == ["ended"] and ended(browsers, "nadia") == ["ended"], what="both told")
    await wait_until(lambda: not engines[W1].meeting_ids() and not engines[W2].meeting_ids(), what="both workers closed it")


async def test_a_host_admits_from_the_lobby_someone_waiting_on_the_other_worker(spread):
    _bus, browsers, engines = spread
    nadia = await join(browsers, engines[W1], NADIA, "nadia", host=True, lobby=True)
    peer = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
    browsers.peers["amina"] = (engines[W2], AMINA, peer)
    engines[W2].submit(
        m.Join(**BASE, user=AMINA, reply_to="amina", ref="j", name="amina", publish=("mic", "camera"), lobby=True, must_wait=True)
    )
    await wait_until(lambda: any(isinstance(e, m.Lobby) for e in browsers.events.get("amina", [])), what="amina waits")
    # The host sees her waiting, though she waits on the other worker...
    await wait_until(
        lambda: any(w.id == AMINA for w in engines[W1].state_frame(engines[W1]._meetings[BASE["meeting"]]).waiting),
        what="the host's worker lists her",
    )
    # ...and lets her in.
    engines[W1].submit(host(m.Admit, target=AMINA))
    await wait_until(lambda: any(isinstance(e, m.Joined) for e in browsers.events.get("amina", [])), what="amina admitted")
    assert refusals(browsers, "nadia") == []
    await wait_until(lambda: hears_and_sees(peer, NADIA) and hears_and_sees(nadia, AMINA), what="media both ways")


async def test_a_host_denies_someone_waiting_on_the_other_worker(spread):
    _bus, browsers, engines = spread
    await join(browsers, engines[W1], NADIA, "nadia", host=True, lobby=True)
    browsers.peers["amina"] = (engines[W2], AMINA, ClientPeer("amina"))
    engines[W2].submit(m.Join(**BASE, user=AMINA, reply_to="amina", ref="j", name="amina", lobby=True, must_wait=True))
    await wait_until(
        lambda: any(w.id == AMINA for w in engines[W1].state_frame(engines[W1]._meetings[BASE["meeting"]]).waiting),
        what="the host's worker lists her",
    )
    engines[W1].submit(host(m.Deny, target=AMINA))
    await wait_until(lambda: ended(browsers, "amina") == ["denied"], what="amina denied")
    assert refusals(browsers, "nadia") == []
    await wait_until(lambda: not engines[W2].meeting_ids(), what="her worker forgets the meeting")


# --- the pipe's key (issue 11) -------------------------------------------------------------


async def test_two_workers_entering_a_meeting_at_once_agree_on_their_pipes_key(spread):
    bus, browsers, engines = spread
    # Each notes its part, then reads the others' (two Redis round trips): both see the other,
    # both draw a key for their pipe and send it, and each key arrives after the other's was drawn.
    bus.enter_delay = 0.2
    bus.held = {m.PipeOpen}
    peers = {}
    for engine, user, name in ((engines[W1], NADIA, "nadia"), (engines[W2], AMINA, "amina")):
        peers[name] = ClientPeer(name, tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
        browsers.peers[name] = (engine, user, peers[name])
        engine.submit(m.Join(**BASE, user=user, reply_to=name, ref="j", name=name, publish=("mic", "camera")))
    await wait_until(lambda: sum(isinstance(message, m.PipeOpen) for message in bus.log) == 2, what="both drew a key")
    keys = {message.key for message in bus.log if isinstance(message, m.PipeOpen)}
    assert len(keys) == 2
    bus.release(m.PipeOpen)
    await wait_until(
        lambda: hears_and_sees(peers["amina"], NADIA) and hears_and_sees(peers["nadia"], AMINA), what="media both ways"
    )


# --- the meeting's rules hold across its workers (issue 11) ------------------------------


def listed(engine: MeetingEngine, user: int) -> bool:
    live = engine._meetings.get(BASE["meeting"])
    return live is not None and user in live.known_ids()


async def test_the_participant_limit_counts_the_whole_meeting_not_one_worker(spread):
    _bus, browsers, engines = spread
    await both_flowing(browsers, engines)
    await wait_until(lambda: listed(engines[W1], AMINA), what="nadia's worker knows of amina")
    # Two in the meeting, one on each worker: a third is refused on either.
    browsers.peers["karim"] = (engines[W1], 23, ClientPeer("karim"))
    engines[W1].submit(m.Join(**BASE, user=23, reply_to="karim", ref="j", name="karim"))
    (event, *_rest) = await browsers.next("karim")
    assert isinstance(event, m.EngineError) and event.message == "The meeting is full.", event
    assert engines[W1].load == 1


async def test_a_presenter_lets_a_listener_on_the_other_worker_speak_and_stops_him(spread):
    _bus, browsers, engines = spread
    nadia = await join(browsers, engines[W1], NADIA, "nadia", presenter=True, masterclass=True)
    amina = await join(browsers, engines[W2], AMINA, "amina", listener=True, masterclass=True)
    await wait_until(lambda: hears_and_sees(amina, NADIA), what="the listener hears and sees the presenter")
    assert not nadia.frames_from(str(AMINA), TrackSource.MICROPHONE), "a listener was heard before being let speak"

    engines[W1].submit(m.Speak(**BASE, user=NADIA, reply_to="nadia", ref="s", target=AMINA, allowed=True))
    await wait_until(lambda: (p := state_of(browsers, AMINA)) is not None and p.may_speak, what="shown let speak")
    assert refusals(browsers, "nadia") == []
    engines[W2].submit(m.Publish(**BASE, user=AMINA, reply_to="amina", ref="p", source="mic"))
    await wait_until(lambda: len(nadia.frames_from(str(AMINA), TrackSource.MICROPHONE)) >= 10, what="the presenter hears her")
    assert refusals(browsers, "amina") == []

    engines[W1].submit(m.Speak(**BASE, user=NADIA, reply_to="nadia", ref="s", target=AMINA, allowed=False))
    await wait_until(lambda: not piped_from(engines[W1], AMINA), what="her voice stopped at her worker")
    await wait_until(lambda: (p := state_of(browsers, AMINA)) is not None and not p.may_speak, what="shown stopped")


async def test_a_presenter_on_another_worker_comes_first_on_this_ones_links(spread):
    _bus, browsers, engines = spread
    await join(browsers, engines[W1], NADIA, "nadia", presenter=True, masterclass=True)
    await join(browsers, engines[W2], AMINA, "amina", listener=True, masterclass=True)
    meeting_there = engines[W2].sfu.get_meeting(str(BASE["meeting"]))
    await wait_until(lambda: meeting_there.is_presenter(str(NADIA)), what="amina's worker knows nadia presents")


async def test_a_hosts_mute_holds_when_the_muted_member_comes_back_on_another_worker(spread):
    _bus, browsers, engines = spread
    await both_flowing(browsers, engines)
    engines[W1].submit(host(m.HostMute, target=AMINA, source="mic", muted=True))
    await wait_until(lambda: (p := state_of(browsers, AMINA)) is not None and p.host_muted == ["mic"], what="shown muted")
    await wait_until(
        lambda: any(p.user.id == AMINA and p.host_muted == ["mic"] for part in engines[W1]._meetings[BASE["meeting"]].parts.values() for p in part.participants),
        what="nadia's worker told",
    )
    # Amina's worker dies (no goodbye); nadia's notices at its heartbeat; amina rejoins there.
    (await engines[W2].sfu.pipe_endpoint()).kill()
    engines[W1].peer_gone(W2)
    await join(browsers, engines[W1], AMINA, "amina-again")
    meeting_here = engines[W1].sfu.get_meeting(str(BASE["meeting"]))
    await wait_until(lambda: meeting_here.is_muted(str(AMINA), TrackSource.MICROPHONE), what="still muted")
    await wait_until(lambda: (p := state_of(browsers, AMINA)) is not None and p.host_muted == ["mic"], what="still shown muted")
