"""Reminders before each occurrence, sent exactly once per member, occurrence and offset.

The guarantee comes from the database, not from the job queue: a `ReminderSent`
row is inserted under a unique constraint in the same transaction as the
notification and the e-mail job. Two workers, or a worker restarted in the
middle, race on that insert; exactly one commits, the others send nothing.

Offsets come from ``settings.HIRFA_GATHERING_REMINDER_MINUTES`` (default 24 h and
15 min). For each occurrence only the most recent offset already reached is due:
a member who says "going" an hour before gets one reminder, not a late "24 hours".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tasks import task

from gatherings import selectors
from gatherings.models import Gathering, ReminderSent, RsvpStatus
from gatherings.notify import REMINDER, member_notify
from gatherings.selectors import Occurrence
from hub.models import User

DEFAULT_REMINDER_MINUTES = (24 * 60, 15)


def reminder_offsets() -> list[int]:
    """Reminder offsets in minutes before the start, largest first."""
    minutes = getattr(settings, "HIRFA_GATHERING_REMINDER_MINUTES", DEFAULT_REMINDER_MINUTES)
    return sorted({int(m) for m in minutes if int(m) > 0}, reverse=True)


@dataclass(frozen=True)
class DueReminder:
    gathering: Gathering
    occurrence: Occurrence
    offset_minutes: int


def reminders_due(*, now: datetime | None = None) -> Iterator[DueReminder]:
    """Every (occurrence, offset) whose reminder time has come and whose start has not."""
    now = now or timezone.now()
    offsets = reminder_offsets()
    if not offsets:
        return
    horizon = now + timedelta(minutes=offsets[0])
    gatherings = Gathering.objects.filter(
        cancelled=False, series_end__gt=now
    ).prefetch_related("exceptions")
    for gathering in gatherings:
        for occ in selectors.gathering_occurrences(
            gathering=gathering, after=now, before=horizon, exceptions=gathering.exceptions.all()
        ):
            if occ.start <= now:
                continue
            reached = [m for m in offsets if occ.start - timedelta(minutes=m) <= now]
            if reached:
                yield DueReminder(gathering=gathering, occurrence=occ, offset_minutes=min(reached))


def reminders_send_due(*, now: datetime | None = None) -> int:
    """Send the reminders due at `now` to every member going; returns how many this call sent."""
    sent = 0
    for due in reminders_due(now=now):
        answers = selectors.effective_rsvps(
            gathering=due.gathering, original_start=due.occurrence.original_start
        )
        going = [uid for uid, r in answers.items() if r.status == RsvpStatus.GOING]
        already = set(
            ReminderSent.objects.filter(
                gathering=due.gathering,
                occurrence_start=due.occurrence.original_start,
                offset_minutes=due.offset_minutes,
            ).values_list("user_id", flat=True)
        )
        for user in User.objects.filter(pk__in=[u for u in going if u not in already], is_active=True):
            if reminder_send(due=due, user=user):
                sent += 1
    return sent


def reminder_send(*, due: DueReminder, user: User) -> bool:
    """Claim and send one reminder; False if another worker (or an earlier run) has it."""
    try:
        with transaction.atomic():
            row = ReminderSent.objects.create(
                gathering=due.gathering,
                occurrence_start=due.occurrence.original_start,
                user=user,
                offset_minutes=due.offset_minutes,
            )
            member_notify(
                user=user,
                gathering=due.gathering,
                event="reminder",
                original_start=due.occurrence.original_start,
                start=due.occurrence.start,
                kind=REMINDER,
                reminder_id=row.pk,
                extra={"minutes_before": due.offset_minutes},
            )
    except IntegrityError:
        return False
    return True


@task()
def reminders_sweep() -> int:
    """Send every reminder that is due now; returns how many were sent by this run.

    A periodic job (registered in `gatherings.hooks`): the job worker enqueues it at
    every tick unless a run already waits.
    """
    return reminders_send_due()
