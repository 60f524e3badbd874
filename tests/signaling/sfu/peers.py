"""In-process aiortc client peers for SFU tests.

A :class:`ClientPeer` is what a browser would be: it answers the server's
offers, sends synthetic tracks on the slots the server opened for them and
records, through the same frame tap as the server, every encoded frame it
receives on each subscription slot (so nothing is decoded client-side either).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from av import AudioFrame, VideoFrame

from signaling.sfu import Offer, Participant, Reception, SlotDirection, TrackSlot, TrackSource
from signaling.sfu.aiortc_hooks import (
    AssembledFrame,
    HostCandidatePolicy,
    configure_host_candidates,
    ice_restart_answered,
    restart_ice,
    tap_receiver,
)
from signaling.sfu.sdp import ice_credentials
from tests.parallel import worker_port

LOOPBACK = HostCandidatePolicy(
    bind_address="127.0.0.1", announced_addresses=("127.0.0.1",), port_min=worker_port(41000), port_max=worker_port(41999)
)


class PatternVideoTrack(VideoStreamTrack):
    """Small 30 fps frames whose colour changes every frame (cheap to encode)."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self._size = (width, height)
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self._size[0], height=self._size[1])
        self._count += 1
        for index, plane in enumerate(frame.planes):
            plane.update(bytes([(self._count * (index + 3)) % 256]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """20 ms frames of a 440 Hz tone (``amplitude`` 0 gives silence)."""

    kind = "audio"

    def __init__(self, amplitude: int = 12000) -> None:
        super().__init__()
        self._amplitude = amplitude
        self._timestamp = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        rate = 48000
        samples = int(AUDIO_PTIME * rate)
        if self._start is None:
            self._start = time.time()
        else:
            self._timestamp += samples
            await asyncio.sleep(self._start + self._timestamp / rate - time.time())
        frame = AudioFrame(format="s16", layout="mono", samples=samples)
        data = b"".join(
            struct.pack("<h", int(self._amplitude * math.sin(2 * math.pi * 440 * (self._timestamp + i) / rate)))
            for i in range(samples)
        )
        frame.planes[0].update(data)
        frame.pts = self._timestamp
        frame.sample_rate = rate
        frame.time_base = fractions.Fraction(1, rate)
        return frame


def client_peer_connection() -> RTCPeerConnection:
    """A client peer connection that bundles everything on one transport, as browsers do.

    aiortc's default policy (``balanced``) must not be used against the SFU:
    when one offer holds two m-lines of the same kind (e.g. a subscription to
    someone's camera and the slot for one's own camera), aiortc 1.16 puts the
    second one on the transport of the first *before* BUNDLE is applied, and
    BUNDLE then only moves transceivers not yet marked bundled. The second
    m-line keeps a transport that was just stopped: its sender never starts.
    """
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


@dataclass
class ClientPeer:
    """A participant's browser, in process."""

    name: str
    tracks: dict[TrackSource, MediaStreamTrack] = field(default_factory=dict)
    pc: RTCPeerConnection = field(default_factory=client_peer_connection)
    #: mid -> frames received on it, and mid -> what the last offer said it carries
    received: dict[str, list[AssembledFrame]] = field(default_factory=dict)
    slots: dict[str, TrackSlot] = field(default_factory=dict)
    #: (publisher, source) -> frames, whichever mid carried them
    by_source: dict[tuple[str, TrackSource], list[bytes]] = field(default_factory=dict)
    assemblers: dict[str, Any] = field(default_factory=dict)
    #: How long a hole in a received video stream is waited on (a browser waits longer).
    loss_timeout: float = 0.1

    async def answer(self, offer: Offer) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        # New ICE credentials in the offer: an ICE restart, which a browser answers with new
        # credentials of its own (aiortc ignores them: done here with the server's own hooks).
        credentials = ice_credentials(offer.sdp)
        connection = self.pc.getTransceivers()[0].receiver.transport.transport._connection
        if credentials is not None and connection.remote_username not in (None, credentials[0]):
            restart_ice(self.pc)
            ice_restart_answered(self.pc, *credentials)
        transceivers = {t.mid: t for t in self.pc.getTransceivers()}
        for slot in offer.slots:
            self.slots[slot.mid] = slot
            transceiver = transceivers[slot.mid]
            if slot.direction is SlotDirection.PUBLISH:
                track = self.tracks.get(slot.source) if slot.source else None
                if track is not None and transceiver.sender.track is None:
                    transceiver.sender.replaceTrack(track)
                    transceiver.direction = "sendonly"
            elif slot.mid not in self.received:
                self.received[slot.mid] = []
                self.assemblers[slot.mid] = tap_receiver(
                    transceiver.receiver, sink=self._sink(slot.mid), loss_timeout=self.loss_timeout
                )
        configure_host_candidates(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def _sink(self, mid: str) -> Callable[[AssembledFrame], None]:
        def sink(frame: AssembledFrame) -> None:
            self.received[mid].append(frame)
            slot = self.slots.get(mid)
            if slot is not None and slot.publisher_id is not None and slot.source is not None:
                self.by_source.setdefault((slot.publisher_id, slot.source), []).append(frame.data)

        return sink

    def frames_from(self, publisher: str, source: TrackSource) -> list[bytes]:
        return self.by_source.get((publisher, source), [])

    def mid_for(self, publisher: str, source: TrackSource) -> str:
        for mid, slot in self.slots.items():
            if slot.publisher_id == publisher and slot.source is source:
                return mid
        raise LookupError(f"{self.name} has no slot for {publisher}/{source}")

    async def send_pli(self, publisher: str, source: TrackSource) -> None:
        """Ask the server for a keyframe of that subscription, as a browser would."""
        mid = self.mid_for(publisher, source)
        receiver = next(t for t in self.pc.getTransceivers() if t.mid == mid).receiver
        await receiver._send_rtcp_pli(self.assemblers[mid].media_ssrc)

    async def close(self) -> None:
        await self.pc.close()


class Session:
    """Binds a server :class:`Participant` to a :class:`ClientPeer`, renegotiating on demand."""

    def __init__(self, client: ClientPeer) -> None:
        self.client = client
        self.participant: Participant | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.negotiations = 0
        self.receptions: list[Reception] = []

    def on_reception(self, participant: Participant, reception: Reception) -> None:
        """The SFU's reception updates; with slots, whom each subscribe m-line carries now."""
        self.receptions.append(reception)
        for slot in reception.slots:
            self.client.slots[slot.mid] = slot

    def on_negotiation_needed(self, participant: Participant) -> None:
        task = asyncio.ensure_future(self._negotiate(participant))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _negotiate(self, participant: Participant) -> None:
        offer = await participant.create_offer()
        sdp = await self.client.answer(offer)
        await participant.apply_answer(sdp, revision=offer.revision)
        self.negotiations += 1

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks)


async def wait_until(condition: Callable[[], object], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def gather_awaitables(items: list[Awaitable[None]]) -> None:
    await asyncio.gather(*items)
