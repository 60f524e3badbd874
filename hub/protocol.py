"""Every websocket frame, in each direction. docs/protocol.md documents each of
them and a test fails when one is missing there.

Client frames are validated strictly (unknown fields are refused); a client
`ref` is echoed in the reply. Server frames are built here too, so the
consumers, the services' events, the tests and the docs share one definition.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 2
# Version 1 clients are still served for a release: they get `presence` frames
# (one per member who came or went) made from each `presence_delta`.
SUPPORTED_VERSIONS = (1, 2)
#: No client frame nests deeper than this; a deeper one is refused before it is parsed.
MAX_JSON_DEPTH = 16

Ref = Annotated[str, Field(max_length=64)]
#: No id, seq or rev exceeds a PostgreSQL bigint: a larger number names nothing and is refused
#: as an invalid frame (cast to bigint, it used to fail the insert as an internal error).
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Rev = Annotated[int, Field(ge=0, le=MAX_ID)]
RoomId = Id
MessageId = Id


class BusyReason(BaseModel):
    """The close reason of a `4013` (docs/protocol.md, "Admission"): the server lets a crowd
    open a few sockets at a time, and this one comes back after `retry_after` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    retry_after: float = Field(ge=0, le=60)


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: Ref | None = None


# --- client → server -------------------------------------------------------


class Hello(ClientFrame):
    type: Literal["hello"]
    v: int


class Ping(ClientFrame):
    type: Literal["ping"]


class Subscribe(ClientFrame):
    """Follow a room's live events; with `since_rev`, first replay every change after it."""

    type: Literal["subscribe"]
    room: RoomId
    since_rev: Rev | None = None


class Unsubscribe(ClientFrame):
    type: Literal["unsubscribe"]
    room: RoomId


class Send(ClientFrame):
    type: Literal["send"]
    room: RoomId
    client_id: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=20000)] = ""
    reply_to: MessageId | None = None
    attachments: Annotated[list[Id], Field(max_length=4)] = []


class Edit(ClientFrame):
    type: Literal["edit"]
    room: RoomId
    id: MessageId
    text: Annotated[str, Field(max_length=20000)]


class Delete(ClientFrame):
    type: Literal["delete"]
    room: RoomId
    id: MessageId


class React(ClientFrame):
    type: Literal["react"]
    room: RoomId
    id: MessageId
    emoji: Annotated[str, Field(min_length=1, max_length=16)]
    on: bool = True


class Typing(ClientFrame):
    type: Literal["typing"]
    room: RoomId


class Read(ClientFrame):
    type: Literal["read"]
    room: RoomId
    id: Rev


class History(ClientFrame):
    """Older messages, before `before` (a message id), newest last."""

    type: Literal["history"]
    room: RoomId
    before: MessageId | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class Fetch(ClientFrame):
    """Every change after `since_rev`, oldest first: how a client fills a gap."""

    type: Literal["fetch"]
    room: RoomId
    since_rev: Rev
    limit: Annotated[int, Field(ge=1, le=500)] = 200


class ReportFrame(ClientFrame):
    type: Literal["report"]
    room: RoomId
    id: MessageId
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class Mute(ClientFrame):
    type: Literal["mute"]
    room: RoomId
    user: Id
    minutes: Annotated[int, Field(ge=0, le=60 * 24 * 30)]


class Ban(ClientFrame):
    type: Literal["ban"]
    room: RoomId
    user: Id
    on: bool = True


class Presence(ClientFrame):
    """Ask who is online in a room now: a page of `limit` members from `offset` on."""

    type: Literal["presence"]
    room: RoomId
    offset: Annotated[int, Field(ge=0, le=100000)] = 0
    limit: Annotated[int, Field(ge=1, le=100)] = 100


# --- meetings, client → server (signaling/consumers.py) ----------------------

MeetingId = Id
MeetingSource = Literal["mic", "camera", "screen", "camera2"]
# Up to the meeting_answer frame limit (HIRFA_MEETING_ANSWER_MAX_BYTES, 64 KiB), less the envelope.
Sdp = Annotated[str, Field(min_length=1, max_length=63 * 1024)]


class MeetingStart(ClientFrame):
    type: Literal["meeting_start"]
    room: RoomId
    video_codec: Literal["vp8", "h264"] = "vp8"
    lobby: bool = False


class MeetingInfo(ClientFrame):
    type: Literal["meeting_info"]
    room: RoomId


class MeetingJoin(ClientFrame):
    """Join a meeting by id, or the live meeting of a room."""

    type: Literal["meeting_join"]
    meeting: MeetingId | None = None
    room: RoomId | None = None
    audio_only: bool = False
    receive_video: bool = True
    publish: Annotated[list[MeetingSource], Field(max_length=4)] = []
    #: False: join without being recorded (nothing of his is written while the meeting records).
    recorded: bool = True
    #: How many videos his screen shows at once (slots: e.g. 4 on a phone); at most the
    #: server's video slots (HIRFA_SFU_VIDEO_SLOTS), which is also the default.
    video_slots: Annotated[int, Field(ge=1, le=25)] | None = None
    #: Back after a network change (a new socket): keep my media session if the server still
    #: has it — an ICE restart on the same peer (`meeting_joined` says `resumed`).
    resume: bool = False


class MeetingLeave(ClientFrame):
    type: Literal["meeting_leave"]
    meeting: MeetingId


class MeetingAnswer(ClientFrame):
    type: Literal["meeting_answer"]
    meeting: MeetingId
    sdp: Sdp
    revision: Id


class MeetingCandidateIn(ClientFrame):
    type: Literal["meeting_candidate"]
    meeting: MeetingId
    candidate: Annotated[str, Field(max_length=512)] | None
    sdp_mid: Annotated[str, Field(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=255)] | None = None


class MeetingPublish(ClientFrame):
    type: Literal["meeting_publish"]
    meeting: MeetingId
    source: MeetingSource


class MeetingUnpublish(ClientFrame):
    type: Literal["meeting_unpublish"]
    meeting: MeetingId
    source: MeetingSource


class MeetingMute(ClientFrame):
    type: Literal["meeting_mute"]
    meeting: MeetingId
    source: MeetingSource
    muted: bool


class MeetingHand(ClientFrame):
    type: Literal["meeting_hand"]
    meeting: MeetingId
    up: bool


class MeetingReceive(ClientFrame):
    type: Literal["meeting_receive"]
    meeting: MeetingId
    video: bool


class MeetingHost(ClientFrame):
    type: Literal["meeting_host"]
    meeting: MeetingId
    action: Literal[
        "mute", "unmute", "remove", "admit", "deny", "lock", "unlock", "lobby_on", "lobby_off", "end",
        "allow_speak", "stop_speak",
    ]
    user: Id | None = None
    source: MeetingSource = "mic"


class MeetingIceRestart(ClientFrame):
    type: Literal["meeting_ice_restart"]
    meeting: MeetingId


class MeetingPin(ClientFrame):
    """Give one participant's video the first claim on my connection (`user: null` unpins)."""

    type: Literal["meeting_pin"]
    meeting: MeetingId
    user: Annotated[int, Field(ge=1)] | None


class MeetingRetryVideo(ClientFrame):
    """Try video again after the server made me audio-only for my connection."""

    type: Literal["meeting_retry_video"]
    meeting: MeetingId


class MeetingRecord(ClientFrame):
    """A host starts or stops recording the meeting."""

    type: Literal["meeting_record"]
    meeting: MeetingId
    action: Literal["start", "stop"]


class MeetingMarker(ClientFrame):
    """A host names a chapter of the running recording, from now on."""

    type: Literal["meeting_marker"]
    meeting: MeetingId
    label: Annotated[str, Field(min_length=1, max_length=80)]


class MeetingRecorded(ClientFrame):
    """Whether the member may be recorded (False: nothing of his is written)."""

    type: Literal["meeting_recorded"]
    meeting: MeetingId
    recorded: bool


class MeetingTables(ClientFrame):
    """A host splits the meeting into tables, broadcasts to them, or brings everyone back.

    ``open``: ``split`` ``random`` deals the participants over ``count`` tables, ``trade`` and
    ``wilaya`` seat them by their profile (one table each, at most ``count``; the rest at
    the last), ``hand`` seats them as ``seats`` lists (one list of user ids per table);
    ``minutes`` sets the timer. ``broadcast``: ``text`` to every table. ``seat``: ``user``
    (someone in the meeting, a late comer) to table number ``table``. ``close``: back.
    """

    type: Literal["meeting_tables"]
    meeting: MeetingId
    action: Literal["open", "close", "broadcast", "seat"]
    split: Literal["random", "trade", "wilaya", "hand"] = "random"
    count: Annotated[int, Field(ge=1, le=20)] = 2
    seats: Annotated[list[Annotated[list[Id], Field(max_length=200)]], Field(max_length=20)] = []
    minutes: Annotated[int, Field(ge=1, le=240)] | None = None
    text: Annotated[str, Field(max_length=500)] | None = None
    user: Id | None = None
    table: Annotated[int, Field(ge=1, le=20)] | None = None


AnyClientFrame = Annotated[
    Hello | Ping | Subscribe | Unsubscribe | Send | Edit | Delete | React | Typing | Read | History | Fetch | ReportFrame | Mute | Ban | Presence | MeetingStart | MeetingInfo | MeetingJoin | MeetingLeave | MeetingAnswer | MeetingCandidateIn | MeetingPublish | MeetingUnpublish | MeetingMute | MeetingHand | MeetingReceive | MeetingHost | MeetingIceRestart | MeetingPin | MeetingRetryVideo | MeetingRecord | MeetingMarker | MeetingRecorded | MeetingTables,
    Field(discriminator="type"),
]
client_frame_adapter: TypeAdapter[Any] = TypeAdapter(AnyClientFrame)

CLIENT_FRAME_TYPES: tuple[str, ...] = (
    "hello", "ping", "subscribe", "unsubscribe", "send", "edit", "delete", "react", "typing",
    "read", "history", "fetch", "report", "mute", "ban", "presence",
    "meeting_start", "meeting_info", "meeting_join", "meeting_leave", "meeting_answer",
    "meeting_candidate", "meeting_publish", "meeting_unpublish", "meeting_mute", "meeting_hand",
    "meeting_receive", "meeting_host", "meeting_ice_restart", "meeting_pin", "meeting_retry_video",
    "meeting_record", "meeting_marker", "meeting_recorded", "meeting_tables",
)


# --- decoding ---------------------------------------------------------------

# A JSON string, closed or running to the end of the text: every `"` starts a match that
# consumes its whole string, so removing them is one linear pass.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+\\?(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
# Once only brackets are left, the innermost arrays and objects are "[]" and "{}".
_INNERMOST = re.compile(r"\[\]|\{\}")


class TooDeep(ValueError):
    """The text nests arrays or objects deeper than :data:`MAX_JSON_DEPTH`."""


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `text` nests arrays/objects more than `limit` deep (brackets inside strings
    do not count; unbalanced brackets count as deep). Never recursive, so no input can
    exhaust the stack, and cheap: a count first, then at most `limit` linear passes that
    each peel off the innermost level."""
    if text.count("[") + text.count("{") <= limit:
        return False
    bare = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    for _ in range(limit):
        bare, peeled = _INNERMOST.subn("", bare)
        if not peeled:
            break
    return bool(bare)


class Unstorable(ValueError):
    """A string of the frame holds NUL or a lone surrogate: no database or encoder takes it."""


# The escapes that decode to NUL or to half of a surrogate pair.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def decode_json(text: str) -> Any:
    """The JSON value of a client frame. Raises :class:`TooDeep` for nesting over
    :data:`MAX_JSON_DEPTH` (checked before parsing), :class:`Unstorable` when a string
    holds NUL or a lone surrogate (PostgreSQL and UTF-8 refuse both, so they would fail
    far from here), and ``ValueError`` for invalid JSON."""
    if json_depth_exceeds(text):
        raise TooDeep(f"nested deeper than {MAX_JSON_DEPTH}")
    value = json.loads(text)
    if _SUSPECT_ESCAPE.search(text) or not _encodable(text):
        _check_storable(value)
    return value


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_storable(value: Any) -> None:
    # Iterative, though the depth is already bounded: a frame holds few strings.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodable(item):
                raise Unstorable("a string holds NUL or a lone surrogate")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# --- server → client -------------------------------------------------------


class ServerFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Author(ServerFrame):
    id: int
    name: str


class AttachmentOut(ServerFrame):
    """An image (`url`, `thumb`, `width`, `height`) or a voice message (`url`,
    `content_type`, `duration_ms`, `waveform`: bars of 0–31, `listened_by`: who played it)."""

    id: int
    kind: Literal["image", "voice"] = "image"
    url: str
    thumb: str = ""
    width: int = 0
    height: int = 0
    content_type: str = ""
    duration_ms: int = 0
    waveform: list[int] = []
    listened_by: list[int] = []


class CardOut(ServerFrame):
    """What a message is about, shown above its text: a product, an exchange post, an enquiry.

    Only the server attaches a card (an order request, a reply to an exchange post, a
    buyer's enquiry); `kind` names what it shows, for the client's icon and styling.
    """

    kind: Literal["product", "exchange_post", "enquiry"]
    title: str
    url: str
    image: str = ""
    price: str = ""
    detail: str = ""


class MessageOut(ServerFrame):
    """A message's whole current state; sent again, with a new rev, on every change."""

    type: Literal["message"] = "message"
    room: int
    id: int
    rev: int
    author: Author | None
    client_id: str
    text: str
    reply_to: int | None = None
    mentions: list[int] = []
    reactions: dict[str, list[int]] = {}
    attachments: list[AttachmentOut] = []
    card: CardOut | None = None
    created_at: str
    edited_at: str | None = None
    deleted: bool = False


class Welcome(ServerFrame):
    type: Literal["welcome"] = "welcome"
    ref: str | None = None
    v: int = PROTOCOL_VERSION
    user: Author
    ping_seconds: int
    limits: dict[str, int | float]


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"
    ref: str | None = None


class Subscribed(ServerFrame):
    """Sent after the replay (if any): live delivery follows from `rev` on."""

    type: Literal["subscribed"] = "subscribed"
    ref: str | None = None
    room: int
    rev: int
    last_id: int
    read_id: int
    unread: int
    more: bool = False
    online: list[Author] = []
    online_count: int = 0


class Unsubscribed(ServerFrame):
    type: Literal["unsubscribed"] = "unsubscribed"
    ref: str | None = None
    room: int


class Ack(ServerFrame):
    type: Literal["ack"] = "ack"
    ref: str | None = None
    room: int
    id: int | None = None
    rev: int | None = None


class Messages(ServerFrame):
    type: Literal["messages"] = "messages"
    ref: str | None = None
    room: int
    messages: list[MessageOut]
    more: bool


class TypingOut(ServerFrame):
    type: Literal["typing"] = "typing"
    room: int
    user: Author


class PresenceOut(ServerFrame):
    """`online` is true when the user's first connection to the room opened, false when his last closed."""

    type: Literal["presence"] = "presence"
    room: int
    user: Author
    online: bool


class PresenceDelta(ServerFrame):
    """Who came and who went in a room since the last delta (at most one per room every ~2 s
    per server process), and how many are online now. `more`: the lists were cut short."""

    type: Literal["presence_delta"] = "presence_delta"
    room: int
    joined: list[Author] = []
    left: list[Author] = []
    more: bool = False
    online_count: int


class PresenceList(ServerFrame):
    type: Literal["presence_list"] = "presence_list"
    ref: str | None = None
    room: int
    online: list[Author]
    online_count: int = 0
    offset: int = 0


class ResyncOut(ServerFrame):
    """The live bus was cut off and is back: events of these rooms may have been lost.

    The client fetches each room's changes after the last rev it holds.
    """

    type: Literal["resync"] = "resync"
    rooms: list[int]


class Unread(ServerFrame):
    type: Literal["unread"] = "unread"
    room: int
    read_id: int
    unread: int


class NotificationOut(ServerFrame):
    type: Literal["notification"] = "notification"
    id: int
    kind: str
    data: dict[str, Any]
    created_at: str


class Removed(ServerFrame):
    """You no longer read this room (banned, or you left it from another tab)."""

    type: Literal["removed"] = "removed"
    room: int
    reason: str


class MemberOut(ServerFrame):
    """A member's standing in a room changed (muted, unmuted, banned)."""

    type: Literal["member"] = "member"
    room: int
    user: Author
    muted_until: str | None = None
    banned: bool = False


class ErrorOut(ServerFrame):
    type: Literal["error"] = "error"
    ref: str | None = None
    code: str
    message: str
    room: int | None = None
    retry_after: float | None = None


# --- meetings, server → client ---------------------------------------------------


class MeetingOut(ServerFrame):
    """A room's meeting, for the room's subscribers: live or not, who is in it."""

    type: Literal["meeting"] = "meeting"
    ref: str | None = None
    room: int
    meeting: int | None
    live: bool
    video_codec: str | None = None
    started_at: str | None = None
    participants: list[Author] = []
    #: The meeting is being recorded (a page asks before joining).
    recording: bool = False


class MeetingJoined(ServerFrame):
    type: Literal["meeting_joined"] = "meeting_joined"
    ref: str | None = None
    meeting: int
    room: int
    video_codec: str
    host: bool
    #: The server kept the member's peer: an ICE-restart offer follows on his connection.
    resumed: bool = False


class MeetingLobby(ServerFrame):
    type: Literal["meeting_lobby"] = "meeting_lobby"
    ref: str | None = None
    meeting: int


class IceServer(ServerFrame):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class MeetingIceServers(ServerFrame):
    type: Literal["meeting_ice_servers"] = "meeting_ice_servers"
    ref: str | None = None
    meeting: int
    ice_servers: list[IceServer]
    ttl: int | None = None


class MLine(ServerFrame):
    """One m-line of a server offer: whose `source` it carries, seen from the client."""

    mid: str
    kind: Literal["audio", "video"]
    direction: Literal["publish", "subscribe"]
    user: int | None
    source: MeetingSource | None


class MeetingOffer(ServerFrame):
    type: Literal["meeting_offer"] = "meeting_offer"
    meeting: int
    sdp: str
    revision: int
    mlines: list[MLine]


class MeetingParticipant(ServerFrame):
    user: Author
    host: bool
    hand: bool
    tracks: list[str]
    muted: list[str]
    host_muted: list[str]
    connected: bool
    #: False: he chose not to be recorded.
    recorded: bool = True
    #: A masterclass's presenter.
    presenter: bool = False
    #: A masterclass's listener (his hand asks to speak).
    listener: bool = False
    #: False: a listener not let speak; he may publish nothing.
    may_speak: bool = True


class MeetingState(ServerFrame):
    type: Literal["meeting_state"] = "meeting_state"
    meeting: int
    room: int
    locked: bool
    lobby: bool
    active_speaker: int | None = None
    hosts: list[int]
    participants: list[MeetingParticipant]
    waiting: list[Author] = []
    recording: bool = False
    #: A masterclass: its presenters and hosts may show a second camera (`camera2`).
    masterclass: bool = False


class ReceivedVideoOut(ServerFrame):
    user: int
    source: MeetingSource
    quality: Literal["low", "medium", "high", "paused"]


class MeetingReception(ServerFrame):
    """What my own connection carries now: each video's quality or "paused", audio-only."""

    type: Literal["meeting_reception"] = "meeting_reception"
    meeting: int
    audio_only: bool
    videos: list[ReceivedVideoOut]
    estimate_kbps: int
    pinned: int | None = None
    #: With slots: each of my subscribe m-lines and whose source it carries now (a switch
    #: of a slot needs no new offer); absent without slots.
    slots: list[MLine] = []


class TableOut(ServerFrame):
    number: int
    label: str
    #: The table's own meeting (join it) and room (its chat).
    meeting: int
    room: int
    members: list[Author]


class MeetingTablesOut(ServerFrame):
    """The tables of a meeting: each member joins his own (``members``), on the same socket;
    ``open`` false: everyone back to ``meeting``, or, with ``ended``, out: a host ended the
    meeting (from a table or from the meeting). ``notice``: a host's broadcast."""

    type: Literal["meeting_tables"] = "meeting_tables"
    ref: str | None = None
    meeting: int
    open: bool
    ended: bool = False
    tables: list[TableOut] = []
    ends_at: str | None = None
    notice: str | None = None


class MeetingRejoin(ServerFrame):
    type: Literal["meeting_rejoin"] = "meeting_rejoin"
    meeting: int
    reason: Literal["worker_lost", "connection_failed"]


class MeetingMarked(ServerFrame):
    """A chapter was set in the running recording (to the host who set it)."""

    type: Literal["meeting_marked"] = "meeting_marked"
    ref: str | None = None
    meeting: int
    at: float
    label: str


MeetingEndReason = Literal["left", "removed", "ended", "replaced", "denied"]


class MeetingEnded(ServerFrame):
    type: Literal["meeting_ended"] = "meeting_ended"
    ref: str | None = None
    meeting: int
    reason: MeetingEndReason


SERVER_FRAME_TYPES: tuple[str, ...] = (
    "welcome", "pong", "subscribed", "unsubscribed", "ack", "message", "messages", "typing",
    "presence", "presence_delta", "presence_list", "resync", "unread", "notification", "removed", "member", "error",
    "meeting", "meeting_joined", "meeting_lobby", "meeting_ice_servers", "meeting_offer",
    "meeting_state", "meeting_reception", "meeting_rejoin", "meeting_ended", "meeting_marked",
    "meeting_tables",
)


def encode(frame: ServerFrame) -> str:
    """The frame as JSON text, without the fields left at None."""
    return frame.model_dump_json(exclude_none=True)
