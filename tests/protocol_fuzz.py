"""A seeded fuzzer of the hub socket's protocol, shared by the suite
(tests/hub/test_fuzz.py, a few thousand inputs) and bench/fuzz.py (the long run).

Hypothesis draws sequences of client inputs: valid frames of every type with
mutated fields, wrong types, huge and negative numbers, unicode edge cases
(RTL and bidi marks, lone surrogates, NUL), deep nesting, truncated JSON,
binary frames, oversize frames, and meeting scenarios with garbage SDP and ICE
candidates. :class:`FuzzHarness` drives each sequence through the real
consumer (Channels' communicator) on the database and the bus the settings
name, and checks three promises:

- every frame the server sends is documented in docs/protocol.md (its type,
  its error code, its close code), and none is ``internal_error``;
- after every input the socket still answers ``ping`` with ``pong``;
- once the socket is closed nothing of it is left: presence, fan-out
  registrations, meeting seats (open attendance rows), SFU members and
  embedded-engine event handlers.

Ids are drawn as :class:`Pick` placeholders and resolved when a frame is sent,
so that frames name the rooms, messages, members and meetings that exist.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hub import protocol

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, flags=re.MULTILINE | re.DOTALL)
    assert match, f"docs/protocol.md has no section {title!r}"
    return match.group(1)


# A type documented anywhere (meeting_candidate has one heading for both directions).
DOCUMENTED_TYPES = set(re.findall(r"^### `([a-z_]+)`", DOC, flags=re.MULTILINE))
DOCUMENTED_ERRORS = set(re.findall(r"^\| `([a-z_]+)` \|", _section("Error codes"), flags=re.MULTILINE))
DOCUMENTED_CLOSES = {int(c) for c in re.findall(r"^\| `(\d+)` \|", _section("Close codes"), flags=re.MULTILINE)}


# --- values ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """An id of kind `kind` chosen when the frame is sent: the `index`-th known one (mod)."""

    kind: str
    index: int


EDGE_CHARS = [
    "\u200f", "\u200e", "\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u061c",
    "\x00", "\ud800", "\udfff", "\ud83d", "\ufeff", "\ufffe", "\uffff", "\u0000", "\n", "\t",
    "\\", '"', "\u0627", "\u0644", "\u2d63", "\u00e9", "\U0001f600", "\U0010ffff", "\u0301",
    " ", "[", "{", "@", "=", "+", "-", "<script>", "'",
]
# Up to 40 characters mixing the edge cases and any code point, drawn a chunk at a time:
# Hypothesis draws a whole `st.text` as one choice, where a list of characters costs one
# draw each, and drawing was most of the fuzzer's time.
_edge_chunk = st.one_of(
    st.text(alphabet="".join(c for c in EDGE_CHARS if len(c) == 1), min_size=1, max_size=10),
    st.text(st.characters(codec=None), min_size=1, max_size=10),
    st.sampled_from([c for c in EDGE_CHARS if len(c) > 1]),
)
edge_text = st.lists(_edge_chunk, max_size=4).map("".join)
huge_text = st.builds(lambda part, n: part * n, st.sampled_from(["a", "\u0627", "\U0001f600", "\x00"]), st.integers(1000, 25000))
numbers = st.one_of(
    st.integers(-3, 20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, edge_text, st.just(""))
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(edge_text, inner, max_size=3)),
    max_leaves=6,
)


def ids(kind: str) -> st.SearchStrategy[Any]:
    """Mostly an id that exists, sometimes any number or any value."""
    return st.one_of(
        st.builds(Pick, st.just(kind), st.integers(0, 7)),
        st.builds(Pick, st.just(kind), st.integers(0, 7)),
        numbers,
        garbage,
    )


def sdp_text() -> st.SearchStrategy[str]:
    lines = st.sampled_from([
        "v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0",
        "a=mid:0", "a=mid:", "a=ice-ufrag:x", "a=ice-pwd:y", "a=fingerprint:sha-256 00:11",
        "a=setup:active", "a=rtpmap:111 opus/48000/2", "a=recvonly", "a=sendrecv",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "m=application 9 DTLS/SCTP 5000",
        "a=ssrc:-1 cname:x", "a=msid-semantic: WMS *", "m=", "a=rtpmap:96 VP8/90000",
    ])
    return st.one_of(
        st.lists(st.one_of(lines, edge_text), min_size=1, max_size=25).map("\r\n".join),
        edge_text.filter(bool),
        st.builds(lambda n: "v=0\r\n" + "a=x\r\n" * n, st.integers(100, 6000)),
    )


def candidate_text() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.just(""),
        st.sampled_from([
            "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
            "candidate:1 1 udp 2130706431 999.1.1.1 70000 typ host",
            "candidate:x", "candidate:1 1 tcp 1 ::1 9 typ srflx raddr 0.0.0.0 rport 0",
            "candidate:1 1 udp -1 127.0.0.1 -9 typ relay",
        ]),
        edge_text,
    )


sources = st.one_of(st.sampled_from(["mic", "camera", "screen"]), garbage)
refs = st.one_of(st.none(), st.text(max_size=8), edge_text, numbers, st.text(min_size=65, max_size=80))

# Every client frame type with the fields it takes, each drawn from a mostly-plausible pool.
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "hello": {"v": st.one_of(st.just(protocol.PROTOCOL_VERSION), numbers)},
    "ping": {},
    "subscribe": {"room": ids("room"), "since_rev": st.one_of(st.none(), numbers)},
    "unsubscribe": {"room": ids("room")},
    "send": {
        "room": ids("room"),
        "client_id": st.one_of(edge_text, st.uuids().map(str)),
        "text": st.one_of(edge_text, huge_text, st.just("salam")),
        "reply_to": st.one_of(st.none(), ids("message")),
        "attachments": st.one_of(st.just([]), st.lists(numbers, max_size=6), garbage),
    },
    "edit": {"room": ids("room"), "id": ids("message"), "text": st.one_of(edge_text, huge_text)},
    "delete": {"room": ids("room"), "id": ids("message")},
    "react": {"room": ids("room"), "id": ids("message"), "emoji": st.one_of(st.just("\u2764\ufe0f"), edge_text), "on": st.one_of(st.booleans(), garbage)},
    "typing": {"room": ids("room")},
    "read": {"room": ids("room"), "id": st.one_of(ids("message"), numbers)},
    "history": {"room": ids("room"), "before": st.one_of(st.none(), ids("message")), "limit": numbers},
    "fetch": {"room": ids("room"), "since_rev": numbers, "limit": numbers},
    "report": {"room": ids("room"), "id": ids("message"), "reason": st.one_of(edge_text, st.just("spam"))},
    "mute": {"room": ids("room"), "user": ids("user"), "minutes": numbers},
    "ban": {"room": ids("room"), "user": ids("user"), "on": st.one_of(st.booleans(), garbage)},
    "presence": {"room": ids("room")},
    "meeting_start": {"room": ids("room"), "video_codec": st.one_of(st.sampled_from(["vp8", "h264"]), garbage), "lobby": st.one_of(st.booleans(), garbage)},
    "meeting_info": {"room": ids("room")},
    "meeting_join": {
        "meeting": st.one_of(st.none(), ids("meeting")),
        "room": st.one_of(st.none(), ids("room")),
        "audio_only": st.booleans(),
        "receive_video": st.booleans(),
        "publish": st.one_of(st.just([]), st.lists(sources, max_size=4)),
    },
    "meeting_leave": {"meeting": ids("meeting")},
    "meeting_answer": {"meeting": ids("meeting"), "sdp": sdp_text(), "revision": st.one_of(numbers, st.just(1))},
    "meeting_candidate": {
        "meeting": ids("meeting"),
        "candidate": candidate_text(),
        "sdp_mid": st.one_of(st.none(), st.sampled_from(["0", "1", "99", ""]), edge_text),
        "sdp_mline_index": st.one_of(st.none(), numbers),
    },
    "meeting_publish": {"meeting": ids("meeting"), "source": sources},
    "meeting_unpublish": {"meeting": ids("meeting"), "source": sources},
    "meeting_mute": {"meeting": ids("meeting"), "source": sources, "muted": st.one_of(st.booleans(), garbage)},
    "meeting_hand": {"meeting": ids("meeting"), "up": st.one_of(st.booleans(), garbage)},
    "meeting_receive": {"meeting": ids("meeting"), "video": st.one_of(st.booleans(), garbage)},
    "meeting_host": {
        "meeting": ids("meeting"),
        "action": st.one_of(st.sampled_from(["mute", "unmute", "remove", "admit", "deny", "lock", "unlock", "lobby_on", "lobby_off", "end"]), garbage),
        "user": st.one_of(st.none(), ids("user")),
        "source": sources,
    },
    "meeting_ice_restart": {"meeting": ids("meeting")},
    "meeting_pin": {"meeting": ids("meeting"), "user": st.one_of(st.none(), ids("user"))},
    "meeting_retry_video": {"meeting": ids("meeting")},
    "meeting_record": {"meeting": ids("meeting"), "action": st.one_of(st.sampled_from(["start", "stop"]), garbage)},
    "meeting_marker": {"meeting": ids("meeting"), "label": st.one_of(st.sampled_from(["now: glazing", " "]), edge_text)},
    "meeting_recorded": {"meeting": ids("meeting"), "recorded": st.one_of(st.booleans(), garbage)},
    "meeting_tables": {
        "meeting": ids("meeting"),
        "action": st.one_of(st.sampled_from(["open", "close", "broadcast"]), garbage),
        "split": st.one_of(st.sampled_from(["random", "trade", "wilaya", "hand"]), garbage),
        "count": st.one_of(st.integers(-2, 30), garbage),
        "seats": st.one_of(st.lists(st.lists(ids("user"), max_size=3), max_size=3), garbage),
        "minutes": st.one_of(st.none(), st.integers(-1, 300)),
        "text": st.one_of(st.none(), edge_text),
    },
}
assert set(FIELDS) == set(protocol.CLIENT_FRAME_TYPES), "the fuzzer must know every client frame"


KINDS = sorted(FIELDS)
_kinds = st.sampled_from(KINDS)
_carried = st.integers(0, 9)


@st.composite
def _frame_of(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": kind}
    for name, values in FIELDS[kind].items():
        if draw(_carried) < 8:  # most frames carry every field
            frame[name] = draw(values)
    if draw(st.booleans()):
        frame["ref"] = draw(refs)
    return frame


# Made once: a strategy made anew for every draw costs Hypothesis more than the draw.
FRAME_OF = {kind: _frame_of(kind) for kind in KINDS}


@st.composite
def _any_frame(draw: st.DrawFn) -> dict[str, Any]:
    return draw(FRAME_OF[draw(_kinds)])


_ANY_FRAME = _any_frame()


def valid_frame(kind: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A frame of type `kind` (any type when None) with plausible fields, most of them present."""
    return FRAME_OF[kind] if kind is not None else _ANY_FRAME


@st.composite
def mutated_frame(draw: st.DrawFn) -> dict[str, Any]:
    frame = draw(valid_frame())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "extra", "retype", "type", "garbage"]))
        keys = sorted(frame)
        if action == "drop" and keys:
            frame.pop(draw(st.sampled_from(keys)), None)
        elif action == "extra":
            frame[draw(edge_text)] = draw(garbage)
        elif action == "retype" and keys:
            frame[draw(st.sampled_from(keys))] = draw(garbage)
        elif action == "type":
            frame["type"] = draw(st.one_of(edge_text, garbage, st.sampled_from(sorted(FIELDS)).map(str.upper)))
        elif keys:
            frame[draw(st.sampled_from(keys))] = draw(st.one_of(numbers, huge_text))
    return frame


@dataclass(frozen=True)
class Raw:
    """Text (or bytes) sent as is, not a frame dict."""

    text: str | None = None
    data: bytes | None = None


@st.composite
def raw_input(draw: st.DrawFn) -> Raw:
    choice = draw(st.integers(0, 8))
    if choice == 0:  # truncated JSON of a valid frame
        text = json.dumps(_plain(draw(valid_frame())))
        return Raw(text=text[: draw(st.integers(0, max(0, len(text) - 1)))])
    if choice == 1:  # deep nesting, sometimes inside a plausible frame
        depth = draw(st.sampled_from([17, 100, 1000, 16000]))
        opener = draw(st.sampled_from(["[", '{"a":', "[{\"x\":"]))
        inner = opener * depth
        if draw(st.booleans()):
            return Raw(text='{"type": "send", "room": 1, "text": ' + inner + "}")
        return Raw(text=inner)
    if choice == 2:
        return Raw(data=draw(st.binary(max_size=64)))
    if choice == 3:  # JSON that is not an object
        return Raw(text=json.dumps(draw(st.one_of(numbers, st.lists(scalars, max_size=3), edge_text))))
    if choice == 4:  # oversize: a frame beyond 16 KiB, or a meeting answer beyond 64 KiB
        size = draw(st.sampled_from([16 * 1024 + 1, 40 * 1024, 64 * 1024 + 1, 200 * 1024]))
        kind = draw(st.sampled_from(["send", "meeting_answer"]))
        return Raw(text=json.dumps({"type": kind, "meeting": 1, "room": 1, "sdp": "a" * size, "revision": 1, "client_id": "x", "text": "a"}))
    if choice == 5:  # escapes the database refuses: NUL, lone surrogates
        escape = draw(st.sampled_from(["\\u0000", "\\ud800", "\\udfff", "\\ud83d\\u0041", "\\\\u0000"]))
        return Raw(text='{"type": "send", "room": 1, "client_id": "c' + escape + '", "text": "a' + escape + '"}')
    if choice == 6:  # anything, even not JSON
        return Raw(text=draw(st.one_of(edge_text, st.text(max_size=200))))
    if choice == 7:  # duplicate keys and odd JSON numbers
        return Raw(text='{"type": "ping", "type": "send", "room": 1e400, "ref": 1}')
    return Raw(text=json.dumps(_plain(draw(garbage))))


def _plain(value: Any) -> Any:
    """`value` with every Pick replaced by a small id (for inputs sent as raw text)."""
    if isinstance(value, Pick):
        return value.index + 1
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@st.composite
def meeting_scenario(draw: st.DrawFn) -> list[Any]:
    """Start and join the meeting of a group, then throw garbage at its media session."""
    steps: list[Any] = [
        {"type": "meeting_start", "room": Pick("group", 0), "ref": "start"},
        {"type": "meeting_join", "room": Pick("group", 0), "ref": "join", "publish": draw(st.lists(sources, max_size=3))},
    ]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from([
            "meeting_answer", "meeting_candidate", "meeting_publish", "meeting_unpublish", "meeting_mute",
            "meeting_receive", "meeting_ice_restart", "meeting_host", "meeting_hand", "meeting_join",
            "meeting_pin", "meeting_retry_video",
            "meeting_record", "meeting_marker", "meeting_recorded", "meeting_tables",
        ]))
        frame = draw(valid_frame(kind))
        if "meeting" in frame and draw(st.integers(0, 3)):
            frame["meeting"] = Pick("meeting", -1)
        steps.append(frame)
    if draw(st.booleans()):
        steps.append({"type": "meeting_leave", "meeting": Pick("meeting", -1)})
    return steps


@st.composite
def kinds_in_any_order(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid frames of six different types in a random order (the head of a random
    permutation of every type; a flatmap over `st.permutations` made new strategies for
    every draw and cost more than the whole socket round trip)."""
    kinds = draw(st.lists(_kinds, min_size=6, max_size=6, unique=True))
    return [draw(FRAME_OF[kind]) for kind in kinds]


client_input = st.one_of(valid_frame(), valid_frame(), mutated_frame(), mutated_frame(), raw_input())
input_sequences = st.one_of(
    st.lists(client_input, min_size=1, max_size=6),
    st.lists(client_input, min_size=1, max_size=6),
    meeting_scenario(),
    kinds_in_any_order(),
)


# --- the harness -------------------------------------------------------------------


@dataclass
class Figures:
    inputs: int = 0
    sequences: int = 0
    #: Sockets opened (each closed and checked for leaks).
    sockets: int = 0
    crashes: int = 0
    leaks: int = 0
    undocumented_answers: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 50:
            self.problems.append(f"{kind}: {text}")


@dataclass
class World:
    """What exists for the fuzzed member: ids the picks resolve to."""

    user: Any
    pools: dict[str, list[int]]


class SocketGone(Exception):
    pass


class FuzzHarness:
    """Drives input sequences through the consumer and checks each answer.

    A socket serves `batch` sequences in a row (or fewer: until an input closes it), then
    is closed and checked for anything left behind; `finish()` closes the last one. Every
    input is answered and followed by a `ping` either way: a batch only spares the opening
    and the release check of a socket per sequence, which were most of the time per input.
    """

    def __init__(self, world: World, *, pong_timeout: float = 15.0, batch: int = 1) -> None:
        self.world = world
        self.figures = Figures()
        self.pong_timeout = pong_timeout
        self.batch = max(1, batch)
        self._seq = 0
        self._comm: Any = None
        self._served = 0

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Pick):
            pool = self.world.pools.get(value.kind) or [1]
            return pool[value.index % len(pool)]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    async def run(self, sequence: list[Any]) -> None:
        from tests.sockets import open_socket

        self.figures.sequences += 1
        if self._comm is None:
            self._comm = await open_socket(self.world.user)
            self.figures.sockets += 1
        comm = self._comm
        ended = True
        try:
            for item in sequence:
                self.figures.inputs += 1
                try:
                    await self._send(comm, item)
                    await self._answered(comm, repr(item)[:300])
                except SocketGone:
                    self._comm = None  # closed by the server, or by _answered
                    break
            ended = False
        finally:
            self._served += 1
            if self._comm is None:
                self._served = 0
                await self.check_released()
            elif ended or self._served >= self.batch:
                await self.finish()

    async def finish(self) -> None:
        """Close the open socket, if any, and check that nothing of it is left."""
        comm, self._comm, self._served = self._comm, None, 0
        if comm is not None:
            await self._close(comm)
            await self.check_released()

    async def _send(self, comm: Any, item: Any) -> None:
        if isinstance(item, Raw):
            # send_input, not send_to: an empty frame is an input too.
            if item.data is not None:
                await comm.send_input({"type": "websocket.receive", "bytes": item.data})
            else:
                await comm.send_input({"type": "websocket.receive", "text": item.text or ""})
            return
        frame = self.resolve(item)
        try:
            text = json.dumps(frame, allow_nan=True)
        except (TypeError, ValueError):
            text = json.dumps(_plain(frame), allow_nan=True, default=str)
        await comm.send_to(text_data=text)

    async def _answered(self, comm: Any, what: str) -> None:
        """Ping after the input and read every frame until the pong."""
        self._seq += 1
        ref = f"fuzz-{self._seq}"
        await comm.send_to(text_data=json.dumps({"type": "ping", "ref": ref}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pong_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                self.figures.problem("crashes", f"no pong within {self.pong_timeout}s after {what}")
                await self._close(comm)
                raise SocketGone
            try:
                output = await comm.receive_output(timeout=left)
            except TimeoutError:
                continue
            except Exception as exc:
                self.figures.problem("crashes", f"{type(exc).__name__}: {exc} after {what}")
                raise SocketGone from None
            if output["type"] == "websocket.close":
                code = int(output.get("code", 1000))
                if code not in DOCUMENTED_CLOSES:
                    self.figures.problem("crashes", f"closed with {code} after {what}")
                await self._close(comm)
                raise SocketGone
            frame = self._check(output, what)
            if frame.get("type") == "pong" and frame.get("ref") == ref:
                return

    def _check(self, output: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            frame = json.loads(output.get("text") or "")
        except ValueError:
            self.figures.problem("undocumented_answers", f"not JSON: {output!r:.200} after {what}")
            return {}
        kind = frame.get("type") if isinstance(frame, dict) else None
        key = kind if kind != "error" else f"error:{frame.get('code')}"
        self.figures.answers[str(key)] = self.figures.answers.get(str(key), 0) + 1
        if kind not in DOCUMENTED_TYPES:
            self.figures.problem("undocumented_answers", f"frame type {kind!r} after {what}")
        elif kind == "error":
            code = frame.get("code")
            if code == "internal_error":
                self.figures.problem("crashes", f"internal_error after {what}")
            elif code not in DOCUMENTED_ERRORS:
                self.figures.problem("undocumented_answers", f"error code {code!r} after {what}")
        if kind in ("meeting", "meeting_joined", "meeting_ended") and isinstance(frame.get("meeting"), int):
            meetings = self.world.pools.setdefault("meeting", [])
            if frame["meeting"] not in meetings:
                meetings.append(frame["meeting"])
        if kind == "message" and isinstance(frame.get("id"), int):
            messages = self.world.pools.setdefault("message", [])
            if frame["id"] not in messages and len(messages) < 50:
                messages.append(frame["id"])
        return frame

    async def _close(self, comm: Any) -> None:
        try:
            await comm.disconnect(timeout=10)
        except Exception as exc:
            self.figures.problem("crashes", f"closing failed: {type(exc).__name__}: {exc}")

    async def check_released(self) -> None:
        """After the socket closed: nothing of the member is held anywhere."""
        for problem in await held_by(self.world.user.pk, self.world.pools.get("all_rooms", [])):
            self.figures.problem("leaks", problem)


async def held_by(user_id: int, room_ids: list[int], *, wait: float = 3.0) -> list[str]:
    """What the process still holds for `user_id` once his only socket closed (waits up to
    `wait` seconds for the SFU to finish what it was told)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        problems = await _held_now(user_id, room_ids)
        if not problems or loop.time() > deadline:
            return problems
        await asyncio.sleep(0.05)


async def _held_now(user_id: int, room_ids: list[int]) -> list[str]:
    from asgiref.sync import sync_to_async

    from hub import realtime
    from rooms.presence import presence_store
    from signaling import placement
    from signaling.models import Attendance

    problems = []
    for group, subs in realtime.fanout().groups.items():
        for sub in subs:
            if getattr(getattr(sub, "user", None), "pk", None) == user_id:
                problems.append(f"fan-out registration in {group}")
    store = presence_store()
    for room_id in room_ids:
        online, _ = await store.online(room_id)
        if user_id in online:
            problems.append(f"online in room {room_id}")
    from hub import limits

    sockets = await limits.socket_slots().count(user_id)
    if sockets:
        problems.append(f"{sockets} socket slot(s) held")
    seats = await sync_to_async(
        lambda: Attendance.objects.filter(user_id=user_id, left_at__isnull=True).count()
    )()
    if seats:
        problems.append(f"{seats} meeting seat(s) held")
    if placement._local_handlers:
        problems.append(f"{len(placement._local_handlers)} SFU event handler(s) registered")
    from django.conf import settings

    from tests.signaling.remote import udp_ports

    ports = udp_ports(port_min=settings.HIRFA_SFU_PORT_MIN, port_max=settings.HIRFA_SFU_PORT_MAX)
    if ports:
        problems.append(f"{len(ports)} SFU UDP port(s) open")
    engine = placement.current_engine()
    if engine is not None:
        for live in list(engine._meetings.values()):
            if user_id in live.members or user_id in live.waiting:
                problems.append(f"member of SFU meeting {live.id}")
    return problems
