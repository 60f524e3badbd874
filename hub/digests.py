"""E-mail digests of what a member missed: his notifications still unread some time after
they came, in one e-mail in his language, sent by the job worker.

Each member chooses when (`DigestPreference.after_hours`: never, after an hour, after a
day; a day when he never chose). A notification goes out by e-mail at most once: the
digest marks `Notification.emailed_at` in the transaction that sends, with the member's
row locked (`SELECT ... FOR UPDATE SKIP LOCKED`), so two workers never both send it. A
member gets at most one digest per `after_hours`; notifications that e-mail themselves
(gatherings) are created already marked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from hub.models import DigestPreference, Notification, User
from hub.push import notification_text

log = logging.getLogger(__name__)

#: Lines listed in one e-mail; the rest is counted ("and 12 more").
DIGEST_LINES_MAX = 20
#: Members looked at per run (the next run takes the others).
DIGEST_MEMBERS_PER_RUN = 500


def digest_after(user: User) -> int:
    """The hours `user`'s notifications wait unread before a digest (0: never)."""
    preference = DigestPreference.objects.filter(user=user).first()
    return DigestPreference.DEFAULT_AFTER_HOURS if preference is None else preference.after_hours


def digest_preference_set(*, user: User, after_hours: int) -> DigestPreference:
    """Set when `user` wants his unread notifications e-mailed; ValueError for an unknown choice."""
    if after_hours not in DigestPreference.After.values:
        raise ValueError(f"not a digest choice: {after_hours!r}")
    preference, _created = DigestPreference.objects.update_or_create(
        user=user, defaults={"after_hours": after_hours}
    )
    return preference


def _waiting(*, now: datetime, hours: int) -> Q:
    return Q(read_at__isnull=True, emailed_at__isnull=True, created_at__lte=now - timedelta(hours=hours))


def digests_send_due(*, now: datetime | None = None) -> int:
    """Send every digest that is due at `now`; answers how many e-mails were sent."""
    now = now or timezone.now()
    shortest = min(h for h in DigestPreference.After.values if h)
    candidates = (
        User.objects.filter(is_active=True)
        .exclude(email="")
        .exclude(digest_preference__after_hours=DigestPreference.NEVER)
        .filter(Exists(Notification.objects.filter(_waiting(now=now, hours=shortest), user=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    sent = 0
    for pk in list(candidates[:DIGEST_MEMBERS_PER_RUN]):
        try:
            sent += digest_send(user_id=pk, now=now)
        except Exception:
            # One member's bad address must not hold the others' digests back.
            log.exception("digest for member %s not sent", pk)
    return sent


def digest_send(*, user_id: int, now: datetime | None = None) -> int:
    """E-mail member `user_id` his notifications unread for his chosen time and never
    e-mailed, if his last digest is that old; answers 1 when sent, else 0."""
    now = now or timezone.now()
    with transaction.atomic():
        user = User.objects.select_for_update(skip_locked=True, of=("self",)).filter(pk=user_id).first()
        if user is None or not user.email or not user.is_active:
            return 0
        preference = DigestPreference.objects.filter(user=user).first()
        hours = DigestPreference.DEFAULT_AFTER_HOURS if preference is None else preference.after_hours
        if hours == DigestPreference.NEVER:
            return 0
        if preference is not None and preference.last_sent_at and preference.last_sent_at > now - timedelta(hours=hours):
            return 0
        notes = list(Notification.objects.filter(_waiting(now=now, hours=hours), user=user).order_by("id"))
        if not notes:
            return 0
        Notification.objects.filter(pk__in=[n.pk for n in notes]).update(emailed_at=now)
        DigestPreference.objects.update_or_create(
            user=user, defaults={"after_hours": hours, "last_sent_at": now}
        )
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            subject, body = _digest_text(user, notes)
        send_mail(subject, body, None, [user.email])
    return 1


def _digest_text(user: User, notes: list[Notification]) -> tuple[str, str]:
    """The subject and body of `user`'s digest, in the active language."""
    site = settings.HIRFA_SITE_URL
    count = len(notes)
    subject = ngettext(
        "%(count)d notification you have not read on Hirfa",
        "%(count)d notifications you have not read on Hirfa",
        count,
    ) % {"count": count}
    lines = [_("Hello %(name)s,") % {"name": user.display_name}, "",
             _("While you were away:"), ""]
    for note in notes[:DIGEST_LINES_MAX]:
        text = notification_text(note)
        if text is None:
            continue
        lines.append(f"- {text.body}")
        lines.append(f"  {site}{reverse('notification_open', args=[note.pk])}")
    if count > DIGEST_LINES_MAX:
        lines.append(_("… and %(count)d more.") % {"count": count - DIGEST_LINES_MAX})
    lines += ["", _("All your notifications: %(url)s") % {"url": site + reverse("notifications")},
              _("To choose when these e-mails come, or to stop them: %(url)s")
              % {"url": site + reverse("notifications") + "#email"}]
    return subject, "\n".join(lines)
