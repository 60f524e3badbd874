"""An aiortc participant that speaks the meeting protocol over a hub socket.

It is what the meeting page does: it answers every ``meeting_offer`` (attaching
its tracks to the ``publish`` m-lines) and records, by publisher and source,
the encoded frames arriving on its ``subscribe`` m-lines (through the same
tap as the SFU tests, so nothing is decoded). The socket is either Channels'
communicator or a real websocket to daphne.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from signaling.sfu import MediaKind, Offer, SlotDirection, TrackSlot, TrackSource
from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack

SOURCES = {
    "mic": TrackSource.MICROPHONE,
    "camera": TrackSource.CAMERA,
    "screen": TrackSource.SCREEN,
    "camera2": TrackSource.CAMERA2,
}


class CommunicatorSocket:
    def __init__(self, comm: Any) -> None:
        self.comm = comm

    async def send(self, frame: dict[str, Any]) -> None:
        await self.comm.send_json_to(frame)

    async def recv(self) -> dict[str, Any]:
        # A receive that times out would kill the application: wait as long as it takes.
        return await self.comm.receive_json_from(timeout=3600)

    async def close(self) -> None:
        await self.comm.disconnect()


class WebSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        return json.loads(await self.ws.recv())

    async def close(self) -> None:
        await self.ws.close()


def track_slot(line: dict[str, Any]) -> TrackSlot:
    """One ``mlines`` (or ``slots``) entry of a frame."""
    return TrackSlot(
        mid=line["mid"],
        kind=MediaKind(line["kind"]),
        direction=SlotDirection(line["direction"]),
        publisher_id=str(line["user"]) if line.get("user") is not None else None,
        source=SOURCES[line["source"]] if line.get("source") else None,
    )


def offer_from_frame(frame: dict[str, Any]) -> Offer:
    slots = tuple(track_slot(m) for m in frame["mlines"])
    return Offer(sdp=frame["sdp"], revision=frame["revision"], slots=slots)


class MeetingClient:
    """One participant: a socket, a peer connection, and what it received."""

    def __init__(self, name: str, user_id: int, socket: Any, *, publish: tuple[str, ...] = ("mic", "camera")) -> None:
        self.name = name
        self.user_id = user_id
        self.socket = socket
        tracks: dict[TrackSource, Any] = {}
        if "mic" in publish:
            tracks[TrackSource.MICROPHONE] = ToneAudioTrack()
        if "camera" in publish:
            tracks[TrackSource.CAMERA] = PatternVideoTrack()
        self.publish = publish
        self.peer = ClientPeer(name, tracks=tracks)
        self.frames: list[dict[str, Any]] = []
        self.answered = 0
        self.answer_sdp_override: str | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.socket.recv()
            self.frames.append(frame)
            if frame["type"] == "meeting_offer":
                if self.peer.pc.connectionState == "closed":
                    # An offer for the peer a rejoin is replacing (a dead worker's last
                    # renegotiation): a client drops it and answers the new peer's offer.
                    self._changed.set()
                    continue
                sdp = self.answer_sdp_override or await self.peer.answer(offer_from_frame(frame))
                await self.socket.send(
                    {"type": "meeting_answer", "meeting": frame["meeting"], "sdp": sdp, "revision": frame["revision"]}
                )
                self.answered += 1
            elif frame["type"] == "meeting_reception":
                # Slots: whom each subscribe m-line carries now, as a page relabels its tiles.
                for line in frame.get("slots", ()):
                    self.peer.slots[line["mid"]] = track_slot(line)
            self._changed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(frame)

    async def wait_for(
        self, kind: str, predicate: Callable[[dict[str, Any]], bool] = lambda f: True, *, timeout: float = 20, after: int = 0
    ) -> dict[str, Any]:
        """The first frame of ``kind`` (from index ``after``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[after:]:
                if frame["type"] == kind and predicate(frame):
                    return frame
            if self._reader.done():
                self._reader.result()
            left = deadline - time.monotonic()
            assert left > 0, f"{self.name}: no {kind} frame within {timeout}s; got {[f['type'] for f in self.frames[after:]]}"
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))
            except TimeoutError:
                pass

    def mark(self) -> int:
        return len(self.frames)

    async def join(self, meeting_id: int, **options: Any) -> dict[str, Any]:
        start = self.mark()
        await self.send({"type": "meeting_join", "meeting": meeting_id, "publish": list(self.publish), "ref": "join", **options})
        return await self.wait_for("meeting_joined", after=start)

    def frames_from(self, user_id: int, source: str) -> list[bytes]:
        return self.peer.frames_from(str(user_id), SOURCES[source])

    async def close(self) -> None:
        self._reader.cancel()
        try:
            await self._reader
        except BaseException:
            pass
        await self.socket.close()
        await self.peer.close()


async def wait_until(condition: Callable[[], object], *, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
