"""The REST JSON API of rooms, messages, search, notifications and reports.

These functions only translate: they decode the request, call one selector or
service, and shape the answer. Permissions live below them — `room_access`
answers a missing room and a forbidden one with the same `not_found` — and
every refusal is a `HirfaError`, turned into JSON by `hub.api`.
Message bodies have the shape of the websocket's `message` frame
(`hub.protocol.MessageOut`), so a client parses both with one code path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from hub.auth import member_of
from hub.errors import ErrorCode, HirfaError
from hub.protected_files import protected_file_response
from hub.protocol import AttachmentOut, Author, MessageOut
from rooms import selectors, services
from rooms.attachments import attachment_upload, voice_upload
from rooms.search import message_search

router = Router(tags=["rooms"])


class ErrorBody(Schema):
    """Every refusal: a stable `code` for programs and a `message` for people."""

    code: str
    message: str


ERRORS: dict[int, type[Schema]] = {401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 422: ErrorBody}


class RoomSummaryOut(Schema):
    id: int
    kind: str
    title: str
    last_id: int
    rev: int
    read_id: int
    unread: int
    role: str


class PublicRoomOut(Schema):
    id: int
    kind: str
    title: str
    follows: bool


class RoomOut(Schema):
    id: int
    kind: str
    title: str
    topic: str
    last_id: int
    rev: int
    slow_mode_seconds: int
    follows: bool
    role: str | None
    can_moderate: bool
    read_id: int
    unread: int
    muted_until: datetime | None


class RoomRef(Schema):
    id: int
    kind: str
    title: str


class MemberEntry(Schema):
    user: Author
    role: str
    muted_until: datetime | None


class MessagesPage(Schema):
    """`more`: older messages remain (history) or later changes remain (changes)."""

    room: int
    messages: list[MessageOut]
    more: bool


class SearchHitOut(Schema):
    room: int
    room_title: str
    id: int
    excerpt: str
    author: Author | None
    created_at: datetime


class NotificationEntry(Schema):
    id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationsReadIn(Schema):
    """The notifications to mark read; all of them when `ids` is left out."""

    ids: list[int] | None = Field(default=None, max_length=500)


class CountOut(Schema):
    updated: int


class FollowOut(Schema):
    room: int
    follows: bool


class DirectIn(Schema):
    user: int = Field(ge=1)


class GroupIn(Schema):
    title: str = Field(min_length=1, max_length=120)
    members: list[int] = Field(default_factory=list, max_length=200)


class SlowModeIn(Schema):
    seconds: int = Field(ge=0, le=3600)


class SlowModeOut(Schema):
    room: int
    slow_mode_seconds: int


class ReportOut(Schema):
    id: int
    room: int
    room_title: str
    message: MessageOut
    reporter: Author
    reason: str
    status: str
    created_at: datetime


class ReportActionIn(Schema):
    action: Literal["dismiss", "delete"]


def _room_ref(room: Any) -> RoomRef:
    return RoomRef(id=room.pk, kind=room.kind, title=room.display_title())


def _report_out(report: Any) -> ReportOut:
    room = report.message.room
    reporter = selectors.author_of(report.reporter)
    assert reporter is not None
    return ReportOut(
        id=report.pk,
        room=room.pk,
        room_title=room.display_title(),
        message=selectors.message_frame(report.message),
        reporter=reporter,
        reason=report.reason,
        status=report.status,
        created_at=report.created_at,
    )


# --- rooms ---------------------------------------------------------------------


@router.get("/rooms", response={200: list[RoomSummaryOut], **ERRORS}, summary="Rooms I follow")
def rooms_list(request: HttpRequest) -> list[selectors.RoomSummary]:
    """The rooms the user follows with their unread counts, most recently active first."""
    return selectors.rooms_for_user(user=member_of(request))


@router.get("/rooms/public", response={200: list[PublicRoomOut], **ERRORS}, summary="Public rooms")
def rooms_public(
    request: HttpRequest,
    kind: Literal["guild", "region", "guild_region"] | None = None,
    q: str = Query("", max_length=120),
) -> list[PublicRoomOut]:
    """Public rooms (guilds, regions, trade × region) the user is not banned from."""
    rooms = selectors.public_rooms(user=member_of(request), kind=kind, query=q.strip())[:500]
    return [
        PublicRoomOut(id=r.pk, kind=r.kind, title=r.display_title(), follows=r.follows)  # type: ignore[attr-defined]
        for r in rooms
    ]


@router.get("/rooms/{int:room_id}", response={200: RoomOut, **ERRORS}, summary="One room")
def room_detail(request: HttpRequest, room_id: int) -> RoomOut:
    user = member_of(request)
    access = selectors.room_access(user=user, room_id=room_id)
    membership = access.membership if access.follows else None
    read_id = membership.last_read_seq if membership else 0
    return RoomOut(
        id=access.room.pk,
        kind=access.room.kind,
        title=access.room.display_title(),
        topic=access.room.topic,
        last_id=access.room.last_seq,
        rev=access.room.last_rev,
        slow_mode_seconds=access.room.slow_mode_seconds,
        follows=access.follows,
        role=membership.role if membership else None,
        can_moderate=access.can_moderate,
        read_id=read_id,
        unread=selectors.unread_count(user=user, room=access.room, read_seq=read_id)
        if membership
        else 0,
        muted_until=access.membership.muted_until if access.membership else None,
    )


@router.get(
    "/rooms/{int:room_id}/members", response={200: list[MemberEntry], **ERRORS}, summary="Members"
)
def room_members(request: HttpRequest, room_id: int) -> list[MemberEntry]:
    """The room's active members (its followers), by username."""
    members = selectors.room_members(user=member_of(request), room_id=room_id)
    return [
        MemberEntry(
            user=cast(Author, selectors.author_of(m.user)), role=m.role, muted_until=m.muted_until
        )
        for m in members
    ]


@router.get(
    "/rooms/{int:room_id}/messages",
    response={200: MessagesPage, **ERRORS},
    summary="History, or changes since a revision",
)
def room_messages(
    request: HttpRequest,
    room_id: int,
    before: int | None = Query(None, ge=1),
    limit: int = Query(50, ge=1, le=100),
    since_rev: int | None = Query(None, ge=0),
) -> MessagesPage:
    """Without `since_rev`: up to `limit` messages before id `before` (the newest when
    absent), oldest first. With `since_rev`: every message changed after that
    revision, in revision order — how a client fills a gap."""
    user = member_of(request)
    if since_rev is not None:
        messages, more = selectors.room_changes(
            user=user, room_id=room_id, since_rev=since_rev, limit=limit
        )
    else:
        messages, more = selectors.room_history(
            user=user, room_id=room_id, before=before, limit=limit
        )
    return MessagesPage(room=room_id, messages=messages, more=more)


class MessageIn(Schema):
    client_id: str = Field(min_length=1, max_length=64)
    text: str = Field("", max_length=20000)
    reply_to: int | None = Field(None, ge=1)
    attachments: list[int] = Field([], max_length=4)


@router.post(
    "/rooms/{int:room_id}/messages",
    response={200: MessageOut, 201: MessageOut, 429: ErrorBody, **ERRORS},
    summary="Send a message (idempotent on client_id)",
)
def message_send(request: HttpRequest, room_id: int, payload: MessageIn) -> Status[MessageOut]:
    """What the `send` frame does, for a client without its socket: the service worker
    sending the outbox when the link comes back with the page closed. 201 with the new
    message; 200 with the one already stored when this `client_id` was sent before (by
    this request or the socket), so sending twice is harmless."""
    result = services.message_post(
        user=member_of(request), room_id=room_id, client_id=payload.client_id, text=payload.text,
        reply_to=payload.reply_to, attachment_ids=payload.attachments,
    )
    return Status(201 if result.created else 200, result.message)


@router.post("/rooms/{int:room_id}/follow", response={200: FollowOut, **ERRORS}, summary="Follow")
def room_follow(request: HttpRequest, room_id: int) -> FollowOut:
    services.room_follow(user=member_of(request), room_id=room_id)
    return FollowOut(room=room_id, follows=True)


@router.post("/rooms/{int:room_id}/leave", response={200: FollowOut, **ERRORS}, summary="Leave")
def room_leave(request: HttpRequest, room_id: int) -> FollowOut:
    services.room_leave(user=member_of(request), room_id=room_id)
    return FollowOut(room=room_id, follows=False)


@router.post(
    "/rooms/{int:room_id}/slow-mode", response={200: SlowModeOut, **ERRORS}, summary="Set slow mode"
)
def slow_mode(request: HttpRequest, room_id: int, payload: SlowModeIn) -> SlowModeOut:
    """Moderators: allow each member one message every `seconds` (0 turns slow mode off)."""
    room = services.slow_mode_set(moderator=member_of(request), room_id=room_id, seconds=payload.seconds)
    return SlowModeOut(room=room.pk, slow_mode_seconds=room.slow_mode_seconds)


@router.post("/rooms/direct", response={200: RoomRef, **ERRORS}, summary="Open a direct room")
def direct_open(request: HttpRequest, payload: DirectIn) -> RoomRef:
    """The one direct room between the user and `user`, created when missing."""
    return _room_ref(services.direct_room_open(user=member_of(request), other_id=payload.user))


@router.post("/rooms/groups", response={201: RoomRef, 429: ErrorBody, **ERRORS}, summary="Create a private group")
def group_create(request: HttpRequest, payload: GroupIn) -> Status[RoomRef]:
    room = services.group_create(
        user=member_of(request), title=payload.title, member_ids=payload.members
    )
    return Status(201, _room_ref(room))


@router.post(
    "/rooms/{int:room_id}/attachments",
    response={201: AttachmentOut, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 429: ErrorBody, **ERRORS},
    summary="Upload an image or a voice message",
)
def attachment_create(
    request: HttpRequest,
    room_id: int,
    file: UploadedFile = File(...),
    kind: Literal["image", "voice"] = Form("image"),
) -> Status[AttachmentOut]:
    """Upload one image (JPEG, PNG, WebP or GIF) or, with `kind=voice`, one voice
    recording (Opus in WebM or Ogg, AAC in MP4; checked by decoding it, whatever its
    declared type) for a message the user is about to send; its `id` goes in the `send`
    frame's `attachments`."""
    upload = voice_upload if kind == "voice" else attachment_upload
    attachment = upload(user=member_of(request), room_id=room_id, upload=file)
    return Status(201, selectors.attachment_out(attachment, listens=()))


# --- search --------------------------------------------------------------------


@router.get("/search", response={200: list[SearchHitOut], 400: ErrorBody, 413: ErrorBody, **ERRORS}, summary="Search messages")
def search(
    request: HttpRequest,
    q: str = Query(..., max_length=200),
    room: int | None = Query(None, ge=1),
    limit: int = Query(50, ge=1, le=100),
) -> list[SearchHitOut]:
    """Messages matching `q` in the rooms the user may read (or in `room` only), best first."""
    hits = message_search(user=member_of(request), query=q, room_id=room, limit=limit)
    return [
        SearchHitOut(
            room=h.room_id,
            room_title=h.room_title,
            id=h.id,
            excerpt=h.excerpt,
            author=h.author,
            created_at=h.created_at,
        )
        for h in hits
    ]


# --- notifications -------------------------------------------------------------


@router.get("/notifications", response={200: list[NotificationEntry], **ERRORS}, summary="My notifications")
def notifications(
    request: HttpRequest,
    unread: bool = False,
    limit: int = Query(50, ge=1, le=200),
) -> list[NotificationEntry]:
    notes = selectors.notifications_recent(user=member_of(request), unread_only=unread, limit=limit)
    return [
        NotificationEntry(
            id=n.pk, kind=n.kind, data=n.data, created_at=n.created_at, read_at=n.read_at
        )
        for n in notes
    ]


@router.post("/notifications/read", response={200: CountOut, **ERRORS}, summary="Mark notifications read")
def notifications_read(request: HttpRequest, payload: NotificationsReadIn) -> CountOut:
    updated = services.notifications_mark_read(user=member_of(request), ids=payload.ids)
    return CountOut(updated=updated)


# --- moderation ----------------------------------------------------------------


@router.get("/reports", response={200: list[ReportOut], **ERRORS}, summary="Open reports I moderate")
def reports(request: HttpRequest) -> list[ReportOut]:
    """Open reports of messages in the rooms the user moderates (empty for others)."""
    return [_report_out(r) for r in selectors.reports_open(moderator=member_of(request))]


@router.post(
    "/reports/{int:report_id}", response={200: ReportOut, **ERRORS}, summary="Resolve a report"
)
def report_resolve(request: HttpRequest, report_id: int, payload: ReportActionIn) -> ReportOut:
    """`dismiss` closes the report; `delete` deletes the message and closes every report of it."""
    report = services.report_resolve(
        moderator=member_of(request), report_id=report_id, action=payload.action
    )
    return _report_out(report)


@router.post(
    "/rooms/attachments/{int:attachment_id}/listened",
    response={204: None, 400: ErrorBody, **ERRORS},
    summary="Mark a voice message played",
)
def voice_listened(request: HttpRequest, attachment_id: int) -> Status[None]:
    """The user played this voice message: its author sees it (the message is published
    again the first time). Idempotent; the author's own plays are not marked.
    (Declared before `attachment_file`, whose `{variant}` would take its path.)"""
    services.voice_listen(user=member_of(request), attachment_id=attachment_id)
    return Status(204, None)


@router.get(
    "/rooms/attachments/{int:attachment_id}/{variant}",
    response={200: None, **ERRORS},
    url_name="attachment_file",
    summary="An image or a voice message of a message",
)
def attachment_file(
    request: HttpRequest, attachment_id: int, variant: Literal["image", "thumb", "audio"]
) -> HttpResponse | FileResponse:
    """The image (or its thumbnail), or the recording (`audio`), for a reader of its room:
    404 `not_found` for anyone else, private rooms' files included. Never kept by a
    shared cache."""
    attachment = selectors.attachment_for_reader(user=member_of(request), attachment_id=attachment_id)
    file = {"image": attachment.image, "thumb": attachment.thumbnail, "audio": attachment.audio}[variant]
    if not file:
        raise HirfaError(ErrorCode.NOT_FOUND, _("Not found."))
    return protected_file_response(
        file,
        internal_prefix=settings.HIRFA_ACCEL_MEDIA_PREFIX,
        content_type=attachment.content_type,  # the thumbnail is in the image's format
        # An attachment never changes: a member's own browser may keep it.
        cache_control="private, max-age=604800, immutable",
    )

