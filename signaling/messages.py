"""What the socket and the meeting engine say to each other: frozen models, like the
socket's frames in `hub/protocol.py`.

Commands go from a hub socket to the engine holding its meeting (`signaling/engine.py`);
events come back to the socket's `reply_to` address. In the embedded default both are
in one process and pass as objects; to and from a ``hirfa sfu`` worker they cross the
channel layer as dicts and are validated on arrival (`command_from`, `event_from`):
a field that is missing or of the wrong type is refused there, never guessed. A field
this version does not know is ignored (also inside the participants a worker sends): in a
rolling deploy a hub or worker one version ahead may add fields, and the older side must
still read what it knows rather than drop a join or a meeting's state. (The socket's frames
from clients, `hub/protocol.py`, still refuse unknown fields.)

An engine refusal is an `EngineError` with an error code and an English message marked
for translation; the socket translates it into its member's language.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from hub.protocol import Author, MeetingParticipant

Source = Literal["mic", "camera", "screen", "camera2"]
Codec = Literal["vp8", "h264"]


class _Message(BaseModel):
    # Unknown fields ignored: a newer hub's or worker's (see the module's docstring).
    model_config = ConfigDict(extra="ignore", frozen=True)


def _known_fields(model: type[BaseModel], value: Any) -> Any:
    """``value`` without the keys ``model`` (or a model it nests) does not know, when a dict:
    `hub.protocol`'s frames refuse unknown fields, which a newer worker may send."""
    if not isinstance(value, dict):
        return value
    kept = {}
    for name, field in model.model_fields.items():
        if name in value:
            inner = field.annotation
            nested = isinstance(inner, type) and issubclass(inner, BaseModel)
            kept[name] = _known_fields(inner, value[name]) if nested else value[name]  # type: ignore[arg-type]
    return kept


def _tolerant(model: type[BaseModel]) -> BeforeValidator:
    return BeforeValidator(lambda value: _known_fields(model, value))


# --- commands: socket -> engine ----------------------------------------------------------


class _Command(_Message):
    meeting: int
    room: int
    user: int
    #: Where the engine answers (the socket's channel name, or a local address).
    reply_to: str
    ref: str | None = None


class Join(_Command):
    """Join (or rejoin: a new server-side peer for the same member)."""

    op: Literal["join"] = "join"
    name: str
    host: bool = False
    #: The lobby is on and the member is no host: he waits to be admitted.
    must_wait: bool = False
    locked: bool = False
    lobby: bool = False
    video_codec: Codec = "vp8"
    receive_video: bool = True
    #: His video slots, when fewer than the server's (a phone's screen): None, the server's.
    video_slots: int | None = Field(default=None, ge=1)
    #: Sources to publish on each new server-side peer.
    publish: tuple[Source, ...] = ()
    #: False: nothing of his is written while the meeting records.
    recorded: bool = True
    #: The meeting's running recording (from the database): an engine that holds the
    #: meeting without recording it (a new worker) starts it.
    recording: int | None = None
    #: A masterclass's presenter: he speaks and lets listeners speak.
    presenter: bool = False
    #: A masterclass's listener: he publishes nothing until a presenter or host lets him.
    listener: bool = False
    #: The meeting is a masterclass's: its presenters and hosts may show a second camera.
    masterclass: bool = False
    #: Keep his server-side peer if it still lives (an ICE restart on it) instead of a new one.
    resume: bool = False


class Leave(_Command):
    op: Literal["leave"] = "leave"


class Answer(_Command):
    op: Literal["answer"] = "answer"
    sdp: str
    revision: int


class Candidate(_Command):
    op: Literal["candidate"] = "candidate"
    candidate: str | None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class _SourceCommand(_Command):
    """About one of the member's own sources."""

    source: Source


class Publish(_SourceCommand):
    op: Literal["publish"] = "publish"


class Unpublish(_SourceCommand):
    op: Literal["unpublish"] = "unpublish"


class MuteSelf(_SourceCommand):
    op: Literal["mute_self"] = "mute_self"
    muted: bool


class Hand(_Command):
    op: Literal["hand"] = "hand"
    up: bool


class Receive(_Command):
    op: Literal["receive"] = "receive"
    video: bool


class _TargetCommand(_Command):
    """A host's act on another participant (`target`, a user id)."""

    target: int


class HostMute(_TargetCommand):
    op: Literal["host_mute"] = "host_mute"
    source: Source
    muted: bool


class Remove(_TargetCommand):
    op: Literal["remove"] = "remove"


class Speak(_TargetCommand):
    """A presenter or host lets a masterclass's listener speak (``allowed``) or stops him."""

    op: Literal["speak"] = "speak"
    allowed: bool


class Admit(_TargetCommand):
    op: Literal["admit"] = "admit"


class Deny(_TargetCommand):
    op: Literal["deny"] = "deny"


class Settings(_Command):
    op: Literal["settings"] = "settings"
    locked: bool | None = None
    lobby: bool | None = None


class End(_Command):
    op: Literal["end"] = "end"


class Pin(_Command):
    """Give one participant's video the first claim on the member's bandwidth (None: unpin)."""

    op: Literal["pin"] = "pin"
    target: int | None


class RetryVideo(_Command):
    """The member tapped "try video again" while audio-only for his connection."""

    op: Literal["retry_video"] = "retry_video"


class Record(_Command):
    """Start recording (``recording``: its id in the database) or stop (None)."""

    op: Literal["record"] = "record"
    recording: int | None


class Recorded(_Command):
    """Whether the member may be recorded."""

    op: Literal["recorded"] = "recorded"
    recorded: bool


Command = Annotated[
    Join | Leave | Answer | Candidate | Publish | Unpublish | MuteSelf | Hand | Receive
    | HostMute | Remove | Admit | Deny | Settings | End | Pin | RetryVideo | Record | Recorded | Speak,
    Field(discriminator="op"),
]
_commands: TypeAdapter[Command] = TypeAdapter(Command)


def command_from(data: Any) -> Command:
    """A command received over the channel layer; raises pydantic's `ValidationError`."""
    return _commands.validate_python(data)


# --- events: engine -> socket ------------------------------------------------------------


class _Event(_Message):
    #: The meeting the event is about (the engine stamps it; None from an engine before it did).
    meeting: int | None = None


class _Reply(_Event):
    """The answer to one command (its `ref`)."""

    ref: str | None = None


class Joined(_Reply):
    kind: Literal["joined"] = "joined"
    host: bool
    #: His peer was kept (an ICE restart on it), not replaced.
    resumed: bool = False


class Lobby(_Reply):
    kind: Literal["lobby"] = "lobby"


class OfferLine(_Message):
    """One m-line of a server offer (`hub.protocol.MLine` on the socket)."""

    mid: str
    kind: Literal["audio", "video"]
    direction: Literal["publish", "subscribe"]
    user: int | None
    source: Source | None


class Offer(_Event):
    kind: Literal["offer"] = "offer"
    sdp: str
    revision: int
    mlines: tuple[OfferLine, ...]


class EngineError(_Reply):
    """A refused command: `code` is an `ErrorCode` value, `message` an English msgid."""

    kind: Literal["error"] = "error"
    code: str
    message: str


class Rejoin(_Event):
    """The member's media session is gone (his peer failed); he should join again."""

    kind: Literal["rejoin"] = "rejoin"
    reason: Literal["connection_failed"]


class Ended(_Event):
    """The member is out of the meeting."""

    kind: Literal["ended"] = "ended"
    reason: Literal["left", "removed", "ended", "replaced", "denied"]


class ReceivedVideo(_Message):
    """One video the member subscribes to and what of it his connection carries."""

    user: int
    source: Source
    quality: Literal["low", "medium", "high", "paused"]


class Reception(_Event):
    """What the member's own connection carries now (the SFU's allocator decided)."""

    kind: Literal["reception"] = "reception"
    audio_only: bool
    videos: tuple[ReceivedVideo, ...]
    estimate_kbps: int = Field(ge=0)
    pinned: int | None = None
    #: With slots: each subscribe m-line and whom it carries now (empty without slots).
    slots: tuple[OfferLine, ...] = ()


Event = Annotated[
    Joined | Lobby | Offer | EngineError | Rejoin | Ended | Reception, Field(discriminator="kind")
]
_events: TypeAdapter[Event] = TypeAdapter(Event)


def event_from(data: Any) -> Event:
    """An event received over the channel layer; raises pydantic's `ValidationError`."""
    return _events.validate_python(data)


# --- a worker's announcement (Redis hash ``hirfa:sfu:workers``) ---------------------------


class WorkerInfo(_Message):
    """What a ``hirfa sfu`` worker announces at each heartbeat."""

    channel: str
    #: Participants on it (what placement balances).
    load: int = Field(ge=0)
    #: UDP media ports its peers hold open (its health: the range is finite).
    ports: int = Field(default=0, ge=0)
    at: float


# --- between workers holding parts of one meeting (`signaling/spread.py`) ----------------


class _Peer(_Message):
    meeting: int
    #: The worker that sends it.
    worker: str


class PipeOpen(_Peer):
    """The sender holds participants of ``meeting`` now: pipe your tracks of it to its pipe
    address (``host``, ``port``; `signaling/sfu/pipe.py`) and take its tracks from there,
    every datagram both ways tagged under ``key`` (32 random bytes, hex: the pipe's secret,
    drawn by the sender; when both drew one at once, both keep the lesser). None: a worker
    from before pipes were authenticated, which is not piped with."""

    kind: Literal["pipe_open"] = "pipe_open"
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class PipeClose(_Peer):
    """The sender holds nobody of ``meeting`` any more: stop piping to it, drop its part."""

    kind: Literal["pipe_close"] = "pipe_close"


class PartState(_Peer):
    """The sender's participants of ``meeting``, and those waiting in its lobby there (each
    worker publishes the whole meeting's state)."""

    kind: Literal["part_state"] = "part_state"
    participants: list[Annotated[MeetingParticipant, _tolerant(MeetingParticipant)]] = Field(max_length=1000)
    waiting: list[Annotated[Author, _tolerant(Author)]] = Field(default_factory=list, max_length=1000)


#: A host's (or a masterclass presenter's) acts that reach the participants on the other
#: workers of a spread meeting.
HostCommand = Annotated[HostMute | Remove | Admit | Deny | Settings | End | Speak, Field(discriminator="op")]


class PeerCommand(_Peer):
    """A host on the sender's worker acted (``command``, as his socket sent it, his right
    checked there): do it on the receiver's part of ``meeting`` — on the participant (or
    lobby waiter) it names, who is there, or, for `Settings` and `End`, on every one."""

    kind: Literal["command"] = "command"
    command: HostCommand


PeerMessage = Annotated[PipeOpen | PipeClose | PartState | PeerCommand, Field(discriminator="kind")]
_peer_messages: TypeAdapter[PeerMessage] = TypeAdapter(PeerMessage)


def peer_message_from(data: Any) -> PeerMessage:
    """A worker's message to another over the channel layer; raises pydantic's `ValidationError`."""
    return _peer_messages.validate_python(data)
