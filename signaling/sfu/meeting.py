"""Meetings and their participants: one server-side peer connection each.

The server always makes the offers (a participant never offers), so a
subscriber gets exactly the publisher's codec and there is never glare. The
bridge drives negotiation with three calls::

    participant = await meeting.join("amina", on_negotiation_needed=cb)
    participant.publish(TrackSource.CAMERA)      # or anything else; cb fires
    offer = await participant.create_offer()     # send offer.sdp + offer.slots
    await participant.apply_answer(sdp, revision=offer.revision)

``on_negotiation_needed`` is called (synchronously, never re-entrantly) when
the participant's peer connection must be renegotiated and no offer is
outstanding; after an answer, it is called again if more changes came in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import candidate_from_sdp

from . import aiortc_hooks
from .allocation import (
    AudioDemand,
    DownlinkEstimate,
    VideoDemand,
    allocate,
    layer_name,
    probe_wanted,
    publisher_remb,
    red_distance,
    resume_cost,
    video_rank,
)
from .config import SfuConfig
from .forwarding import WIRE_OVERHEAD_BITS, ForwardTrack, TrackForwarder
from .pipe import Address, PipedTrackForwarder, PipedTrackInfo, PipeEndpoint, PipeSink
from .recorder import MeetingRecorder
from .sdp import audio_offer, ice_credentials, red_payload_types
from .simulcast import simulcast_answer, simulcast_offer
from .speaker import ActiveSpeakerDetector
from .types import (
    BadSessionDescription,
    InvalidSfuState,
    MediaKind,
    MeetingSnapshot,
    NegotiationState,
    Offer,
    ParticipantSnapshot,
    ParticipantState,
    PublishedTrack,
    ReceivedVideo,
    Reception,
    SlotDirection,
    TooManyTracks,
    TrackSlot,
    TrackSource,
    UnknownParticipant,
    VideoCodec,
    VideoQuality,
)

logger = logging.getLogger(__name__)

NegotiationCallback = Callable[["Participant"], None]
StateCallback = Callable[["Participant", ParticipantState], None]
ReceptionCallback = Callable[["Participant", Reception], None]

# A subscriber whose REMB is below this share of what he is sent is congested.
_CONGESTED = 0.85
# Probe padding: packets of this many bytes, sent every this many seconds.
_PAD_SIZE = 255
_PAD_INTERVAL = 0.02
#: A padding packet on his link (bits): its padding and what every forwarded packet carries besides.
_PAD_PACKET_BITS = _PAD_SIZE * 8 + WIRE_OVERHEAD_BITS
# Round trips to a subscriber are measured this often (s) while a probe runs.
_PROBE_PING_INTERVAL = 0.1
# Seconds between the pings of a subscriber who receives no video and whose voices fit his
# estimate: nothing to probe for, no REMB (that comes with video m-lines) for round trips to
# judge. An assembly's 95 silent members were pinged every round: 200 STUN transactions a
# second on the worker (and on their side) that told the allocator nothing it used.
_QUIET_PING_INTERVAL = 2.0
# A voice heard above silence this recently (s) is speaking, for the allocator.
_SPEAKING = 1.5

_H264_PROFILE = "42e01f"  # constrained baseline


def _codec_preferences(kind: MediaKind, video_codec: VideoCodec) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpSender.getCapabilities(kind.value).codecs
    if kind is MediaKind.AUDIO:
        return [c for c in capabilities if c.mimeType.lower() == "audio/opus"]
    wanted: list[RTCRtpCodecCapability] = []
    for codec in capabilities:
        name = codec.mimeType.lower()
        if video_codec is VideoCodec.VP8 and name == "video/vp8" or (
            video_codec is VideoCodec.H264
            and name == "video/h264"
            and codec.parameters.get("profile-level-id") == _H264_PROFILE
        ):
            wanted.insert(0, codec)
        elif name == "video/rtx":
            wanted.append(codec)
    return wanted


def padding_packets(deficit: float, owed: float = 0.0) -> tuple[int, float]:
    """How many padding packets of ``_PAD_SIZE`` bytes one tick of the probe's pacer sends for
    ``deficit`` bit/s (the probe's target less what he is sent), and the bits still owed after
    them (``owed``: those of the ticks before, carried over while the probe pads).

    Both are counted on the wire, as the estimate counts the target and what he is sent: a
    packet's headers, SRTP tag, UDP and IP weigh a quarter of its padding. Counted by payload
    alone a probe padded 25 % over its target (his narrow link's 300 ms queue full before a grown
    round trip could stop it); rounded to whole packets each tick without carrying the rest, it
    padded 33 % under it or 25 % over it (2 or 3 packets a tick for 300 kbit/s)."""
    due = owed + max(0.0, deficit) * _PAD_INTERVAL
    count = int(due // _PAD_PACKET_BITS)
    return count, due - count * _PAD_PACKET_BITS


def stream_id(participant_id: str) -> str:
    """The msid stream of a publisher's tracks (RFC 8830 token characters, at most 64)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in participant_id)
    return f"hirfa-{safe}"[:64]


@dataclass(slots=True)
class _PublishSlot:
    source: TrackSource
    transceiver: RTCRtpTransceiver
    forwarder: TrackForwarder
    active: bool = True


@dataclass(slots=True)
class _SubscribeSlot:
    kind: MediaKind
    transceiver: RTCRtpTransceiver
    track: ForwardTrack
    #: Slots: its place among his slots of its kind (audio and video slot k make a pair).
    index: int = 0


class Participant:
    """One participant's server-side peer connection, publications and subscriptions.

    Created by :meth:`Meeting.join`; every public coroutine raises
    :class:`InvalidSfuState` once the participant is closed.
    """

    def __init__(
        self,
        *,
        participant_id: str,
        meeting: Meeting,
        on_negotiation_needed: NegotiationCallback,
        on_state_change: StateCallback | None,
        receive_video: bool,
        on_reception: ReceptionCallback | None = None,
        video_slots: int | None = None,
    ) -> None:
        self.id = participant_id
        self._meeting = meeting
        self._config = meeting.config
        self._on_negotiation_needed = on_negotiation_needed
        self._on_state_change = on_state_change
        self._receive_video = receive_video
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._pc.on("connectionstatechange", self._connection_state_changed)
        self._liveness = aiortc_hooks.LivenessWatch(
            self._pc, on_change=self._liveness_changed, on_moved=self._path_moved
        )
        self._state = ParticipantState.NEW
        self._released = False
        self._negotiation = NegotiationState.STABLE
        self._negotiation_needed = False
        self._revision = 0
        self._publications: dict[TrackSource, _PublishSlot] = {}
        self._subscriptions: dict[tuple[str, TrackSource], _SubscribeSlot] = {}
        self._idle: list[_SubscribeSlot] = []
        #: Slots (``SfuConfig.audio_slots``): every source he could receive, in the order they
        #: came; ``_subscriptions`` then holds those in a slot, ``_idle`` the empty slots.
        self._slotted = self._config.audio_slots > 0
        self._video_slots = min(self._config.video_slots, video_slots or self._config.video_slots)
        self._candidates: dict[tuple[str, TrackSource], TrackForwarder] = {}
        self._arrival: dict[tuple[str, TrackSource], int] = {}
        self._lock = asyncio.Lock()
        self._on_reception = on_reception
        self._downlink = DownlinkEstimate()
        self._audio_only = False
        #: What he would receive with no limit (bit/s), as of his last allocation round.
        self._wanted = float("inf")
        self._pinned: str | None = None
        self._reception = Reception(audio_only=False, videos=(), estimate=int(self._downlink.initial))
        self._probe_target: float | None = None
        #: Padding bits the probe's pacer still owes (a tick sends whole packets only).
        self._pad_owed = 0.0
        self._pacer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Participant({self.id!r}, {self._state.value})"

    # ------------------------------------------------------------ state

    @property
    def state(self) -> ParticipantState:
        return self._state

    @property
    def negotiation_state(self) -> NegotiationState:
        return self._negotiation

    @property
    def negotiation_needed(self) -> bool:
        return self._negotiation_needed

    @property
    def peer_connection(self) -> RTCPeerConnection:
        """The server-side peer (for tests and diagnostics; do not renegotiate it)."""
        return self._pc

    def forwarders(self) -> tuple[TrackForwarder, ...]:
        return tuple(slot.forwarder for slot in self._publications.values() if slot.active)

    def subscription_tracks(self) -> tuple[ForwardTrack, ...]:
        return tuple(slot.track for slot in self._subscriptions.values())

    def rtt(self) -> float | None:
        """The participant's round-trip time (s), from his receiver reports, once known."""
        for slot in self._subscriptions.values():
            rtt = slot.track.rtt()
            if rtt:
                return rtt
        return None

    def snapshot(self) -> ParticipantSnapshot:
        return ParticipantSnapshot(
            participant_id=self.id,
            state=self._state,
            published=tuple(
                PublishedTrack(
                    participant_id=self.id,
                    source=slot.source,
                    muted_by_moderator=slot.forwarder.muted,
                    frames_received=slot.forwarder.frames_received,
                    keyframe_requests_sent=slot.forwarder.keyframe_requests_sent,
                )
                for slot in self._publications.values()
                if slot.active
            ),
        )

    def _check_open(self, action: str) -> None:
        if self._state is ParticipantState.CLOSED:
            raise InvalidSfuState(f"cannot {action}: participant {self.id!r} is closed")

    def _connection_state_changed(self) -> None:
        mapped = {
            "new": ParticipantState.NEW,
            "connecting": ParticipantState.CONNECTING,
            "connected": ParticipantState.CONNECTED,
            "failed": ParticipantState.FAILED,
            "closed": ParticipantState.CLOSED,
        }.get(self._pc.connectionState)
        if mapped is ParticipantState.CONNECTED and not self._liveness.alive:
            mapped = ParticipantState.DISCONNECTED
        if mapped is None or self._state is ParticipantState.CLOSED or mapped is self._state:
            return
        self._state = mapped
        if self._on_state_change is not None:
            self._on_state_change(self, mapped)

    def _path_moved(self) -> None:
        """An ICE restart moved his media to a new address: what went to the old one since his
        link dropped is lost, and his browser would NACK seconds of it, then ask for keyframes.
        Each video he receives starts again at once from a keyframe, asked for now (sequence
        numbers go on without a hole; NACKs for what went before are not answered)."""
        for slot in self._subscriptions.values():
            track, source = slot.track, slot.track.source
            if slot.kind is MediaKind.VIDEO and source is not None and track.sending and not track.paused:
                track.resync()
                source.request_keyframe(track.target_layer)

    def _liveness_changed(self, alive: bool) -> None:
        if alive:
            self._downlink.restored(time.monotonic())
        else:
            self._downlink.outage()
        if self._state in (ParticipantState.CONNECTED, ParticipantState.DISCONNECTED):
            self._connection_state_changed()

    def _mark_negotiation_needed(self) -> None:
        if self._state is ParticipantState.CLOSED:
            return
        already = self._negotiation_needed
        self._negotiation_needed = True
        if not already and self._negotiation is NegotiationState.STABLE:
            self._on_negotiation_needed(self)

    # ------------------------------------------------------------ publishing

    def publish(self, source: TrackSource) -> None:
        """Open a slot for the participant to send ``source``; renegotiation follows.

        Raises :class:`TooManyTracks` if ``source`` is already published or the
        per-participant limit is reached.
        """
        self._check_open(f"publish {source.value}")
        existing = self._publications.get(source)
        if existing is not None and existing.active:
            raise TooManyTracks(f"participant {self.id!r} already publishes {source.value}")
        active = sum(1 for slot in self._publications.values() if slot.active)
        if active >= self._config.max_tracks_per_participant:
            raise TooManyTracks(
                f"participant {self.id!r} publishes {active} tracks, "
                f"the limit is {self._config.max_tracks_per_participant}"
            )
        if existing is not None:
            existing.active = True
            existing.transceiver.direction = "recvonly"
            existing.forwarder.set_muted(self._meeting.is_muted(self.id, source))
            self._meeting._track_published(existing.forwarder)
        else:
            kind = source.kind
            transceiver = self._pc.addTransceiver(kind.value, direction="recvonly")
            transceiver.setCodecPreferences(_codec_preferences(kind, self._meeting.video_codec))
            forwarder = TrackForwarder(
                participant_id=self.id,
                source=source,
                codec=self._meeting.video_codec,
                receiver=transceiver.receiver,
                keyframe_interval=self._config.keyframe_interval,
                keyframe_timeout=self._config.keyframe_timeout,
                on_audio_level=self._meeting._observe_audio_level,
            )
            forwarder.nack = aiortc_hooks.tap_receiver_packets(
                transceiver.receiver,
                sink=forwarder.on_packet,
                on_give_up=forwarder.on_recovery_failed,
                rtt_hint=self.rtt,
                max_retries=self._config.nack_max_retries,
                max_age=self._config.nack_max_age,
            )
            aiortc_hooks.tap_sender_reports(
                transceiver.receiver, functools.partial(_report_to, forwarder)
            )
            forwarder.set_muted(self._meeting.is_muted(self.id, source))
            self._publications[source] = _PublishSlot(source, transceiver, forwarder)
            self._meeting._track_published(forwarder)
        self._mark_negotiation_needed()

    def unpublish(self, source: TrackSource) -> None:
        """Stop receiving ``source``; subscribers' slots go idle; renegotiation follows."""
        self._check_open(f"unpublish {source.value}")
        slot = self._publications.get(source)
        if slot is None or not slot.active:
            raise InvalidSfuState(f"participant {self.id!r} does not publish {source.value}")
        slot.active = False
        slot.transceiver.direction = "inactive"
        self._meeting._track_unpublished(slot.forwarder)
        for track in tuple(slot.forwarder.subscribers):
            track.attach(None)
        self._mark_negotiation_needed()

    # ------------------------------------------------------------ subscribing

    def _subscribe(self, forwarder: TrackForwarder) -> None:
        key = (forwarder.participant_id, forwarder.source)
        if self._slotted:
            if self._state is not ParticipantState.CLOSED:
                self._candidates[key] = forwarder
                self._arrival.setdefault(key, len(self._arrival))
                self._assign_slots(time.monotonic())
            return
        if key in self._subscriptions or self._state is ParticipantState.CLOSED:
            return
        if forwarder.kind is MediaKind.VIDEO and not self._receive_video:
            return
        slot = next((s for s in self._idle if s.kind is forwarder.kind), None)
        if slot is not None:
            self._idle.remove(slot)
            slot.transceiver.direction = "sendonly"
        else:
            slot = self._new_subscribe_line(forwarder.kind)
        # A new video waits for the allocator, which runs at once (before his sender starts):
        # a narrow link is not flooded before its estimate is spent.
        allocating = self._config.allocation_interval > 0
        slot.track.set_paused(allocating and forwarder.kind is MediaKind.VIDEO)
        slot.track.attach(forwarder)
        # One msid stream per publisher (his audio and video together): browsers keep
        # the audio and video of one stream in sync, and only those.
        aiortc_hooks.set_stream_id(slot.transceiver.sender, stream_id(forwarder.participant_id))
        self._subscriptions[key] = slot
        self._mark_negotiation_needed()
        if allocating:
            self._meeting._allocate_soon(self)

    def _unsubscribe(self, participant_id: str, source: TrackSource) -> None:
        if self._slotted:
            self._candidates.pop((participant_id, source), None)
            self._arrival.pop((participant_id, source), None)
            if self._state is not ParticipantState.CLOSED:
                self._assign_slots(time.monotonic())
            return
        slot = self._subscriptions.pop((participant_id, source), None)
        if slot is None:
            return
        slot.track.attach(None)
        slot.transceiver.direction = "inactive"
        self._idle.append(slot)
        self._mark_negotiation_needed()

    def set_receive_video(self, receive: bool) -> None:
        """Subscribe to (or drop) every video track of the meeting ("don't receive video")."""
        self._check_open("change video reception")
        if receive == self._receive_video:
            return
        self._receive_video = receive
        if self._slotted:
            self._open_slots()  # his video slots, the first time he wants video
            self._assign_slots(time.monotonic())
            return
        if receive:
            for forwarder in self._meeting.forwarders():
                if forwarder.participant_id != self.id:
                    self._subscribe(forwarder)
        else:
            for participant_id, source in list(self._subscriptions):
                if source.kind is MediaKind.VIDEO:
                    self._unsubscribe(participant_id, source)

    # ------------------------------------------------------------ slots

    def _open_slots(self) -> None:
        """Slots: open his fixed audio m-lines, and video ones if he receives video (empty
        until a source is switched in); each kind once."""
        if not self._slotted:
            return
        opened = {line.kind for line in [*self._idle, *self._subscriptions.values()]}
        for kind, count in ((MediaKind.AUDIO, self._config.audio_slots), (MediaKind.VIDEO, self._video_slots)):
            if kind in opened or (kind is MediaKind.VIDEO and not self._receive_video):
                continue
            paired = min(self._config.audio_slots, self._video_slots)
            for index in range(count):
                line = self._new_subscribe_line(kind)
                line.index = index
                # Audio slot k and video slot k are one msid stream (a pair): browsers keep
                # them in sync, which is right while they carry one publisher (see the README).
                name = f"hirfa-s{index}" if index < paired else f"hirfa-{kind.value[0]}{index}"
                aiortc_hooks.set_stream_id(line.transceiver.sender, name)
                partner = self._slot_line(MediaKind.VIDEO if kind is MediaKind.AUDIO else MediaKind.AUDIO, index)
                if index < paired and partner is not None:
                    line.track.partner, partner.track.partner = partner.track, line.track
                self._idle.append(line)
                opened.add(kind)
                self._mark_negotiation_needed()

    def _slot_line(self, kind: MediaKind, index: int) -> _SubscribeSlot | None:
        return next(
            (line for line in [*self._idle, *self._subscriptions.values()] if line.kind is kind and line.index == index),
            None,
        )

    def _free_line(self, kind: MediaKind, publisher_id: str) -> _SubscribeSlot | None:
        """The empty slot of ``kind`` for ``publisher_id``: the one paired with his other
        track's slot, else an unpaired one, else one whose partner is empty, else any."""
        def fit(line: _SubscribeSlot) -> tuple[int, int]:
            partner = line.track.partner
            if partner is None:
                return 1, line.index
            held = partner.source
            if held is None:
                return 2, line.index
            return (0 if held.participant_id == publisher_id else 3), line.index

        free = [line for line in self._idle if line.kind is kind]
        return min(free, key=fit) if free else None

    def _new_subscribe_line(self, kind: MediaKind) -> _SubscribeSlot:
        track = ForwardTrack(
            kind,
            max_backlog=self._config.send_backlog_bytes,
            max_resends_per_second=self._config.max_resends_per_second,
        )
        # A slot's VP8 picture ids go on across a switch of publisher, as across layers.
        track.continuous = self._slotted
        transceiver = self._pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(_codec_preferences(kind, self._meeting.video_codec))
        aiortc_hooks.make_forwarding_sender(
            transceiver.sender,
            on_start=track.start_sending,
            on_stop=track.stop_sending,
            on_keyframe_request=track.on_remote_keyframe_request,
            on_nack=track.on_nack,
            on_remb=self._on_remb,
            # What never left the SFU is no loss of his link (:meth:`.ForwardTrack.downlink_lost`).
            on_report=lambda ssrc, highest, lost: self._on_report(ssrc, highest, track.downlink_lost(highest, lost)),
        )
        return _SubscribeSlot(kind, transceiver, track)

    def _video_rank(self, publisher_id: str, source: TrackSource, active: str | None, spoke: float) -> tuple[float, ...]:
        """Where his video of ``source`` stands for this subscriber (:func:`.allocation.video_rank`):
        one order for who gets a video slot and for who gets the bandwidth."""
        return video_rank(
            presenter=self._meeting.is_presenter(publisher_id),
            pinned=publisher_id == self._pinned,
            screen=source is TrackSource.SCREEN,
            speaker=publisher_id == active,
            hands=source is TrackSource.CAMERA2,
            spoke=spoke,
        )

    def _slot_ranking(self, kind: MediaKind, now: float) -> list[tuple[str, TrackSource]]:
        """His candidate sources of ``kind``, first those that deserve a slot most.

        Voices: the active speaker, then those speaking now, then by most recent
        speech, those in a slot before others among equals (nobody flaps), then
        by arrival. Videos as the allocator ranks them (:func:`.allocation.video_rank`: a
        masterclass's presenters', pinned, screen share, the active speaker, then the last to
        speak: last-N), those in a slot first among equals, then by arrival.
        """
        speaker = self._meeting.speaker_detector
        active, last_loud = speaker.current, speaker.last_loud
        ranked = []
        for key, forwarder in self._candidates.items():
            if forwarder.kind is not kind or (kind is MediaKind.VIDEO and not self._receive_video):
                continue
            publisher_id, source = key
            spoke = last_loud.get(publisher_id)
            held = 0 if key in self._subscriptions else 1
            if kind is MediaKind.AUDIO:
                rank: tuple[Any, ...] = (
                    1 if forwarder.muted else 0,
                    0 if publisher_id == active else 1,
                    0 if spoke is not None and now - spoke < _SPEAKING else 1,
                    -(spoke or 0.0),
                    held,
                )
            else:
                order = self._video_rank(publisher_id, source, active, spoke or 0.0)
                rank = (1 if forwarder.muted else 0, *order, held)
            ranked.append((rank, self._arrival.get(key, 0), key))
        return [key for _, _, key in sorted(ranked)]

    def _assign_slots(self, now: float) -> None:
        """Slots: switch the sources that deserve them most into his slots, keeping in place
        those that stay; a switched slot starts at the new source's next keyframe with its
        SSRC, sequence numbers and timestamps going on (:meth:`ForwardTrack.attach`)."""
        if not self._slotted or self._state is ParticipantState.CLOSED:
            return
        changed = False
        allocating = self._config.allocation_interval > 0
        for kind, count in ((MediaKind.AUDIO, self._config.audio_slots), (MediaKind.VIDEO, self._video_slots)):
            wanted = self._slot_ranking(kind, now)[:count]
            keep = set(wanted)
            for key in [k for k, held in self._subscriptions.items() if held.kind is kind and k not in keep]:
                freed = self._subscriptions.pop(key)
                freed.track.attach(None)
                self._idle.append(freed)
                changed = True
            for key in wanted:
                if key in self._subscriptions:
                    continue
                line = self._free_line(kind, key[0])
                if line is None:
                    break  # his slots are not open yet
                self._idle.remove(line)
                # A new video waits for the allocator, which runs at once: a narrow link is
                # not flooded before its estimate is spent.
                line.track.set_paused(allocating and kind is MediaKind.VIDEO)
                line.track.attach(self._candidates[key])
                self._subscriptions[key] = line
                changed = True
                if line.transceiver.currentDirection == "inactive":
                    # A client that answered an empty slot inactive (an older page) cannot
                    # receive on it until it answers again.
                    self._mark_negotiation_needed()
        changed = self._pair_up() or changed
        if not changed:
            return
        if allocating:
            self._meeting._allocate_soon(self)
        slots = self._subscribe_slots()
        self._reception = replace(self._reception, slots=slots)
        if self._on_reception is not None:
            self._on_reception(self, self._reception)

    def _pair_up(self) -> bool:
        """Bring each publisher's voice and picture into one slot pair (one msid stream, which
        browsers synchronise); answers whether anything moved. His voice (costs nothing), else
        his picture (one keyframe), goes to the slot paired with his other track's slot: into
        it when it is empty, else swapping places with the voice or picture there — which is
        never half of a pair itself, since its partner holds his track — unless that is his own
        screen (his pair already: it moves when the share stops). Swapping pictures costs
        a keyframe for each. In the order of the audio slots: the loudest voices first."""
        moved = False
        for _ in range(len(self._subscriptions) + 1):
            if not self._pair_one():
                break
            moved = True
        return moved

    def _pair_one(self) -> bool:
        lines = {kind: {key: line for key, line in self._subscriptions.items() if line.kind is kind} for kind in MediaKind}
        for key, audio in sorted(lines[MediaKind.AUDIO].items(), key=lambda item: item[1].index):
            video_key = (key[0], TrackSource.CAMERA)
            video = lines[MediaKind.VIDEO].get(video_key)
            if video is None or audio.track.partner is video.track:
                continue
            for line, other, moved_key in ((audio, video, key), (video, audio, video_key)):
                target = self._slot_line(line.kind, other.index)
                if target is None or target.track.partner is not other.track:
                    continue
                holder = next((k for k, held in self._subscriptions.items() if held is target), None)
                if (holder is None and target not in self._idle) or (holder is not None and holder[0] == key[0]):
                    continue  # (his own screen beside his voice: one person's pair already)
                source, paused = line.track.source, line.track.paused
                line.track.attach(None)
                if holder is None:
                    self._idle.remove(target)
                    self._idle.append(line)
                else:
                    displaced, displaced_paused = target.track.source, target.track.paused
                    target.track.attach(None)
                    line.track.set_paused(displaced_paused)
                    line.track.attach(displaced)
                    self._subscriptions[holder] = line
                target.track.set_paused(paused)
                target.track.attach(source)
                self._subscriptions[moved_key] = target
                return True
        return False

    def _subscribe_slots(self) -> tuple[TrackSlot, ...]:
        """Slots: each of his subscribe m-lines and whom it carries now."""
        if not self._slotted:
            return ()
        # Before his first offer the m-lines have no mid yet: that offer tells whom they carry.
        return tuple(slot for slot in self._slots() if slot.direction is SlotDirection.SUBSCRIBE and slot.mid)

    # ------------------------------------------------------------ allocation

    @property
    def reception(self) -> Reception:
        """What his connection carries now (the allocator's last decision)."""
        return self._reception

    @property
    def downlink(self) -> DownlinkEstimate:
        return self._downlink

    def pin(self, publisher_id: str | None) -> None:
        """Give ``publisher_id``'s video the first claim on this participant's bandwidth (``None``: unpin)."""
        self._check_open("pin")
        self._pinned = publisher_id
        if self._slotted:
            self._assign_slots(time.monotonic())
        self._meeting._allocate_soon(self)

    def retry_video(self) -> None:
        """He tapped "try video again": probe his link for video at once, even if audio-only."""
        self._check_open("retry video")
        self._downlink.retry()
        self._meeting._allocate_soon(self)

    def _pad_up_to(self, target: float | None) -> None:
        """While a probe runs, pad his connection (RTX padding) up to ``target`` bit/s."""
        self._probe_target = target
        if target is not None and self._pacer is None:
            self._pacer = asyncio.get_running_loop().call_later(_PAD_INTERVAL, self._pad)

    def _pad(self) -> None:
        self._pacer = None
        # The estimate says at each tick whether to pad: a probe's padding stops the moment a
        # round trip comes back grown or its time is up, not at the next allocation round (half
        # a second later, his voices queued behind it).
        target = self._downlink.padding(time.monotonic()) if self._probe_target is not None else None
        if target is None or self._state is ParticipantState.CLOSED:
            self._pad_owed = 0.0
            return
        count, self._pad_owed = padding_packets(target - self._downlink.sending, self._pad_owed)
        if count:
            for slot in self._subscriptions.values():
                if slot.kind is MediaKind.VIDEO and slot.track.pad(count, _PAD_SIZE):
                    break
        self._pacer = asyncio.get_running_loop().call_later(_PAD_INTERVAL, self._pad)

    def _start_pinger(self) -> None:
        if self._pinger is None and self._config.allocation_interval > 0:
            self._downlink.delay_since = time.monotonic()
            self._pinger = asyncio.ensure_future(self._ping_forever())

    async def _ping_forever(self) -> None:
        """His link's round trip (STUN), each allocation round and every 0.1 s while a probe
        runs: the allocator's delay signal (see :mod:`.allocation`)."""
        interval = self._config.allocation_interval
        while self._state is not ParticipantState.CLOSED:
            sent = time.monotonic()
            if self._subscriptions:
                rtt = await aiortc_hooks.stun_round_trip(self._pc)
                if rtt is not None:
                    self._downlink.on_delay(rtt, time.monotonic(), sent=sent)
            if self._downlink.probing:
                pause = _PROBE_PING_INTERVAL
            elif not self._receive_video and self._wanted <= self._downlink.value(time.monotonic()):
                pause = max(interval, _QUIET_PING_INTERVAL)
            else:
                pause = interval
            await asyncio.sleep(max(0.0, sent + pause - time.monotonic()))

    def _on_remb(self, bitrate: int) -> None:
        self._downlink.on_remb(bitrate, time.monotonic())

    def _on_report(self, ssrc: int, highest: int, lost: int) -> None:
        downlink = self._downlink
        before = downlink.loss_based
        downlink.on_report(ssrc, highest, lost, time.monotonic())
        if downlink.loss_based < before:
            # Loss cut his estimate: what no longer fits is paused now, not at the next round
            # (up to half a second later, his voices in the overflowing queue meanwhile).
            self._meeting._allocate_soon(self)

    def _allocate(self, now: float) -> None:
        """Spend his estimate on what he subscribes to (see :mod:`.allocation`)."""
        if self._state is ParticipantState.CLOSED:
            return
        self._assign_slots(now)
        speaker = self._meeting.speaker_detector
        active, last_loud = speaker.current, speaker.last_loud
        audio = 0.0
        sending = 0.0
        audios: list[AudioDemand] = []
        videos: list[VideoDemand] = []
        tracks: dict[Hashable, tuple[ForwardTrack, TrackForwarder]] = {}
        loss = self._downlink.stream_loss(now)
        for (publisher_id, source), slot in self._subscriptions.items():
            forwarder = slot.track.source
            if forwarder is None or forwarder.muted:
                continue
            if slot.kind is MediaKind.AUDIO:
                track = slot.track
                if track.red_payload_type is not None:
                    track.red_distance = red_distance(loss, track.red_distance)
                rate, plain = forwarder.audio_rates(now=now, red_distance=track.red_distance)
                if track.red_payload_type is None and plain is not None:
                    rate, plain = plain, None  # he gets the primary Opus only
                if not track.paused:
                    audio += rate if plain is None or track.send_red else plain
                spoke = last_loud.get(publisher_id)
                voice_rank = (
                    0 if publisher_id == active else 1,
                    0 if spoke is not None and now - spoke < _SPEAKING else 1,
                    1 if track.paused else 0,  # who is heard stays heard among equals
                    -(spoke or 0.0),
                )
                audios.append(AudioDemand(key=(publisher_id, source), rank=voice_rank, rate=rate, plain=plain))
                tracks[(publisher_id, source)] = (track, forwarder)
                continue
            rates = forwarder.layer_bitrates(now=now)
            track = slot.track
            current = track.forwarded_layer
            if current is not None and current < len(rates):
                sending += rates[current] or 0.0
            rank = self._video_rank(publisher_id, source, active, last_loud.get(publisher_id, 0.0))
            videos.append(
                VideoDemand(key=(publisher_id, source), rank=rank, layers=rates, steady=forwarder.steady_bitrates(now=now))
            )
            tracks[(publisher_id, source)] = (track, forwarder)
        downlink = self._downlink
        # What is resent to him is sent too (a few percent of his video on a lossy link; on top
        # of a nearly full one on 3G): it counts against his estimate.
        downlink.on_resent(sum(slot.track.resent_bits for slot in self._subscriptions.values()), now)
        downlink.sending = audio + sending + downlink.resending
        remb = downlink.fresh_remb(now)
        if remb is not None and sending > 0 and remb < _CONGESTED * downlink.sending:
            downlink.congested(now)
        wanted = probe_wanted(audios, videos)
        if self._audio_only:
            wanted = max(wanted, resume_cost(audios, videos))
        self._wanted = wanted
        probe = downlink.round(now, wanted, audio_only=self._audio_only)
        self._pad_up_to(probe)
        decision = allocate(
            downlink.value(now), audios, videos, audio_only=self._audio_only, loss_budget=downlink.loss_value(),
            red_allowed=downlink.red_allowed(now),
        )
        self._audio_only = decision.audio_only
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "allocation %s/%s: estimate %.0f (remb %s, loss-based %.0f, loss %.3f, queueing %s, rtt %s), "
                "sending %.0f, probe %s, audio-only %s, red %s (stream loss %.3f, distances %s), voices %d/%d, "
                "videos %s, resent %d, padded %d, publishing %s",
                self._meeting.id, self.id, downlink.value(now), downlink.remb, downlink.loss_based, downlink.loss,
                downlink.queueing, downlink.round_trips(now), downlink.sending, probe, decision.audio_only,
                decision.red, loss,
                [tracks[key][0].red_distance for key in decision.audio],
                sum(decision.audio.values()), len(decision.audio), list(decision.layers.values()),
                sum(slot.track.retransmissions for slot in self._subscriptions.values()),
                sum(slot.track.padding_sent for slot in self._subscriptions.values()),
                [(f.source.value, round(f.upstream(now=now)[0]), f.remb_sent, f.muted) for f in self.forwarders()],
            )
        for chosen, heard in decision.audio.items():
            track = tracks[chosen][0]
            track.send_red = decision.red
            track.set_paused(not heard)
        received = []
        for chosen, layer in decision.layers.items():
            track, forwarder = tracks[chosen]
            publisher_id, source = chosen  # type: ignore[misc]
            if layer is None:
                track.set_paused(True)
            else:
                track.set_target_layer(layer)
                track.set_paused(False)
            quality = VideoQuality(layer_name(layer, len(forwarder.layer_bitrates(now=now))))
            received.append(ReceivedVideo(publisher_id=publisher_id, source=source, quality=quality))
        reception = Reception(
            audio_only=decision.audio_only,
            videos=tuple(sorted(received, key=lambda v: (v.publisher_id, v.source.value))),
            estimate=int(downlink.value(now)),
            pinned=self._pinned,
            slots=self._reception.slots,
        )
        previous, self._reception = self._reception, reception
        if self._on_reception is not None and (
            previous.audio_only != reception.audio_only
            or previous.videos != reception.videos
            or previous.pinned != reception.pinned
        ):
            self._on_reception(self, reception)

    # ------------------------------------------------------------ negotiation

    def _slots(self) -> tuple[TrackSlot, ...]:
        slots = []
        for pub in self._publications.values():
            slots.append(
                TrackSlot(
                    mid=pub.transceiver.mid or "",
                    kind=pub.source.kind,
                    direction=SlotDirection.PUBLISH,
                    publisher_id=self.id if pub.active else None,
                    source=pub.source if pub.active else None,
                )
            )
        for (publisher_id, source), sub in self._subscriptions.items():
            slots.append(
                TrackSlot(
                    mid=sub.transceiver.mid or "",
                    kind=sub.kind,
                    direction=SlotDirection.SUBSCRIBE,
                    publisher_id=publisher_id,
                    source=source,
                )
            )
        for sub in self._idle:
            slots.append(
                TrackSlot(
                    mid=sub.transceiver.mid or "",
                    kind=sub.kind,
                    direction=SlotDirection.SUBSCRIBE,
                    publisher_id=None,
                    source=None,
                )
            )
        return tuple(sorted(slots, key=lambda s: int(s.mid) if s.mid.isdigit() else 0))

    async def create_offer(self) -> Offer:
        """Make the next offer for the participant.

        Raises :class:`InvalidSfuState` while a previous offer is unanswered.
        The offer carries every candidate (no trickle from the server).
        """
        async with self._lock:
            self._check_open("create an offer")
            if self._negotiation is NegotiationState.OFFER_SENT:
                raise InvalidSfuState(
                    f"cannot create an offer for {self.id!r}: "
                    f"offer {self._revision} is still unanswered"
                )
            self._negotiation_needed = False
            offer = await self._pc.createOffer()
            aiortc_hooks.configure_host_candidates(self._pc, self._meeting.host_policy)
            offer = RTCSessionDescription(sdp=audio_offer(offer.sdp), type="offer")
            await self._pc.setLocalDescription(offer)
            self._revision += 1
            self._negotiation = NegotiationState.OFFER_SENT
            sdp = simulcast_offer(self._pc.localDescription.sdp, self._simulcast_layers())
            return Offer(sdp=sdp, revision=self._revision, slots=self._slots())

    def _simulcast_layers(self) -> dict[str, tuple[str, ...]]:
        """mid -> RIDs to ask for: the cameras' publish m-lines, when the meeting uses simulcast."""
        rids = self._config.simulcast_rids
        if len(rids) < 2:
            return {}
        cameras = (self._publications.get(source) for source in (TrackSource.CAMERA, TrackSource.CAMERA2))
        return {camera.transceiver.mid: rids for camera in cameras if camera and camera.active and camera.transceiver.mid}

    async def apply_answer(self, sdp: str, *, revision: int) -> None:
        """Apply the participant's answer to offer ``revision``.

        Raises :class:`InvalidSfuState` for an answer to another offer and
        :class:`BadSessionDescription` for an answer aiortc refuses (the offer
        is then withdrawn and negotiation is needed again).
        """
        async with self._lock:
            self._check_open("apply an answer")
            if self._negotiation is not NegotiationState.OFFER_SENT or revision != self._revision:
                raise InvalidSfuState(
                    f"answer to offer {revision} for {self.id!r}, but the pending offer is "
                    f"{self._revision if self._negotiation is NegotiationState.OFFER_SENT else 'none'}"
                )
            try:
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:  # aiortc raises ValueError, OperationError, ...
                self._negotiation = NegotiationState.STABLE
                self._negotiation_needed = True
                raise BadSessionDescription(
                    f"answer {revision} of {self.id!r} refused: {exc}"
                ) from exc
            self._negotiation = NegotiationState.STABLE
            credentials = ice_credentials(sdp)
            if credentials is not None:
                aiortc_hooks.ice_restart_answered(self._pc, *credentials)
            self._apply_red(sdp)
            self._apply_simulcast(sdp)
        if self._negotiation_needed:
            self._negotiation_needed = False
            self._mark_negotiation_needed()

    def _apply_red(self, answer: str) -> None:
        """Note which audio m-lines take RED; a publisher's receiver must accept its packets."""
        red = red_payload_types(answer)
        for slot in self._publications.values():
            mid = slot.transceiver.mid
            if (
                slot.source.kind is MediaKind.AUDIO
                and mid in red
                and aiortc_hooks.accept_red(slot.transceiver, red[mid])
            ):
                slot.forwarder.red_payload_type = red[mid]
        for sub in [*self._subscriptions.values(), *self._idle]:
            if sub.kind is MediaKind.AUDIO:
                sub.track.red_payload_type = red.get(sub.transceiver.mid or "")

    def _apply_simulcast(self, answer: str) -> None:
        """Note the RID layers the participant's answer will send on his camera m-line."""
        accepted = simulcast_answer(answer)
        if accepted.rids:
            aiortc_hooks.set_stream_id_extensions(
                self._pc, rid=accepted.rid_extension, repaired_rid=accepted.repaired_rid_extension
            )
        for slot in self._publications.values():
            if slot.source.kind is MediaKind.VIDEO:
                slot.forwarder.set_rids(accepted.rids.get(slot.transceiver.mid or "", ()))

    def restart_ice(self) -> None:
        """Restart ICE on this same peer: the participant's network changed.

        The next offer (negotiation is marked needed) carries new ICE
        credentials; his answer brings his, and his checks from his new
        address move the media there (:func:`aiortc_hooks.restart_ice`). The
        peer, its DTLS session, publications and subscriptions stay: the other
        participants' m-lines carrying him are untouched, and nobody else is
        offered anything. Raises :class:`InvalidSfuState` once closed.
        """
        self._check_open("restart ICE")
        aiortc_hooks.restart_ice(self._pc)
        # An offer still unanswered went to a page that may never have had it (its socket
        # died with its network): the restart's offer supersedes it (a late answer to it is
        # refused by its revision).
        self._negotiation = NegotiationState.STABLE
        self._negotiation_needed = False
        self._mark_negotiation_needed()

    async def add_ice_candidate(self, candidate: str | None, *, sdp_mid: str | None) -> None:
        """Add a trickled remote candidate (``a=candidate`` value); ``None`` ends them."""
        self._check_open("add an ICE candidate")
        if candidate is None:
            await self._pc.addIceCandidate(None)
            return
        try:
            parsed: RTCIceCandidate = candidate_from_sdp(candidate.removeprefix("candidate:"))
        except (ValueError, IndexError, AssertionError) as exc:  # aiortc asserts on too few fields
            raise BadSessionDescription(f"bad ICE candidate {candidate!r} for {self.id!r}") from exc
        parsed.sdpMid = sdp_mid
        try:
            await self._pc.addIceCandidate(parsed)
        except Exception as exc:
            raise BadSessionDescription(
                f"ICE candidate {candidate!r} refused for {self.id!r}: {exc}"
            ) from exc

    # ------------------------------------------------------------ teardown

    async def _close(self) -> None:
        # The peer may have closed from the other side first (state CLOSED already):
        # what it held here (watch task, NACK timers, tracks) is released all the same.
        if self._released:
            return
        self._released = True
        announce = self._state is not ParticipantState.CLOSED
        self._state = ParticipantState.CLOSED
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)
            self._pinger = None
        await self._liveness.stop()
        for slot in self._publications.values():
            await slot.forwarder.close()
        for subscription in [*self._subscriptions.values(), *self._idle]:
            subscription.track.stop()
        self._subscriptions.clear()
        self._idle.clear()
        await self._pc.close()
        if announce and self._on_state_change is not None:
            self._on_state_change(self, ParticipantState.CLOSED)


class Meeting:
    """A set of participants whose published tracks are forwarded to each other.

    Created by :meth:`signaling.sfu.Sfu.meeting`.
    """

    def __init__(
        self,
        *,
        meeting_id: str,
        config: SfuConfig,
        video_codec: VideoCodec,
        on_active_speaker: Callable[[str | None], None] | None = None,
    ) -> None:
        self.id = meeting_id
        self.config = config
        self.video_codec = video_codec
        self.host_policy = aiortc_hooks.HostCandidatePolicy(
            bind_address=config.bind_address,
            announced_addresses=config.announced_addresses,
            port_min=config.port_min,
            port_max=config.port_max,
        )
        self._participants: dict[str, Participant] = {}
        self._muted: set[tuple[str, TrackSource]] = set()
        self._presenters: set[str] = set()
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None
        self._soon: set[Participant] = set()
        self.on_active_speaker = on_active_speaker
        self._speaker = ActiveSpeakerDetector(on_change=self._speaker_changed)
        self._recorder: MeetingRecorder | None = None
        #: Pipes (`.pipe`): tracks published on other workers, and the workers this one's go to.
        self._remote: list[PipedTrackForwarder] = []
        self._pipe_endpoint: PipeEndpoint | None = None
        self._pipes_out: set[Address] = set()
        self._pipes_in: set[Address] = set()

    def __repr__(self) -> str:
        return f"Meeting({self.id!r}, {len(self._participants)} participants)"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active_speaker(self) -> str | None:
        return self._speaker.current

    @property
    def speaker_detector(self) -> ActiveSpeakerDetector:
        return self._speaker

    def participants(self) -> tuple[Participant, ...]:
        return tuple(self._participants.values())

    def participant(self, participant_id: str) -> Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise UnknownParticipant(
                f"no participant {participant_id!r} in meeting {self.id!r}"
            ) from None

    def forwarders(self) -> tuple[TrackForwarder, ...]:
        """Every track published in the meeting: here, then piped from other workers."""
        return (*self.local_forwarders(), *self._remote)

    def local_forwarders(self) -> tuple[TrackForwarder, ...]:
        """The tracks of the participants on this worker."""
        return tuple(f for p in self._participants.values() for f in p.forwarders())

    # ------------------------------------------------------------ pipes (`.pipe`)

    def pipe_to(self, endpoint: PipeEndpoint, worker: Address, *, key: bytes) -> None:
        """Send every track published here, now and later, to the worker at ``worker``
        (where some participants of this meeting are), tagged with ``key``, the pair's secret
        (`.pipe`: the same for both ways, :meth:`pipe_from`)."""
        self._pipe_endpoint = endpoint
        endpoint.set_key(self.id, worker, key)
        if worker in self._pipes_out:
            return
        self._pipes_out.add(worker)
        for forwarder in self.local_forwarders():
            endpoint.pipe_track(self.id, forwarder, worker)

    def unpipe_to(self, worker: Address) -> None:
        """Stop sending this worker's tracks to ``worker`` (it has nobody left to send them to)."""
        if worker not in self._pipes_out or self._pipe_endpoint is None:
            return
        self._pipes_out.discard(worker)
        for forwarder in self.local_forwarders():
            self._pipe_endpoint.unpipe_track(forwarder, worker)

    def pipe_from(self, endpoint: PipeEndpoint, worker: Address, *, key: bytes) -> None:
        """Take the tracks the worker at ``worker`` pipes here for this meeting, tagged with
        ``key`` (nothing else from that address): each is published to the participants here
        as their own are."""
        self._pipe_endpoint = endpoint
        endpoint.set_key(self.id, worker, key)
        self._pipes_in.add(worker)
        endpoint.accept(self.id, worker, PipeSink(make=self._remote_published, remove=self._remote_unpublished))

    def unpipe_from(self, worker: Address) -> None:
        """Drop the tracks piped from ``worker`` (its subscribers' slots empty)."""
        if worker in self._pipes_in and self._pipe_endpoint is not None:
            self._pipes_in.discard(worker)
            self._pipe_endpoint.refuse(self.id, worker)

    @property
    def pipes(self) -> tuple[frozenset[Address], frozenset[Address]]:
        """(the workers this one pipes to, those it takes pipes from)."""
        return frozenset(self._pipes_out), frozenset(self._pipes_in)

    def remote_forwarders(self) -> tuple[PipedTrackForwarder, ...]:
        return tuple(self._remote)

    def _remote_published(
        self, info: PipedTrackInfo, ask_keyframe: Callable[[int], None], ask_packet: Callable[[int, int], None]
    ) -> PipedTrackForwarder:
        forwarder = PipedTrackForwarder(
            info=info,
            ask_keyframe=ask_keyframe,
            ask_packet=ask_packet,
            codec=self.video_codec,
            keyframe_interval=self.config.keyframe_interval,
            keyframe_timeout=self.config.keyframe_timeout,
            on_audio_level=self._observe_audio_level,
        )
        if info.publisher_id not in self._participants:  # else he moved here: his old worker's is stale
            self._remote.append(forwarder)
            self._track_published(forwarder)
        return forwarder

    def _remote_unpublished(self, forwarder: PipedTrackForwarder) -> None:
        if forwarder in self._remote:
            self._remote.remove(forwarder)
            self._speaker.forget(forwarder.participant_id)
            self._track_unpublished(forwarder)

    def snapshot(self) -> MeetingSnapshot:
        return MeetingSnapshot(
            meeting_id=self.id,
            video_codec=self.video_codec,
            participants=tuple(p.snapshot() for p in self._participants.values()),
            active_speaker=self.active_speaker,
        )

    async def join(
        self,
        participant_id: str,
        *,
        on_negotiation_needed: NegotiationCallback,
        on_state_change: StateCallback | None = None,
        receive_video: bool = True,
        replace: bool = False,
        on_reception: ReceptionCallback | None = None,
        video_slots: int | None = None,
    ) -> Participant:
        """Add a participant subscribed to every track already published.

        With ``replace``, a participant already in the meeting under that id
        gets a new server-side peer (new ICE, DTLS and m-lines for him: what a
        network change needs, since aiortc cannot restart ICE) and nobody else
        renegotiates: the new peer publishes what the old one did, and the
        m-lines the others receive him on are fed by the new peer from its
        first keyframe on (same SSRC, sequence numbers and timestamps going
        on, same msid). With slots, ``video_slots`` (fewer than the configured
        ones: a phone's screen) sets his video slots. Raises :class:`InvalidSfuState` if the meeting is
        closed or, without ``replace``, if the id is already in it.
        """
        if self._closed:
            raise InvalidSfuState(f"cannot join {participant_id!r}: meeting {self.id!r} is closed")
        old = self._participants.get(participant_id)
        if old is not None and not replace:
            raise InvalidSfuState(
                f"participant {participant_id!r} is already in meeting {self.id!r}"
            )
        for remote in [f for f in self._remote if f.participant_id == participant_id]:
            self._remote_unpublished(remote)  # he was on another worker (it died, or he moved)
        participant = Participant(
            participant_id=participant_id,
            meeting=self,
            on_negotiation_needed=on_negotiation_needed,
            on_state_change=on_state_change,
            receive_video=receive_video,
            on_reception=on_reception,
            video_slots=video_slots,
        )
        if old is not None:
            participant._pinned = old._pinned
        self._participants[participant_id] = participant
        participant._liveness.start()
        participant._start_pinger()
        self._start_ticker()
        if old is not None:
            for source, slot in old._publications.items():
                if not slot.active:
                    continue
                participant.publish(source)  # the others already subscribe to (id, source)
                forwarder = participant._publications[source].forwarder
                for track in slot.forwarder.subscribers:
                    track.attach(forwarder)
            await old._close()
        participant._open_slots()
        for forwarder in self.forwarders():
            if forwarder.participant_id != participant_id:
                participant._subscribe(forwarder)
        return participant

    def publishes(self, participant_id: str) -> frozenset[TrackSource]:
        """What the participant publishes now."""
        return frozenset(f.source for f in self.participant(participant_id).forwarders())

    async def leave(self, participant_id: str) -> None:
        """Remove a participant and close his peer connection; others renegotiate.

        Used for leave, removal by a host and failure alike.
        """
        participant = self.participant(participant_id)
        del self._participants[participant_id]
        for forwarder in participant.forwarders():
            self._track_unpublished(forwarder)
        self._speaker.forget(participant_id)
        self._muted = {key for key in self._muted if key[0] != participant_id}
        await participant._close()

    remove = leave

    def is_muted(self, participant_id: str, source: TrackSource) -> bool:
        return (participant_id, source) in self._muted

    def set_muted(self, participant_id: str, source: TrackSource, muted: bool) -> None:
        """Moderator mute: nothing of that source is forwarded until unmuted.

        Holds across republishing: the mute belongs to the participant in this
        meeting, not to one track.
        """
        participant = self.participant(participant_id)
        if muted:
            self._muted.add((participant_id, source))
            if source is TrackSource.MICROPHONE:
                self._speaker.forget(participant_id)
        else:
            self._muted.discard((participant_id, source))
        for forwarder in participant.forwarders():
            if forwarder.source is source:
                forwarder.set_muted(muted)

    # ------------------------------------------------------------ recording

    @property
    def recorder(self) -> MeetingRecorder | None:
        """The recording running now, if any."""
        return self._recorder

    def start_recording(self, directory: Path, *, excluded: frozenset[str] = frozenset()) -> MeetingRecorder:
        """Write every track published now or later into files in ``directory``, without
        decoding (``signaling.sfu.recorder``), except those of the ``excluded`` participants.

        Raises :class:`InvalidSfuState` if a recording runs or the meeting is closed.
        """
        if self._closed or self._recorder is not None:
            raise InvalidSfuState(f"meeting {self.id!r} is closed or already recording")
        recorder = MeetingRecorder(directory=directory, excluded=excluded)
        self._recorder = recorder
        recorder.speaker_changed(self.active_speaker)
        for forwarder in self.forwarders():
            recorder.track_published(forwarder)
        return recorder

    async def stop_recording(self) -> dict[str, Any] | None:
        """Stop the recording (files closed, manifest written); answers its manifest, or
        ``None`` when none runs."""
        recorder, self._recorder = self._recorder, None
        return None if recorder is None else await recorder.stop()

    def set_recorded(self, participant_id: str, recorded: bool) -> None:
        """Whether the running recording (and any later one) writes ``participant_id``."""
        if self._recorder is not None:
            participant = self._participants.get(participant_id)
            forwarders = participant.forwarders() if participant is not None else ()
            self._recorder.exclude(participant_id, not recorded, forwarders)

    def set_presenter(self, participant_id: str, presenter: bool) -> None:
        """Whether ``participant_id`` presents a masterclass: his videos come first in every
        subscriber's allocation, right after the audio (:func:`.allocation.video_rank`)."""
        if (participant_id in self._presenters) == presenter:
            return
        (self._presenters.add if presenter else self._presenters.discard)(participant_id)
        if self.config.allocation_interval > 0:
            for participant in self._participants.values():
                if participant.id != participant_id:
                    self._allocate_soon(participant)

    def is_presenter(self, participant_id: str) -> bool:
        return participant_id in self._presenters

    def _track_published(self, forwarder: TrackForwarder) -> None:
        if self._recorder is not None:
            self._recorder.track_published(forwarder)
        if self._pipe_endpoint is not None and not isinstance(forwarder, PipedTrackForwarder):
            for worker in self._pipes_out:
                self._pipe_endpoint.pipe_track(self.id, forwarder, worker)
        for participant in self._participants.values():
            if participant.id != forwarder.participant_id:
                participant._subscribe(forwarder)

    def _track_unpublished(self, forwarder: TrackForwarder) -> None:
        if self._recorder is not None:
            self._recorder.track_unpublished(forwarder)
        if self._pipe_endpoint is not None and not isinstance(forwarder, PipedTrackForwarder):
            for worker in self._pipes_out:
                self._pipe_endpoint.unpipe_track(forwarder, worker)
        for participant in self._participants.values():
            if participant.id != forwarder.participant_id:
                participant._unsubscribe(forwarder.participant_id, forwarder.source)

    # ------------------------------------------------------------ allocation and feedback

    def _start_ticker(self) -> None:
        if self._ticker is None and self.config.allocation_interval > 0 and not self._closed:
            self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        interval = self.config.allocation_interval
        rounds = 0
        while not self._closed:
            await asyncio.sleep(interval)
            rounds += 1
            try:
                self.tick(time.monotonic(), feedback=rounds * interval >= 1.0)
            except Exception:  # a bug must not stop adaptation for the whole meeting
                logger.exception("SFU: allocation round of meeting %s failed", self.id)
            if rounds * interval >= 1.0:
                rounds = 0

    def tick(self, now: float, *, feedback: bool = True) -> None:
        """One allocation round for every subscriber; with ``feedback``, a REMB to every video publisher."""
        self._soon.clear()
        for participant in tuple(self._participants.values()):
            participant._allocate(now)
        if self._recorder is not None:
            self._recorder.tick()
        if feedback:
            for forwarder in self.local_forwarders():
                if forwarder.kind is MediaKind.VIDEO:
                    self._send_publisher_remb(forwarder, now)

    def _send_publisher_remb(self, forwarder: TrackForwarder, now: float) -> None:
        """Tell a video publisher how much to send (:func:`.allocation.publisher_remb`): his
        browser's caps while nothing is lost upstream, what arrives (less half the loss) when his
        uplink loses more than 10 %, little more than what arrives for a camera that is off."""
        arriving, loss, ssrcs = forwarder.upstream(now=now)
        if not ssrcs:
            return
        value = publisher_remb(
            forwarder.remb_sent, arriving=arriving, loss=loss, cap=self.config.publisher_max_bitrate,
            camera=forwarder.source in (TrackSource.CAMERA, TrackSource.CAMERA2),
        )
        forwarder.remb_sent = value
        if forwarder.receiver is not None:
            aiortc_hooks.send_remb(forwarder.receiver, value, ssrcs)

    def _allocate_soon(self, participant: Participant) -> None:
        """Run his allocation on the next turn of the loop (a pin or a retry is felt at once)."""
        if participant in self._soon:
            return
        self._soon.add(participant)

        def run() -> None:
            if participant in self._soon:
                self._soon.discard(participant)
                participant._allocate(time.monotonic())

        asyncio.get_running_loop().call_soon(run)

    def _observe_audio_level(self, participant_id: str, level: int | None, size: int) -> None:
        self._speaker.observe(participant_id, level, size)

    def _speaker_changed(self, participant_id: str | None) -> None:
        if self._recorder is not None:
            self._recorder.speaker_changed(participant_id)
        if self.config.audio_slots > 0:
            now = time.monotonic()
            for participant in tuple(self._participants.values()):
                participant._assign_slots(now)
        if self.on_active_speaker is not None:
            self.on_active_speaker(participant_id)

    async def close(self) -> None:
        """Close every participant's peer connection (and the recording); the meeting ends."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        await self.stop_recording()
        for worker in tuple(self._pipes_out):
            self.unpipe_to(worker)
        for worker in tuple(self._pipes_in):
            self.unpipe_from(worker)
        for participant_id in list(self._participants):
            await self.leave(participant_id)


def _report_to(forwarder: TrackForwarder, ssrc: int, ntp: int, rtp: int) -> None:
    if forwarder.layered:
        forwarder.on_sender_report(ntp, rtp, ssrc)
    else:
        forwarder.on_sender_report(ntp, rtp)
