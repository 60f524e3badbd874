"""The e-mail job of gatherings, run by Django's tasks framework (`django-tasks`,
database backend) in the job worker (`hub/jobs.py`): `hirfa worker` in production,
a thread of the hub in the embedded default. (The reminder sweep is in `reminders.py`.)

With the database backend, `enqueue` writes a row in the caller's transaction:
a job exists if and only if the write that asked for it committed.
"""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tasks import task

log = logging.getLogger(__name__)


@task()
def email_send(*, to: str, subject: str, body: str, reminder_id: int | None = None) -> bool:
    """Send one e-mail. For a reminder, at most once: the reminder row is locked and marked.

    Returns False when there was nothing to do (no address, or already e-mailed).
    """
    if not to:
        return False
    if reminder_id is None:
        send_mail(subject, body, None, [to])
        return True
    from gatherings.models import ReminderSent

    with transaction.atomic():
        row = ReminderSent.objects.select_for_update().filter(pk=reminder_id).first()
        if row is None or row.emailed_at is not None:
            return False
        send_mail(subject, body, None, [to])
        row.emailed_at = timezone.now()
        row.save(update_fields=["emailed_at"])
    return True
