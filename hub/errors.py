"""One error vocabulary for the websocket, the REST API and the services."""

from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    # Frame-level: the frame is refused, the socket stays open.
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    HANDSHAKE_REQUIRED = "handshake_required"
    UNSUPPORTED_VERSION = "unsupported_version"
    # Domain: the action is refused, the socket stays open.
    NOT_FOUND = "not_found"  # also "not allowed to read": the two are one answer
    FORBIDDEN = "forbidden"  # readable, but this action is not yours to take
    MUTED = "muted"
    RATE_LIMITED = "rate_limited"
    SLOW_MODE = "slow_mode"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    INVALID = "invalid"
    CONFLICT = "conflict"
    # Meetings (signaling/): the frame is refused, the meeting goes on.
    INVALID_SDP = "invalid_sdp"
    TOO_MANY_TRACKS = "too_many_tracks"
    NO_SESSION = "no_session"
    MEETING_LOCKED = "meeting_locked"
    NOT_ALLOWED_TO_SPEAK = "not_allowed_to_speak"  # a masterclass's listener not (yet) let speak
    PRESENTERS_ONLY = "presenters_only"  # a second camera: a masterclass's presenters and hosts only
    SFU_UNAVAILABLE = "sfu_unavailable"
    # What one member may hold at once (sockets, meetings, groups a day): refused, nothing lost.
    LIMIT_REACHED = "limit_reached"
    INTERNAL_ERROR = "internal_error"


class CloseCode(enum.IntEnum):
    """Websocket close codes the server uses (documented in docs/protocol.md)."""

    GOING_AWAY = 1001
    SERVICE_RESTART = 1012
    HANDSHAKE_FAILED = 4000
    UNSUPPORTED_VERSION = 4002
    UNAUTHENTICATED = 4003
    ABUSE = 4008
    TOO_MANY_SOCKETS = 4009
    TOO_SLOW_RESUME = 4010
    BUSY = 4013


class HirfaError(Exception):
    """A refused action: a code for programs, a message for people, optional details."""

    def __init__(
        self, code: ErrorCode, message: str = "", *, retry_after: float | None = None, **details: object
    ) -> None:
        super().__init__(str(message or code.value))
        self.code = code
        self.message = str(message or code.value)
        self.retry_after = retry_after
        self.details = details

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            data["retry_after"] = round(self.retry_after, 2)
        data.update(self.details)
        return data


HTTP_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.MUTED: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.SLOW_MODE: 429,
    ErrorCode.TOO_LONG: 413,
    ErrorCode.FRAME_TOO_LARGE: 413,
    ErrorCode.CONFLICT: 409,
    ErrorCode.MEETING_LOCKED: 403,
    ErrorCode.NOT_ALLOWED_TO_SPEAK: 403,
    ErrorCode.PRESENTERS_ONLY: 403,
    ErrorCode.SFU_UNAVAILABLE: 503,
    ErrorCode.LIMIT_REACHED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
}


def http_status(code: ErrorCode) -> int:
    return HTTP_STATUS.get(code, 400)
