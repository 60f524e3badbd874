"""Pages and .ics feeds, rendered through Django's test client."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from hub.gatherings import feeds, selectors, services
from hub.gatherings.models import Gathering


def client_for(user, lang="fr", tz=None) -> Client:
    c = Client(HTTP_ACCEPT_LANGUAGE=lang)
    c.force_login(user)
    c.cookies["django_language"] = lang
    if tz:
        c.cookies["hirfa_tz"] = tz
    return c


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
def test_moderator_schedules_weekly_and_member_rsvps_and_sees_it_in_his_agenda(karim, amina, tlemcen_room, future, lang):
    local = future.astimezone(ZoneInfo("Africa/Algiers"))
    mod = client_for(karim, lang)
    form = mod.get("/gatherings/new")
    assert form.status_code == 200 and b"recurrence-picker" in form.content
    r = mod.post("/gatherings/new", {
        "room": tlemcen_room.pk, "title": "Atelier du vendredi", "agenda": "", "start": local.strftime("%Y-%m-%dT%H:%M"),
        "tz": "Africa/Algiers", "duration_minutes": 90, "language": lang, "visibility": "members",
        "rrule": "FREQ=WEEKLY;BYDAY=FR;COUNT=4",
    })
    assert r.status_code == 302, r.content.decode()[:3000]
    g = Gathering.objects.get()
    assert g.start == future
    member = client_for(amina, lang)
    page = member.get(f"/gatherings/{g.pk}/")
    assert page.status_code == 200 and "Atelier du vendredi" in page.content.decode()
    if lang == "ar":
        assert 'dir="rtl"' in page.content.decode()
    key = selectors.gathering_occurrences(gathering=g)[0].key
    assert member.post(f"/gatherings/{g.pk}/rsvp", {"status": "going", "occurrence": key}).status_code == 302
    agenda = member.get("/gatherings/?scope=mine").content.decode()
    assert "Atelier du vendredi" in agenda and agenda.count('class="agenda-row"') == 1
    month = member.get(f"/gatherings/?view=month&month={local:%Y-%m}").content.decode()
    assert "Atelier du vendredi" in month and "18:00" in month


def test_form_shows_service_errors_and_refuses_members(karim, amina, tlemcen_room):
    r = client_for(karim).post("/gatherings/new", {
        "room": tlemcen_room.pk, "title": "X", "start": "2001-01-01T10:00", "tz": "Africa/Algiers",
        "duration_minutes": 60, "visibility": "members", "rrule": "",
    })
    assert r.status_code == 200 and not Gathering.objects.exists()
    assert b"errors" in r.content
    assert client_for(amina).get("/gatherings/new").status_code == 403


def test_times_follow_the_viewers_zone(schedule, amina, future):
    g = schedule()
    paris = client_for(amina, "en", "Europe/Paris").get(f"/gatherings/{g.pk}/").content.decode()
    montreal = client_for(amina, "en", "America/Montreal").get(f"/gatherings/{g.pk}/").content.decode()
    assert future.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") in paris
    assert future.astimezone(ZoneInfo("America/Montreal")).strftime("%H:%M") in montreal


def test_csv_of_answers_for_hosts_only(schedule, karim, amina):
    g = schedule()
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    key = selectors.gathering_occurrences(gathering=g)[0].key
    r = client_for(karim).get(f"/gatherings/{g.pk}/occurrences/{key}/attendees.csv")
    assert r.status_code == 200 and "Amina,going" in r.content.decode("utf-8-sig")
    assert client_for(amina).get(f"/gatherings/{g.pk}/occurrences/{key}/attendees.csv").status_code == 403


def test_ics_endpoints(schedule, amina, yacine, tlemcen_room):
    members_only = schedule(title="Membres", rrule="FREQ=WEEKLY;COUNT=3")
    public = schedule(title="Public", visibility="public")
    anonymous = Client()
    assert anonymous.get(f"/gatherings/{members_only.pk}.ics").status_code == 404
    r = anonymous.get(f"/gatherings/{public.pk}.ics")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/calendar")
    assert set(feeds.expand_feed(anonymous.get(f"/gatherings/room/{tlemcen_room.pk}.ics").content)) == {public.uid}
    room_feed = client_for(amina).get(f"/gatherings/room/{tlemcen_room.pk}.ics").content
    expanded = feeds.expand_feed(room_feed)
    assert expanded[members_only.uid] == [(o.start, o.end) for o in selectors.gathering_occurrences(gathering=members_only)]
    assert set(feeds.expand_feed(client_for(yacine).get(f"/gatherings/room/{tlemcen_room.pk}.ics").content)) == {public.uid}
    services.rsvp_set(user=amina, gathering_id=members_only.pk, status="going")
    token = services.feed_token_get(user=amina).token
    assert set(feeds.expand_feed(anonymous.get(f"/gatherings/feed/{token}.ics").content)) == {members_only.uid}
    assert anonymous.get("/gatherings/feed/not-a-token.ics").status_code == 404
