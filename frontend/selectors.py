"""Shapes that only the web pages need, built from `rooms.selectors`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse
from django.utils.translation import gettext as _

from hub.models import Notification, User
from hub.push import PushText
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


# --- the notification centre ---------------------------------------------------------

NOTIFICATIONS_SHOWN = 50


@dataclass(frozen=True)
class NotificationItem:
    """One notification as the centre lists it: a sentence and where it leads."""

    id: int
    kind: str
    text: str
    href: str
    created_at: datetime
    read: bool


def _notification_text_and_href(kind: str, data: dict[str, object]) -> tuple[str, str]:
    """A translated sentence and a link for a stored notification (its data is what its writer kept)."""
    def number(key: str) -> int:
        value = data.get(key)
        return value if isinstance(value, int) else 0

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    if kind == "mention" and number("room"):
        href = reverse("room", args=[number("room")]) + (f"#m-{number('id')}" if number("id") else "")
        return _("%(name)s mentioned you in %(room)s: %(excerpt)s") % {
            "name": text("by"), "room": text("room_title"), "excerpt": text("excerpt"),
        }, href
    if kind in ("gathering", "reminder") and number("gathering"):
        href = reverse("gathering_detail", args=[number("gathering")])
        events = {
            "reminder": _("Reminder: %(title)s"),
            "cancelled": _("Cancelled: %(title)s"),
            "occurrence_cancelled": _("One session cancelled: %(title)s"),
            "moved": _("Moved: %(title)s"),
            "changed": _("Changed: %(title)s"),
            "promoted": _("You have a seat: %(title)s"),
        }
        return events.get(text("event"), _("Gathering: %(title)s")) % {"title": text("title")}, href
    if kind == "new_piece" and number("product"):
        return _("%(name)s published a new piece: %(title)s") % {"name": text("by"), "title": text("title")}, reverse(
            "registry_product", args=[number("product")]
        )
    if kind == "enquiry" and number("room"):
        return _("%(name)s asked about %(title)s: %(excerpt)s") % {
            "name": text("by"), "title": text("title") or text("room_title"), "excerpt": text("excerpt"),
        }, reverse("room", args=[number("room")])
    if kind == "exchange":
        return _("%(name)s posted raw materials that match yours.") % {"name": text("author_name")}, reverse(
            "registry_exchange"
        )
    if kind == "system" and text("event") == "verification":
        if text("status") == "verified":
            return _("Your artisan card is verified."), reverse("registry_me")
        return _("Your artisan card was not verified."), reverse("registry_me")
    if kind == "report":
        return _("A message was reported."), reverse("moderation")
    return _("Something new on Hirfa."), reverse("notifications")


def push_text(kind: str, data: dict[str, object]) -> PushText:
    """How a notification reads on a device's lock screen (in the active language)."""
    text, href = _notification_text_and_href(kind, data)
    return PushText(title=_("Hirfa"), body=text, url=href)


def notifications_recent(*, user: User, limit: int = NOTIFICATIONS_SHOWN) -> list[NotificationItem]:
    """`user`'s newest notifications, newest first; nobody else's."""
    items = []
    for note in Notification.objects.filter(user=user).order_by("-id")[:limit]:
        text, href = _notification_text_and_href(note.kind, note.data if isinstance(note.data, dict) else {})
        items.append(
            NotificationItem(
                id=note.pk, kind=note.kind, text=text, href=href,
                created_at=note.created_at, read=note.read_at is not None,
            )
        )
    return items


def notification_target(*, user: User, notification_id: int) -> str | None:
    """Where `user`'s notification leads; None when it is not his (or does not exist)."""
    note = Notification.objects.filter(user=user, pk=notification_id).first()
    if note is None:
        return None
    return _notification_text_and_href(note.kind, note.data if isinstance(note.data, dict) else {})[1]


def notifications_unread_count(*, user: User) -> int:
    """How many of `user`'s notifications are unread."""
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
