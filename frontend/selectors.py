"""Shapes that only the web pages need, built from `rooms.selectors`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.models import User
from rooms import selectors as room_selectors

QUEUE_MAX = 200
user_moderates_any = room_selectors.user_moderates_any


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
    created_at: datetime


def reports_open(*, moderator: User) -> list[QueuedReport]:
    """The moderators' queue: open reports in the rooms `moderator` moderates, oldest first."""
    queue = []
    for report in room_selectors.reports_open(moderator=moderator, limit=QUEUE_MAX):
        message = report.message
        deleted = message.deleted_at is not None
        queue.append(
            QueuedReport(
                id=report.pk,
                room_id=message.room_id,
                room_title=message.room.display_title(),
                message_id=message.seq,
                message_text="" if deleted else message.text,
                message_deleted=deleted,
                author_name=message.author.display_name if message.author else "",
                reporter_name=report.reporter.display_name,
                reason=report.reason,
                created_at=report.created_at,
            )
        )
    return queue
