"""Followers are told of a new piece: when Amina publishes a product, Sofia and Yacine, who
follow her, get a notification (the notification centre, pushes, digests), once per
product, from the job worker after the commit; a draft tells no one until it is published;
a follower who left is not told."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation
from django_tasks_db.models import DBTaskResult

from frontend.selectors import notifications_recent
from hub.errors import HirfaError
from hub.models import Notification
from registry import services
from registry.hooks import NEW_PIECE
from registry.models import ProductStatus
from tests.hub.test_push import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def followers(amina, sofia, yacine):
    services.artisan_follow(user=sofia, artisan_id=amina.pk)
    services.artisan_follow(user=yacine, artisan_id=amina.pk)
    return sofia, yacine


def told(user):
    return list(Notification.objects.filter(user=user, kind=NEW_PIECE))


def test_a_new_piece_reaches_the_followers_once_from_the_job_worker(amina, followers, karim):
    sofia, yacine = followers
    tajine = services.product_create(user=amina, title="Tajine de Tlemcen", price_dzd=3500)
    assert told(sofia) == []  # off the request: the worker tells them
    run_jobs()
    for follower in (sofia, yacine):
        [note] = told(follower)
        assert note.data == {"product": tajine.pk, "title": "Tajine de Tlemcen", "by": amina.display_name}
    assert told(amina) == [] and told(karim) == []  # not himself, not who does not follow
    # Editing or selling out the piece, or a job run twice, tells no one again.
    services.product_update(user=amina, product_id=tajine.pk, price_dzd=3000)
    services.product_update(user=amina, product_id=tajine.pk, status=ProductStatus.SOLD_OUT)
    services.product_update(user=amina, product_id=tajine.pk, status=ProductStatus.PUBLISHED)
    services.new_piece_followers_tell(product_id=tajine.pk)
    run_jobs()
    assert len(told(sofia)) == 1 and len(told(yacine)) == 1


def test_a_draft_tells_no_one_until_it_is_published(amina, followers):
    sofia, _yacine = followers
    jarre = services.product_create(user=amina, title="Jarre", status=ProductStatus.DRAFT)
    run_jobs()
    assert told(sofia) == []
    services.product_update(user=amina, product_id=jarre.pk, status=ProductStatus.PUBLISHED)
    run_jobs()
    assert [n.data["product"] for n in told(sofia)] == [jarre.pk]


def test_a_piece_gone_before_the_job_or_a_follower_gone_tells_no_one(amina, followers):
    sofia, yacine = followers
    jarre = services.product_create(user=amina, title="Jarre")
    services.product_delete(user=amina, product_id=jarre.pk)
    yacine.is_active = False
    yacine.save(update_fields=["is_active"])
    tajine = services.product_create(user=amina, title="Tajine")
    run_jobs()
    assert [n.data["product"] for n in told(sofia)] == [tajine.pk]
    assert told(yacine) == []


def test_the_enqueued_job_is_written_with_the_product(amina, followers):
    """The job row is written in the product's transaction: no piece, no job (a failed
    creation leaves nothing for the worker)."""
    before = DBTaskResult.objects.count()
    with pytest.raises(HirfaError):
        services.product_create(user=amina, title="")
    assert DBTaskResult.objects.count() == before
    services.product_create(user=amina, title="Tajine")
    assert DBTaskResult.objects.count() == before + 1


@pytest.mark.parametrize(
    ("language", "says"),
    [("fr", "Amina Belkacem a publié une nouvelle pièce : Tajine"), ("ar", "نشر"), ("kab", "tamaynut")],
)
def test_the_notification_reads_in_each_language_and_leads_to_the_piece(amina, followers, language, says):
    sofia, _yacine = followers
    tajine = services.product_create(user=amina, title="Tajine")
    run_jobs()
    with translation.override(language):
        [item] = [i for i in notifications_recent(user=sofia) if i.kind == NEW_PIECE]
    assert says in item.text and item.href == reverse("registry_product", args=[tajine.pk])
    assert "Something new" not in item.text
