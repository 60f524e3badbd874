"""The web pages through Django's test client: who sees what, and the forms."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from rooms import services
from rooms.models import Membership, Message, Report, Room, RoomKind
from tests import factories

pytestmark = pytest.mark.django_db


def config_of(response) -> dict:
    match = re.search(
        r'<script id="config" type="application/json">(.*?)</script>', response.content.decode()
    )
    assert match, "the page carries its config blob"
    return json.loads(match.group(1))


def post(user, room, text, client_id):
    return services.message_post(user=user, room_id=room.pk, client_id=client_id, text=text)


# --- log-in required ---------------------------------------------------------------


def test_home_explains_itself_to_visitors_and_sends_members_to_their_rooms(client, amina):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("signup") in html and "census-map" in html and reverse("registry_directory") in html
    client.force_login(amina)
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("rooms")


@pytest.mark.parametrize(
    "name,kwargs",
    [("rooms", {}), ("room", {"room_id": 1}), ("moderation", {})],
)
def test_pages_need_a_login(client, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("room_follow", {"room_id": 1}),
        ("room_leave", {"room_id": 1}),
        ("direct_open", {}),
        ("group_create", {}),
        ("report_resolve", {"report_id": 1}),
    ],
)
def test_actions_need_a_login_and_a_post(client, amina, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    assert client.post(url)["Location"].startswith(reverse("login"))
    client.force_login(amina)
    assert client.get(url).status_code == 405


# --- rooms list -----------------------------------------------------------------------


def test_rooms_lists_followed_rooms_with_unread_counts(client, amina, yacine, guild):
    post(yacine, guild, "Salam Amina", "c1")
    post(yacine, guild, "Le four est prêt", "c2")
    client.force_login(amina)
    response = client.get(reverse("rooms"))
    assert response.status_code == 200
    body = response.content.decode()
    assert guild.display_title() in body
    rooms = {r["id"]: r for r in config_of(response)["rooms"]}
    assert rooms[guild.pk]["unread"] == 2
    assert re.search(rf'data-room="{guild.pk}".*?<span class="count">2</span>', body, re.DOTALL)
    assert '<script type="module" src="/static/hirfa/rooms.js">' in body


def test_follow_and_leave_a_public_room(client, amina, poterie):
    other = Room.objects.create(kind=RoomKind.REGION, wilaya=factories.wilaya("Oran-test", "وهران"))
    client.force_login(amina)
    discover = client.get(reverse("rooms"), {"q": "Oran"}).content.decode()
    assert "Oran-test" in discover
    assert reverse("room_follow", args=[other.pk]) in discover

    response = client.post(reverse("room_follow", args=[other.pk]), {"next": "/rooms/?q=Oran"})
    assert response["Location"] == "/rooms/?q=Oran"
    assert Membership.objects.get(room=other, user=amina).active

    response = client.post(reverse("room_leave", args=[other.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("rooms")
    assert not Membership.objects.get(room=other, user=amina).active


# --- a room --------------------------------------------------------------------------


def test_room_page_carries_history_rev_and_strings(client, amina, yacine, guild):
    for i in range(3):
        post(yacine, guild, f"message {i}", f"c{i}")
    client.force_login(amina)
    response = client.get(reverse("room", args=[guild.pk]))
    assert response.status_code == 200
    config = config_of(response)
    guild.refresh_from_db()
    assert config["room"] == guild.pk
    assert config["rev"] == guild.last_rev
    assert [m["text"] for m in config["messages"]] == ["message 0", "message 1", "message 2"]
    assert config["moderator"] is False
    body = response.content.decode()
    assert '<script id="i18n" type="application/json">' in body
    assert '<script type="module" src="/static/hirfa/room.js">' in body


def test_message_text_is_never_html_in_the_page(client, amina, yacine, guild):
    post(yacine, guild, "</script><script>alert(1)</script>", "x")
    client.force_login(amina)
    body = client.get(reverse("room", args=[guild.pk])).content.decode()
    assert "<script>alert(1)" not in body
    assert config_of(client.get(reverse("room", args=[guild.pk])))["messages"][0]["text"] == (
        "</script><script>alert(1)</script>"
    )


def test_a_room_one_may_not_read_is_a_404_like_a_missing_one(client, amina, yacine):
    group = services.group_create(user=yacine, title="Secret")
    client.force_login(amina)
    assert client.get(reverse("room", args=[group.pk])).status_code == 404
    assert client.get(reverse("room", args=[999999])).status_code == 404


def test_moderator_controls_are_hidden_from_members(client, amina, nadia, guild):
    client.force_login(amina)
    member_page = client.get(reverse("room", args=[guild.pk]))
    assert config_of(member_page)["moderator"] is False
    assert 'id="mute-dialog"' not in member_page.content.decode()
    assert reverse("moderation") not in member_page.content.decode()

    client.force_login(nadia)
    moderator_page = client.get(reverse("room", args=[guild.pk]))
    assert config_of(moderator_page)["moderator"] is True
    assert 'id="mute-dialog"' in moderator_page.content.decode()
    assert reverse("moderation") in moderator_page.content.decode()


def test_moderators_set_slow_mode_from_the_room_page(client, amina, nadia, guild):
    client.force_login(amina)
    assert 'id="slow-mode-form"' not in client.get(reverse("room", args=[guild.pk])).content.decode()
    client.post(reverse("room_slow_mode", args=[guild.pk]), {"seconds": "30"})
    guild.refresh_from_db()
    assert guild.slow_mode_seconds == 0

    client.force_login(nadia)
    assert 'id="slow-mode-form"' in client.get(reverse("room", args=[guild.pk])).content.decode()
    response = client.post(reverse("room_slow_mode", args=[guild.pk]), {"seconds": "30"})
    assert response.status_code == 302
    guild.refresh_from_db()
    assert guild.slow_mode_seconds == 30
    client.post(reverse("room_slow_mode", args=[guild.pk]), {"seconds": "12345"})
    guild.refresh_from_db()
    assert guild.slow_mode_seconds == 30


def test_message_a_member_opens_the_direct_room(client, amina, yacine, guild):
    client.force_login(amina)
    page = client.get(reverse("room", args=[guild.pk])).content.decode()
    assert f'name="user" value="{yacine.pk}"' in page
    response = client.post(reverse("direct_open"), {"user": yacine.pk})
    direct = Room.objects.get(kind=RoomKind.DIRECT)
    assert response["Location"] == reverse("room", args=[direct.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Yacine" in page  # a direct room is named after the other member


def test_create_a_private_group_with_members(client, amina, yacine):
    client.force_login(amina)
    response = client.post(reverse("group_create"), {"title": "Four commun", "members": [yacine.pk, "x"]})
    group = Room.objects.get(kind=RoomKind.GROUP)
    assert response["Location"] == reverse("room", args=[group.pk])
    assert set(group.memberships.values_list("user__username", flat=True)) == {"amina", "yacine"}
    response = client.post(reverse("group_create"), {"title": "  "})
    assert response["Location"] == reverse("rooms")
    assert Room.objects.filter(kind=RoomKind.GROUP).count() == 1


# --- moderation ------------------------------------------------------------------------


def test_moderation_queue_is_for_moderators_only(client, amina, yacine, nadia, guild):
    message = post(yacine, guild, "Achetez mes vases ici", "spam").message
    services.message_report(user=amina, room_id=guild.pk, seq=message.id, reason="Publicité")

    client.force_login(amina)
    assert client.get(reverse("moderation")).status_code == 404
    report = Report.objects.get()
    client.post(reverse("report_resolve", args=[report.pk]), {"action": "delete"})
    assert Message.objects.get().deleted_at is None

    client.force_login(nadia)
    page = client.get(reverse("moderation")).content.decode()
    assert "Achetez mes vases ici" in page
    assert "Publicité" in page


def test_moderator_deletes_or_dismisses_from_the_queue(client, amina, yacine, nadia, guild):
    first = post(yacine, guild, "one", "a").message
    second = post(yacine, guild, "two", "b").message
    services.message_report(user=amina, room_id=guild.pk, seq=first.id, reason="r1")
    services.message_report(user=amina, room_id=guild.pk, seq=second.id, reason="r2")
    r1, r2 = Report.objects.order_by("id")
    client.force_login(nadia)
    assert client.post(reverse("report_resolve", args=[r1.pk]), {"action": "delete"})["Location"] == reverse("moderation")
    client.post(reverse("report_resolve", args=[r2.pk]), {"action": "dismiss"})
    r1.refresh_from_db()
    r2.refresh_from_db()
    assert r1.status == Report.Status.ACTIONED
    assert r2.status == Report.Status.DISMISSED
    assert Message.objects.get(seq=first.id, room=guild).deleted_at is not None
    assert Message.objects.get(seq=second.id, room=guild).deleted_at is None
    assert "one" not in client.get(reverse("moderation")).content.decode()


def test_a_moderator_of_another_trade_sees_no_report_here(client, amina, yacine, guild):
    other = factories.moderator_of(
        factories.artisan("nadir", trades=[factories.trade("cuivre-test", "Cuivre", "النحاس")]),
        trade_=factories.trade("cuivre-test"),
    )
    message = post(yacine, guild, "hors sujet", "h").message
    services.message_report(user=amina, room_id=guild.pk, seq=message.id, reason="r")
    client.force_login(other)
    page = client.get(reverse("moderation")).content.decode()
    assert "hors sujet" not in page


def test_favicon_ico_leads_to_the_apps_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("hirfa/icons/icon-192.png")
