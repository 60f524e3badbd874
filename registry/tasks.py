"""The registry's background job, run by the job worker (`hub/jobs.py`): buyers' e-mails."""

from __future__ import annotations

from django_tasks import task

from registry import services


@task()
def new_piece_followers_tell(product_id: int) -> int:
    """Tell an artisan's followers of his new piece (`services.new_piece_followers_tell`)."""
    return services.new_piece_followers_tell(product_id=product_id)


@task()
def enquiry_replies_mail() -> int:
    """E-mail each buyer the artisan's new answers (`services.enquiry_replies_mail`)."""
    return services.enquiry_replies_mail()
