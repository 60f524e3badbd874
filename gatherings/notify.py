"""Telling members about their gatherings: a hub notification (kept, and pushed live on
commit through `rooms.services.notification_create`) and an e-mail job, written in
the caller's transaction. Texts are in each member's own language."""

from __future__ import annotations

from datetime import datetime

from django.utils import translation
from django.utils.translation import gettext as _

from gatherings import recurrence
from gatherings.models import Gathering
from hub.bidi import bidi_isolate
from hub.models import Notification, User
from rooms.services import notification_create

#: Notification kinds (registered in `gatherings.hooks`).
REMINDER = "reminder"
GATHERING = "gathering"


def _when(gathering: Gathering, start: datetime) -> str:
    local = start.astimezone(recurrence.zone(gathering.tz))
    return f"{local:%Y-%m-%d %H:%M} ({gathering.tz})"


def _language(user: User) -> str:
    return user.preferred_language or translation.get_language() or "fr"


def member_notify(
    *,
    user: User,
    gathering: Gathering,
    event: str,
    original_start: datetime | None,
    start: datetime | None,
    kind: str = GATHERING,
    reminder_id: int | None = None,
    extra: dict[str, object] | None = None,
) -> Notification:
    """One notification and one e-mail job for `user` about `gathering`.

    `event` is one of: reminder, cancelled, occurrence_cancelled, moved, changed, promoted.
    Must run inside the transaction of the write it reports.
    """
    from gatherings.tasks import email_send

    data: dict[str, object] = {
        "event": event,
        "gathering": gathering.pk,
        "title": gathering.title,
        "room": gathering.room_id,
    }
    if original_start is not None:
        data["occurrence"] = recurrence.occurrence_key(original_start)
    if start is not None:
        data["start"] = start.isoformat()
    data.update(extra or {})
    # Its own e-mail below (when he has an address): no digest carries it again.
    note = notification_create(user=user, kind=kind, data=data, emailed=bool(user.email))
    with translation.override(_language(user)):
        when = _when(gathering, start) if start is not None else ""
        subjects = {
            "reminder": _("Reminder: %(title)s at %(when)s"),
            "cancelled": _("Cancelled: %(title)s"),
            "occurrence_cancelled": _("Cancelled on %(when)s: %(title)s"),
            "moved": _("Moved to %(when)s: %(title)s"),
            "changed": _("Changed: %(title)s"),
            "promoted": _("You have a seat: %(title)s at %(when)s"),
        }
        subject = subjects.get(event, _("Gathering: %(title)s")) % {
            "title": bidi_isolate(gathering.title),
            "when": when,
        }
        body = "\n\n".join(
            part
            for part in (
                subject,
                gathering.agenda,
                _("See the gathering on Hirfa: /gatherings/%(id)d/") % {"id": gathering.pk},
            )
            if part
        )
    email_send.enqueue(to=user.email or "", subject=subject, body=body, reminder_id=reminder_id)
    return note
