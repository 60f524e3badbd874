"""Selective forwarding unit for live meetings (never imports Django).

Each participant has one peer connection to a server-side aiortc peer; every
published track is forwarded to the other participants as encoded frames,
without decoding or re-encoding. ``signaling/consumers.py`` is the one bridge
between the socket protocol and this package.

Public interface: :class:`Sfu` (meetings of a process), :class:`Meeting`
(participants, moderation, active speaker), :class:`Participant`
(publish/unpublish, server-made offers, answers, candidates), the value types
and errors of :mod:`signaling.sfu.types`. aiortc internals are confined to
:mod:`signaling.sfu.aiortc_hooks`.
"""

from .config import SfuConfig
from .meeting import Meeting, Participant
from .pipe import KEY_SIZE as PIPE_KEY_SIZE
from .server import Sfu
from .types import (
    BadSessionDescription,
    InvalidSfuState,
    MediaKind,
    MeetingSnapshot,
    NegotiationState,
    NoFreePort,
    Offer,
    ParticipantSnapshot,
    ParticipantState,
    PublishedTrack,
    ReceivedVideo,
    Reception,
    SfuError,
    SlotDirection,
    TooManyTracks,
    TrackSlot,
    TrackSource,
    UnknownMeeting,
    UnknownParticipant,
    VideoCodec,
    VideoQuality,
)

__all__ = [
    "PIPE_KEY_SIZE",
    "BadSessionDescription",
    "InvalidSfuState",
    "MediaKind",
    "Meeting",
    "MeetingSnapshot",
    "NegotiationState",
    "NoFreePort",
    "Offer",
    "Participant",
    "ParticipantSnapshot",
    "ParticipantState",
    "PublishedTrack",
    "ReceivedVideo",
    "Reception",
    "Sfu",
    "SfuConfig",
    "SfuError",
    "SlotDirection",
    "TooManyTracks",
    "TrackSlot",
    "TrackSource",
    "UnknownMeeting",
    "UnknownParticipant",
    "VideoCodec",
    "VideoQuality",
]
