"""Reads that only the web pages need: the moderators' queue.

They follow `rooms.selectors` (the canonical access rule is
`rooms.selectors.user_moderates`) and could move there; they live here so the
pages' needs do not reshape the chat domain's read API.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from hub.models import ModeratorScope, User
from rooms.models import MemberRole, Membership, Report, Room, RoomKind
from rooms.selectors import user_moderates

QUEUE_MAX = 200


@dataclass(frozen=True)
class QueuedReport:
    """One open report, with what a moderator needs to decide on it."""

    id: int
    room_id: int
    room_title: str
    message_id: int
    message_text: str
    message_deleted: bool
    author_name: str
    reporter_name: str
    reason: str
    created_at: object


def _candidate_rooms(user: User) -> Q:
    """A filter on rooms that `user` may moderate; each is checked again with `user_moderates`."""
    if user.is_superuser or user.is_staff:
        return Q()
    own = Membership.objects.filter(
        user=user, role__in=[MemberRole.MODERATOR, MemberRole.OWNER]
    ).values("room_id")
    q = Q(pk__in=own)
    public = [RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION]
    for scope in ModeratorScope.objects.filter(user=user):
        if scope.trade_id and scope.wilaya_id:
            q |= Q(kind=RoomKind.GUILD_REGION, trade_id=scope.trade_id, wilaya_id=scope.wilaya_id)
        elif scope.trade_id:
            q |= Q(kind__in=public, trade_id=scope.trade_id)
        elif scope.wilaya_id:
            q |= Q(kind__in=public, wilaya_id=scope.wilaya_id)
    return q


def user_moderates_any(*, user: User) -> bool:
    """Whether `user` moderates at least one room (so the moderation page is his)."""
    if not user.is_authenticated:
        return False
    if user.is_superuser or user.is_staff:
        return True
    return (
        ModeratorScope.objects.filter(user=user).exists()
        or Membership.objects.filter(
            user=user, role__in=[MemberRole.MODERATOR, MemberRole.OWNER]
        ).exists()
    )


def reports_open(*, moderator: User) -> list[QueuedReport]:
    """Open reports in the rooms `moderator` moderates, oldest first (at most QUEUE_MAX).

    Every row passes `rooms.selectors.user_moderates`, the same rule the
    services apply when the moderator acts on it.
    """
    rooms = Room.objects.filter(_candidate_rooms(moderator)).values("pk")
    reports = (
        Report.objects.filter(status=Report.Status.OPEN, message__room__in=rooms)
        .select_related(
            "message", "message__room", "message__room__trade", "message__room__wilaya",
            "message__author", "message__author__profile", "reporter", "reporter__profile",
        )
        .order_by("created_at", "id")[:QUEUE_MAX]
    )
    allowed: dict[int, bool] = {}
    queue: list[QueuedReport] = []
    for report in reports:
        room = report.message.room
        if room.pk not in allowed:
            membership = Membership.objects.filter(room=room, user=moderator).first()
            allowed[room.pk] = user_moderates(user=moderator, room=room, membership=membership)
        if not allowed[room.pk]:
            continue
        message = report.message
        queue.append(
            QueuedReport(
                id=report.pk,
                room_id=room.pk,
                room_title=room.display_title(),
                message_id=message.seq,
                message_text=message.text if message.deleted_at is None else "",
                message_deleted=message.deleted_at is not None,
                author_name=message.author.display_name if message.author else "",
                reporter_name=report.reporter.display_name,
                reason=report.reason,
                created_at=report.created_at,
            )
        )
    return queue
