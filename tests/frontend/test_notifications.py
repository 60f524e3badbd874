"""The notification centre: Amina is mentioned by Yacine, sees the count on every page
(bell, tab, title), the list links to the message, following it marks it read, and
nobody can open or read another member's notifications."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from hub.models import Notification
from rooms import services

pytestmark = pytest.mark.django_db


def mention(yacine, guild, n=1):
    for i in range(n):
        services.send_buckets.reset()
        services.message_post(user=yacine, room_id=guild.pk, client_id=f"n{i}", text=f"@amina le four ({i})")


def title_of(response) -> str:
    found = re.search(r"<title>(.*?)</title>", response.content.decode(), re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_count_shows_on_every_page_and_in_the_title(client, amina, yacine, guild):
    client.force_login(amina)
    assert not title_of(client.get(reverse("rooms"))).startswith("(")
    mention(yacine, guild, n=2)
    for name in ("rooms", "me", "notifications"):
        response = client.get(reverse(name))
        assert title_of(response).startswith("(2) ")
        html = response.content.decode()
        assert 'data-unread-notifications="2"' in html
        assert re.search(r'class="bell-count" data-unread-count\s*>2<', html)
        assert re.search(r'class="tab-count" data-unread-count\s*>2<', html)


def test_the_list_links_to_the_message_and_opening_marks_it_read(client, amina, yacine, guild):
    mention(yacine, guild)
    note = Notification.objects.get(user=amina)
    client.force_login(amina)
    page = client.get(reverse("notifications")).content.decode()
    assert "Yacine" in page and "@amina le four (0)" in page
    assert reverse("notification_open", args=[note.pk]) in page
    response = client.get(reverse("notification_open", args=[note.pk]))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('room', args=[guild.pk])}#m-{note.data['id']}"
    note.refresh_from_db()
    assert note.read_at is not None
    assert 'data-unread-notifications="0"' in client.get(reverse("notifications")).content.decode()


def test_a_reminder_leads_to_its_gathering(client, amina):
    note = Notification.objects.create(
        user=amina, kind="reminder", data={"event": "reminder", "gathering": 7, "title": "Atelier", "room": 1}
    )
    client.force_login(amina)
    assert "Atelier" in client.get(reverse("notifications")).content.decode()
    response = client.get(reverse("notification_open", args=[note.pk]))
    assert response["Location"] == reverse("gathering_detail", args=[7])


def test_mark_all_read_touches_only_my_notifications(client, amina, yacine, guild):
    mention(yacine, guild, n=3)
    theirs = Notification.objects.create(user=yacine, kind="system", data={})
    client.force_login(amina)
    assert client.post(reverse("notifications_read")).status_code == 302
    assert not Notification.objects.filter(user=amina, read_at__isnull=True).exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_another_members_notification_is_not_found(client, amina, yacine, guild):
    theirs = Notification.objects.create(user=yacine, kind="system", data={})
    client.force_login(amina)
    assert client.get(reverse("notification_open", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert "system" not in client.get(reverse("notifications")).content.decode().split('id="notifications"')[-1]


def test_the_centre_needs_a_member(client):
    for name in ("notifications", "me"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and reverse("login") in response["Location"]
    assert client.post(reverse("notifications_read")).status_code == 302


def test_newest_first(client, amina):
    now = timezone.now()
    old = Notification.objects.create(user=amina, kind="system", data={"event": "verification", "status": "verified"},
                                      created_at=now - timedelta(days=1))
    new = Notification.objects.create(user=amina, kind="exchange", data={"author_name": "Sofia"}, created_at=now)
    client.force_login(amina)
    page = client.get(reverse("notifications")).content.decode()
    assert page.index(reverse("notification_open", args=[new.pk])) < page.index(
        reverse("notification_open", args=[old.pk])
    )
