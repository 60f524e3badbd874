"""Background jobs of the foundation, run by the job worker (django-tasks)."""

from __future__ import annotations

from django_tasks import task


@task()
def push_deliver(*, notification_id: int) -> int:
    """Push one notification to its member's devices (see hub.push.notification_push)."""
    from hub.push import notification_push

    return notification_push(notification_id=notification_id)


@task()
def digests_send() -> int:
    """E-mail each member what he missed, when due (see hub.digests); a periodic job."""
    from hub.digests import digests_send_due

    return digests_send_due()
