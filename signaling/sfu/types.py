"""Value types of the SFU: enums for states, frozen dataclasses for results, errors.

Nothing here imports aiortc, so the signaling bridge can use these types
without loading the media stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MediaKind(enum.StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class TrackSource(enum.StrEnum):
    """What a published track shows; a participant publishes each at most once."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"
    #: A second camera: a masterclass presenter's hands at work (a camera like the first).
    CAMERA2 = "camera2"

    @property
    def kind(self) -> MediaKind:
        return MediaKind.AUDIO if self is TrackSource.MICROPHONE else MediaKind.VIDEO


class VideoCodec(enum.StrEnum):
    """The one video codec of a meeting."""

    VP8 = "VP8"
    H264 = "H264"  # constrained baseline, packetization-mode 1


class SlotDirection(enum.StrEnum):
    """Direction of an m-line as seen from the participant."""

    PUBLISH = "publish"  # the participant sends, the server receives
    SUBSCRIBE = "subscribe"  # the server sends, the participant receives


class ParticipantState(enum.StrEnum):
    NEW = "new"  # joined, no answer applied yet
    CONNECTING = "connecting"
    CONNECTED = "connected"
    #: Was connected; nothing came from him for a few seconds (his network is changing,
    #: or gone): his tile shows "reconnecting". Back to CONNECTED on his next packet.
    DISCONNECTED = "disconnected"
    FAILED = "failed"  # ICE/DTLS failed; the bridge should restart or remove
    CLOSED = "closed"


class NegotiationState(enum.StrEnum):
    STABLE = "stable"
    OFFER_SENT = "offer_sent"  # waiting for the participant's answer


@dataclass(frozen=True, slots=True)
class TrackSlot:
    """One m-line of a participant's peer connection.

    For ``PUBLISH`` slots ``publisher_id`` is the participant himself and the
    client attaches its ``source`` track to the transceiver with this ``mid``.
    For ``SUBSCRIBE`` slots it names whose ``source`` arrives on that mid;
    ``source`` is ``None`` for an idle (inactive) subscription slot.
    """

    mid: str
    kind: MediaKind
    direction: SlotDirection
    publisher_id: str | None
    source: TrackSource | None


@dataclass(frozen=True, slots=True)
class Offer:
    """An SDP offer from the server and the meaning of each of its m-lines."""

    sdp: str
    revision: int
    slots: tuple[TrackSlot, ...]


class VideoQuality(enum.StrEnum):
    """What a subscriber receives of one video: a simulcast layer, or nothing for now."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    #: Suspended by the allocator: his connection cannot carry it now.
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class ReceivedVideo:
    publisher_id: str
    source: TrackSource
    quality: VideoQuality


@dataclass(frozen=True, slots=True)
class Reception:
    """What one subscriber's connection carries now, as the allocator decided.

    ``audio_only``: not even one video fits beside the audio; every video is
    paused until his estimate clearly allows one (or he asks to retry).
    """

    audio_only: bool
    videos: tuple[ReceivedVideo, ...]
    #: His downlink estimate (bit/s) when this was decided.
    estimate: int
    pinned: str | None = None
    #: With slots (``SfuConfig.audio_slots``/``video_slots``): every subscribe m-line and
    #: whom it carries now (``publisher_id``/``source`` ``None``: empty); ``()`` without slots.
    slots: tuple[TrackSlot, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishedTrack:
    participant_id: str
    source: TrackSource
    muted_by_moderator: bool
    frames_received: int
    keyframe_requests_sent: int


@dataclass(frozen=True, slots=True)
class ParticipantSnapshot:
    participant_id: str
    state: ParticipantState
    published: tuple[PublishedTrack, ...]


@dataclass(frozen=True, slots=True)
class MeetingSnapshot:
    meeting_id: str
    video_codec: VideoCodec
    participants: tuple[ParticipantSnapshot, ...]
    active_speaker: str | None


class SfuError(Exception):
    """Base class of every error the SFU raises on purpose."""


class InvalidSfuState(SfuError):
    """The call is not allowed in the object's current state."""


class UnknownParticipant(SfuError):
    """No participant with that id in that meeting."""


class UnknownMeeting(SfuError):
    """No meeting with that id on this SFU."""


class BadSessionDescription(SfuError):
    """An answer or candidate the peer connection refused."""


class NoFreePort(SfuError, OSError):
    """No UDP port of the configured range is free for a peer's media socket (an OSError
    too, as aiortc knows a failed bind)."""


class TooManyTracks(SfuError):
    """The participant already publishes that source or the meeting's track limit."""
