"""The registry's background job, run by the job worker (`hub/jobs.py`): buyers' e-mails."""

from __future__ import annotations

from django_tasks import task

from registry import services


@task()
def enquiry_replies_mail() -> int:
    """E-mail each buyer the artisan's new answers (`services.enquiry_replies_mail`)."""
    return services.enquiry_replies_mail()
