"""Pages and .ics feeds, rendered through Django's test client."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from gatherings import feeds, selectors, services
from gatherings.models import Gathering


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
    assert r.status_code == 200 and "Amina Belkacem,going" in r.content.decode("utf-8-sig")
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


# --- the moderators' pages: edit, move, cancel one, this and the following ones --------------

ALGIERS = ZoneInfo("Africa/Algiers")


def local(dt) -> str:
    """`dt` as a datetime-local input in Algiers."""
    return dt.astimezone(ALGIERS).strftime("%Y-%m-%dT%H:%M")


def fields_of(g: Gathering, **changes) -> dict:
    """The edit form's fields as the page fills them for `g`, with `changes`."""
    data = {
        "title": g.title, "agenda": g.agenda, "start": local(g.start), "tz": g.tz,
        "duration_minutes": int(g.duration.total_seconds() // 60), "language": g.language,
        "capacity": g.capacity or "", "visibility": g.visibility, "rrule": g.rrule,
    }
    data.update(changes)
    return data


def keys(g: Gathering) -> list[str]:
    return [o.key for o in selectors.gathering_occurrences(gathering=g, include_cancelled=True)]


def manager_urls(g: Gathering) -> list[str]:
    second = keys(g)[1]
    return [
        f"/gatherings/{g.pk}/edit",
        f"/gatherings/{g.pk}/occurrences/{second}/move",
        f"/gatherings/{g.pk}/occurrences/{second}/cancel",
        f"/gatherings/{g.pk}/occurrences/{second}/split",
    ]


@pytest.fixture
def weekly(schedule):
    return schedule(title="Atelier hebdomadaire", rrule="FREQ=WEEKLY;COUNT=4")


def test_moderator_pages_permissions(weekly, karim, amina, yacine, leila):
    g = weekly
    before = (g.title, g.sequence, g.rrule)
    for url in manager_urls(g):
        # a member of the room sees the gathering: he is told he may not manage it
        assert client_for(amina).get(url).status_code == 403, url
        assert client_for(amina).post(url, fields_of(g, title="Piraté")).status_code == 403, url
        # someone who may not see it: the same answer as a missing gathering
        assert client_for(yacine).get(url).status_code == 404, url
        assert client_for(yacine).post(url, fields_of(g, title="Piraté")).status_code == 404, url
        # no session: the login page
        assert Client().get(url).status_code == 302, url
        # the wilaya's moderator and the admin
        assert client_for(karim).get(url).status_code == 200, url
        assert client_for(leila).get(url).status_code == 200, url
    g.refresh_from_db()
    assert (g.title, g.sequence, g.rrule) == before
    assert not g.exceptions.exists()
    assert Gathering.objects.count() == 1
    mod = client_for(karim)
    assert mod.get(f"/gatherings/{g.pk}/occurrences/20010101T000000Z/move").status_code == 404
    assert mod.get(f"/gatherings/{g.pk}/occurrences/not-a-key/cancel").status_code == 404
    assert mod.get(f"/gatherings/{g.pk + 1000}/edit").status_code == 404


def test_detail_shows_management_links_to_moderators_only(weekly, karim, amina):
    g = weekly
    mine = client_for(karim).get(f"/gatherings/{g.pk}/").content.decode()
    assert f"/gatherings/{g.pk}/edit" in mine
    assert mine.count('data-action="move"') == 4 and mine.count('data-action="cancel"') == 4
    assert mine.count('data-action="split"') == 3  # the first one is the whole series: "edit"
    member = client_for(amina).get(f"/gatherings/{g.pk}/").content.decode()
    assert f"/gatherings/{g.pk}/edit" not in member and 'data-action="move"' not in member


def test_edit_page_is_prefilled_and_saves(weekly, karim, amina):
    from hub.models import Notification

    g = weekly
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    mod = client_for(karim)
    page = mod.get(f"/gatherings/{g.pk}/edit").content.decode()
    assert 'value="Atelier hebdomadaire"' in page and 'value="FREQ=WEEKLY;COUNT=4"' in page
    assert f'value="{local(g.start)}"' in page and "recurrence-picker" in page
    assert f'data-gathering="{g.pk}"' in page  # lets the preview keep a running series' start

    # Title and capacity only: saved, and no one is told of a change of time.
    r = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, title="Atelier émaillage", capacity=12))
    assert r.status_code == 302 and r["Location"] == f"/gatherings/{g.pk}/"
    g.refresh_from_db()
    assert (g.title, g.capacity) == ("Atelier émaillage", 12)
    assert not Notification.objects.filter(user=amina, data__event="changed").exists()

    # One hour later, every week: those going are told.
    later = g.start + timedelta(hours=1)
    r = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, start=local(later)))
    assert r.status_code == 302
    g.refresh_from_db()
    assert g.start == later
    assert Notification.objects.filter(user=amina, data__event="changed").count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"rrule": "FREQ=WEEKLY"}, "rrule", "COUNT"),
        ({"rrule": "FREQ=HOURLY;COUNT=3"}, "rrule", "HOURLY"),
        ({"start": "2001-01-05T18:00"}, "start", None),
        ({"duration_minutes": 0}, "duration_minutes", None),
        ({"duration_minutes": 60 * 24 * 30}, "duration_minutes", None),
        ({"tz": "Mars/Olympus"}, "tz", "Mars/Olympus"),
        ({"title": ""}, "title", None),
    ],
)
def test_edit_errors_are_shown_beside_their_field(weekly, karim, changes, field, message):
    g = weekly
    before = (g.title, g.start, g.rrule, g.duration, g.sequence)
    r = client_for(karim, "en").post(f"/gatherings/{g.pk}/edit", fields_of(g, **changes))
    assert r.status_code == 200
    page = r.content.decode()
    block = page[page.index(f'class="field field-{field} field-invalid"'):]
    block = block[: block.index("</div>\n    </div>") if "</div>\n    </div>" in block else 2000]
    assert 'class="errors"' in block
    if message:
        assert message in block
    g.refresh_from_db()
    assert (g.title, g.start, g.rrule, g.duration, g.sequence) == before


def test_editing_a_running_series_keeps_its_past_start(weekly, karim):
    """A series whose first occurrences are over can still be renamed, and the picker's
    preview accepts its (past) start when it names the gathering."""
    import json

    g = weekly
    past = g.start - timedelta(weeks=3)
    Gathering.objects.filter(pk=g.pk).update(start=past)
    g.refresh_from_db()
    mod = client_for(karim)
    r = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, title="Toujours là"))
    assert r.status_code == 302, r.content.decode()[:2000]
    g.refresh_from_db()
    assert g.title == "Toujours là" and g.start == past
    body = {"start": local(past), "tz": "Africa/Algiers", "rrule": g.rrule, "duration_minutes": 90}
    refused = mod.post("/api/gatherings/preview", json.dumps(body), content_type="application/json")
    assert refused.status_code >= 400
    body["gathering_id"] = g.pk
    allowed = mod.post("/api/gatherings/preview", json.dumps(body), content_type="application/json")
    assert allowed.status_code == 200 and allowed.json()["total"] == 4


def test_move_one_occurrence(weekly, karim, amina):
    from hub.models import Notification

    g = weekly
    second = keys(g)[1]
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    occ = selectors.gathering_occurrences(gathering=g)[1]
    mod = client_for(karim)
    page = mod.get(f"/gatherings/{g.pk}/occurrences/{second}/move").content.decode()
    assert f'value="{local(occ.start)}"' in page and 'value="120"' in page

    # The past: refused beside the start field, nothing written.
    r = mod.post(f"/gatherings/{g.pk}/occurrences/{second}/move", {"start": "2001-01-01T10:00", "duration_minutes": 120})
    assert r.status_code == 200 and "field-start field-invalid" in r.content.decode()
    assert not g.exceptions.exists()
    r = mod.post(f"/gatherings/{g.pk}/occurrences/{second}/move", {"start": local(occ.start), "duration_minutes": 0})
    assert r.status_code == 200 and "field-duration_minutes field-invalid" in r.content.decode()

    new_start = occ.start + timedelta(days=1, hours=-2)
    r = mod.post(f"/gatherings/{g.pk}/occurrences/{second}/move", {"start": local(new_start), "duration_minutes": 60})
    assert r.status_code == 302
    moved = selectors.occurrence_get(gathering=g, original_start=occ.original_start)
    assert (moved.start, moved.end - moved.start, moved.moved) == (new_start, timedelta(minutes=60), True)
    assert keys(g)[1] == second  # its name does not change, answers stay with it
    assert selectors.my_rsvp(user=amina, gathering=g, original_start=occ.original_start) == "going"
    assert Notification.objects.filter(user=amina, data__event="moved").count() == 1
    detail = client_for(amina).get(f"/gatherings/{g.pk}/").content.decode()
    assert new_start.astimezone(ALGIERS).strftime("%H:%M") in detail


def test_cancel_one_occurrence_asks_first(weekly, karim, amina):
    from hub.models import Notification

    g = weekly
    second = keys(g)[1]
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    mod = client_for(karim, "en")
    confirm = mod.get(f"/gatherings/{g.pk}/occurrences/{second}/cancel")
    assert confirm.status_code == 200
    assert "One member answered going" in confirm.content.decode()
    assert not g.exceptions.exists()  # a GET changes nothing
    r = mod.post(f"/gatherings/{g.pk}/occurrences/{second}/cancel")
    assert r.status_code == 302
    assert [o.cancelled for o in selectors.gathering_occurrences(gathering=g, include_cancelled=True)] == [False, True, False, False]
    assert Notification.objects.filter(user=amina, data__event="occurrence_cancelled").count() == 1
    # Once cancelled, its pages send back to the gathering with the reason.
    again = mod.get(f"/gatherings/{g.pk}/occurrences/{second}/cancel", follow=True)
    assert "This occurrence is cancelled." in again.content.decode()
    assert mod.get(f"/gatherings/{g.pk}/occurrences/{second}/move").status_code == 302


def test_split_this_and_the_following_ones(weekly, karim, amina):
    g = weekly
    occs = selectors.gathering_occurrences(gathering=g)
    third = occs[2]
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going", original_start=occs[3].original_start)
    mod = client_for(karim)
    page = mod.get(f"/gatherings/{g.pk}/occurrences/{third.key}/split").content.decode()
    assert 'value="FREQ=WEEKLY;COUNT=2"' in page and f'value="{local(third.start)}"' in page

    r = mod.post(f"/gatherings/{g.pk}/occurrences/{third.key}/split", fields_of(g, rrule="FREQ=WEEKLY"))
    assert r.status_code == 200 and "field-rrule field-invalid" in r.content.decode()
    assert Gathering.objects.count() == 1

    later = third.start + timedelta(hours=1)
    r = mod.post(
        f"/gatherings/{g.pk}/occurrences/{third.key}/split",
        fields_of(g, title="Atelier du soir", start=local(later), rrule="FREQ=WEEKLY;COUNT=2"),
    )
    assert r.status_code == 302
    new = Gathering.objects.exclude(pk=g.pk).get()
    assert r["Location"] == f"/gatherings/{new.pk}/"
    g.refresh_from_db()
    assert [o.start for o in selectors.gathering_occurrences(gathering=g)] == [occs[0].start, occs[1].start]
    assert [o.start for o in selectors.gathering_occurrences(gathering=new)] == [later, occs[3].start + timedelta(hours=1)]
    assert new.title == "Atelier du soir" and new.split_from_id == g.pk
    assert selectors.my_rsvp(user=amina, gathering=new, original_start=occs[3].original_start + timedelta(hours=1)) == "going"
    # The first occurrence is the whole series: its "split" is the edit page.
    first = keys(g)[0]
    assert mod.get(f"/gatherings/{g.pk}/occurrences/{first}/split")["Location"] == f"/gatherings/{g.pk}/edit"


def test_a_cancelled_gathering_cannot_be_edited(weekly, karim):
    g = weekly
    services.gathering_cancel(user=karim, gathering_id=g.pk)
    r = client_for(karim, "en").get(f"/gatherings/{g.pk}/edit", follow=True)
    assert r.redirect_chain[-1][0] == f"/gatherings/{g.pk}/"
    assert "This gathering is cancelled." in r.content.decode()


# --- the agenda --------------------------------------------------------------------------------


def test_agenda_list_groups_by_day_and_filters(weekly, amina, oran, tlemcen):
    g = weekly
    c = client_for(amina, "fr")
    page = c.get("/gatherings/").content.decode()
    assert page.count('class="agenda-row"') == 4 and page.count('class="agenda-day"') == 4
    assert "vendredi" in page.lower()  # weekday names in French
    assert c.get(f"/gatherings/?wilaya={oran.pk}").content.decode().count('class="agenda-row"') == 0
    assert c.get(f"/gatherings/?wilaya={tlemcen.pk}").content.decode().count('class="agenda-row"') == 4
    arabic = client_for(amina, "ar").get("/gatherings/").content.decode()
    assert 'dir="rtl"' in arabic and "الجمعة" in arabic
    assert g.title in arabic


def test_agenda_month_grid(weekly, amina, future):
    month = future.astimezone(ALGIERS)
    page = client_for(amina, "fr").get(f"/gatherings/?view=month&month={month:%Y-%m}").content.decode()
    assert page.count("<th scope=\"col\">") == 7
    assert "lun" in page and "ven" in page
    assert page.count('class="month-item') >= 1
    assert f'name="month" value="{month:%Y-%m}"' in page  # the filters keep the month
    arabic = client_for(amina, "ar").get(f"/gatherings/?view=month&month={month:%Y-%m}").content.decode()
    first_th = arabic.index("<th scope=\"col\">")
    assert "السبت" in arabic[first_th: first_th + 200]  # an Arabic week starts on Saturday
