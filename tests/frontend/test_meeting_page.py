"""The meeting page through Django's test client: who may open it, who sees the
host controls, the room's meeting banner, and the 150 KB first-load budget."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from rooms import services as room_services
from signaling import services as meeting_services
from tests.frontend.test_budget import BUDGET_BYTES, module_closure, static_bytes

pytestmark = pytest.mark.django_db


def config_of(response) -> dict:
    match = re.search(
        r'<script id="config" type="application/json">(.*?)</script>', response.content.decode()
    )
    assert match, "the page carries its config blob"
    return json.loads(match.group(1))


def test_the_meeting_page_needs_a_login(client, guild):
    response = client.get(reverse("meeting", args=[guild.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_a_room_the_member_may_not_read_is_a_404_like_a_missing_one(client, amina, yacine, nadia):
    group = room_services.group_create(user=yacine, title="Atelier", member_ids=[nadia.pk])
    client.force_login(amina)
    assert client.get(reverse("meeting", args=[group.pk])).status_code == 404
    assert client.get(reverse("meeting", args=[999_999])).status_code == 404
    client.force_login(nadia)
    assert client.get(reverse("meeting", args=[group.pk])).status_code == 200


def test_host_controls_are_rendered_for_hosts_only(client, amina, nadia, guild):
    # No meeting yet: Nadia (a moderator) may start one and would host it; Amina may not.
    client.force_login(amina)
    page = client.get(reverse("meeting", args=[guild.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="host-controls"' not in html
    assert config_of(page)["host"] is False
    assert config_of(page)["mayStart"] is False
    assert re.search(r'id="join"[^>]*disabled', html), "nobody to join and Amina may not start"

    client.force_login(nadia)
    page = client.get(reverse("meeting", args=[guild.pk]))
    assert 'id="host-controls"' in page.content.decode()
    assert config_of(page)["host"] is True and config_of(page)["mayStart"] is True

    # Live: Amina may join, still without host controls.
    frame = meeting_services.meeting_start(user=nadia, room_id=guild.pk)
    client.force_login(amina)
    page = client.get(reverse("meeting", args=[guild.pk]))
    html = page.content.decode()
    assert 'id="host-controls"' not in html
    assert config_of(page)["live"] == frame.meeting
    # Still disabled as served: meeting.js enables it once it has bound it (a tap before
    # that, on a slow link, would be lost); tests/browser/test_meeting.py waits for that.
    assert re.search(r'id="join"[^>]*disabled', html), "Join can be tapped before the script handles it"


def test_in_a_group_whoever_started_the_meeting_hosts_it(client, amina, yacine):
    group = room_services.group_create(user=yacine, title="Atelier", member_ids=[amina.pk])
    client.force_login(amina)
    assert 'id="host-controls"' in client.get(reverse("meeting", args=[group.pk])).content.decode()
    meeting_services.meeting_start(user=yacine, room_id=group.pk)
    page = client.get(reverse("meeting", args=[group.pk]))
    assert 'id="host-controls"' not in page.content.decode()
    client.force_login(yacine)
    assert 'id="host-controls"' in client.get(reverse("meeting", args=[group.pk])).content.decode()


def test_the_room_page_links_to_its_meeting(client, amina, nadia, guild):
    client.force_login(nadia)
    html = client.get(reverse("room", args=[guild.pk])).content.decode()
    url = reverse("meeting", args=[guild.pk])
    assert 'id="meeting-banner"' in html and f'href="{url}"' in html
    assert 'id="meeting-start"' in html
    client.force_login(amina)
    html = client.get(reverse("room", args=[guild.pk])).content.decode()
    assert 'id="meeting-banner"' in html
    assert 'id="meeting-start"' not in html  # a member does not start meetings in a guild


@pytest.mark.parametrize("language", ["ar", "fr", "en"])
def test_the_page_is_translated_and_mirrors_in_arabic(client, nadia, guild, language):
    client.cookies["django_language"] = language
    client.force_login(nadia)
    html = client.get(reverse("meeting", args=[guild.pk])).content.decode()
    assert f'lang="{language}"' in html
    assert ('dir="rtl"' in html) == (language == "ar")
    strings = json.loads(re.search(r'<script id="i18n" type="application/json">(.*?)</script>', html).group(1))
    assert {"join", "muteMic", "usage", "ended_removed", "err_meeting_locked"} <= strings.keys()


def test_meeting_page_first_load_is_under_150_kb(client, nadia, guild):
    client.force_login(nadia)
    response = client.get(reverse("meeting", args=[guild.pk]))
    html = response.content.decode()
    total = len(response.content)
    for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', html):
        total += static_bytes(href)[0]
    seen: set[str] = set()
    scripts = re.findall(r'<script type="module" src="([^"]+)"', html)
    # Every page also loads the service worker's registration and the notification count.
    assert scripts == ["/static/hirfa/pwa.js", "/static/hirfa/badge.js", "/static/hirfa/meeting.js"]
    for src in scripts:
        total += module_closure(src, seen)
    assert {"/static/hirfa/meeting.js", "/static/hirfa/socket.js", "/static/hirfa/meeting-peer.js"} <= seen
    assert total < BUDGET_BYTES, f"first load is {total} bytes"
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html  # no CDN
