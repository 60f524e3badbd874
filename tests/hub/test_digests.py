"""E-mail digests of what a member missed (hub/digests.py): Amina, mentioned by Yacine and
away, gets one e-mail in her language, from the job worker, once; when she chose, never
before, never twice, and nothing she read or was already e-mailed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from hub import digests
from hub.models import DigestPreference, Notification
from hub.tasks import digests_send
from rooms import services
from tests.hub.test_push import run_jobs

pytestmark = pytest.mark.django_db

SUBJECTS = {
    "ar": "إشعار واحد لم تقرأه في حرفة",
    "fr": "1 notification que vous n’avez pas lue sur Hirfa",
    "kab": "1 n walɣu ur teɣriḍ ara deg Hirfa",
}


@pytest.fixture
def guild(poterie, amina):
    from rooms.models import Room, RoomKind

    return Room.objects.get(kind=RoomKind.GUILD, trade=poterie)


def mention(yacine, guild, text="@amina le four est chaud", client_id="d1", age=timedelta(hours=25)):
    services.send_buckets.reset()
    services.message_post(user=yacine, room_id=guild.pk, client_id=client_id, text=text)
    note = Notification.objects.filter(kind="mention").latest("id")
    Notification.objects.filter(pk=note.pk).update(created_at=timezone.now() - age)
    return note


@pytest.mark.django_db(transaction=True)  # the job worker closes its connection
@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_a_mention_missed_for_a_day_is_emailed_once_by_the_job_worker(amina, yacine, guild, language, settings):
    settings.HIRFA_SITE_URL = "https://hirfa.example.dz"
    amina.preferred_language = language
    amina.save(update_fields=["preferred_language"])
    note = mention(yacine, guild)
    mail.outbox.clear()

    digests_send.enqueue()
    run_jobs()
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["amina@example.org"]
    assert sent.subject == SUBJECTS[language]
    assert "@amina le four est chaud" in sent.body
    assert f"https://hirfa.example.dz{reverse('notification_open', args=[note.pk])}" in sent.body
    note.refresh_from_db()
    assert note.emailed_at is not None and note.read_at is None

    # The worker's next runs send nothing more.
    digests_send.enqueue()
    run_jobs()
    assert digests.digests_send_due(now=timezone.now() + timedelta(days=3)) == 0
    assert len(mail.outbox) == 1


def test_not_before_the_chosen_time_and_not_what_was_read(amina, yacine, guild):
    mail.outbox.clear()
    mention(yacine, guild, age=timedelta(hours=23))
    read = mention(yacine, guild, client_id="d2", age=timedelta(days=2))
    services.notifications_mark_read(user=amina, ids=[read.pk])
    assert digests.digests_send_due() == 0
    assert mail.outbox == []

    # The same, an hour later than the member chose: now it goes, the read one does not.
    assert digests.digests_send_due(now=timezone.now() + timedelta(hours=2)) == 1
    assert "(1)" not in mail.outbox[0].body and mail.outbox[0].body.count("/notifications/") == 3


def test_after_an_hour_at_most_one_digest_an_hour(amina, yacine, guild):
    digests.digest_preference_set(user=amina, after_hours=1)
    mail.outbox.clear()
    mention(yacine, guild, text="@amina premier", age=timedelta(minutes=61))
    assert digests.digests_send_due() == 1
    # A newer one, missed for an hour too, waits until an hour after the last digest.
    mention(yacine, guild, text="@amina second", client_id="d2", age=timedelta(minutes=61))
    assert digests.digests_send_due() == 0
    assert digests.digests_send_due(now=timezone.now() + timedelta(minutes=61)) == 1
    assert ["@amina premier" in m.body and "@amina second" not in m.body for m in mail.outbox] == [True, False]
    assert "@amina second" in mail.outbox[1].body


def test_never_means_never_and_no_address_no_mail(amina, yacine, karim, guild):
    digests.digest_preference_set(user=amina, after_hours=0)
    karim.email = ""
    karim.save(update_fields=["email"])
    mail.outbox.clear()
    mention(yacine, guild)
    mention(yacine, guild, text="@karim le four", client_id="d2")
    assert digests.digests_send_due(now=timezone.now() + timedelta(days=10)) == 0
    assert mail.outbox == []


def test_what_was_emailed_already_is_not_in_a_digest(amina, nadia, guild):
    """A gathering's notice has its own e-mail: no digest carries it again."""
    from gatherings import services as gathering_services
    from gatherings.notify import member_notify

    gathering = gathering_services.gathering_schedule(
        user=nadia, room_id=guild.pk, title="Atelier", start=timezone.now() + timedelta(days=3),
        duration=timedelta(hours=1),
    )
    note = member_notify(user=amina, gathering=gathering, event="changed", original_start=None, start=None)
    Notification.objects.filter(pk=note.pk).update(created_at=timezone.now() - timedelta(days=2))
    mail.outbox.clear()
    assert digests.digests_send_due() == 0
    assert mail.outbox == []


def test_a_second_worker_finds_nothing_to_send(amina, yacine, guild):
    """The claim is in the database: whatever worker runs second sends nothing."""
    mention(yacine, guild)
    mail.outbox.clear()
    assert digests.digest_send(user_id=amina.pk) == 1
    assert digests.digest_send(user_id=amina.pk) == 0
    assert len(mail.outbox) == 1


def test_the_member_chooses_on_the_notification_centre(client, amina):
    client.force_login(amina)
    page = client.get(reverse("notifications")).content.decode()
    assert 'id="after_hours"' in page and '<option value="24" selected>' in page
    response = client.post(reverse("digest_preference"), {"after_hours": "1"})
    assert response.status_code == 302 and response["Location"].endswith("#email")
    assert DigestPreference.objects.get(user=amina).after_hours == 1
    for bad in ("5", "", "x"):
        client.post(reverse("digest_preference"), {"after_hours": bad})
        assert DigestPreference.objects.get(user=amina).after_hours == 1
    assert '<option value="1" selected>' in client.get(reverse("notifications")).content.decode()
