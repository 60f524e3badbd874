"""The REST endpoints: shapes, permissions and errors through the real API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client

from gatherings import selectors
from gatherings.models import Gathering


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def post(c, url, body, method="post"):
    return getattr(c, method)(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def body(tlemcen_room, future):
    return {
        "room_id": tlemcen_room.pk,
        "title": "Atelier émaillage",
        "start": future.isoformat(),
        "duration_minutes": 90,
        "rrule": "FREQ=WEEKLY;COUNT=4",
        "capacity": 1,
    }


def test_schedule_list_rsvp_and_attendees(karim, amina, lina, body):
    mod = client_for(karim)
    r = post(mod, "/api/gatherings", body)
    assert r.status_code == 201, r.content
    g = r.json()
    assert g["tz"] == "Africa/Algiers" and g["can_manage"] and g["ics_url"].endswith(".ics")
    occ = client_for(amina).get(f"/api/gatherings/{g['id']}/occurrences").json()
    assert len(occ) == 4
    key = occ[0]["key"]
    r = post(client_for(amina), f"/api/gatherings/{g['id']}/rsvp", {"status": "going", "occurrence": key}, "put")
    assert r.json()["status"] == "going"
    r = post(client_for(lina), f"/api/gatherings/{g['id']}/rsvp", {"status": "going", "occurrence": key}, "put")
    assert r.json() == {"gathering_id": g["id"], "occurrence": key, "status": "waitlisted", "waitlist_position": 1}
    agenda = client_for(amina).get("/api/gatherings?mine=true").json()
    assert [i["occurrence"]["key"] for i in agenda] == [key]
    rows = mod.get(f"/api/gatherings/{g['id']}/occurrences/{key}/attendees").json()
    assert [r["status"] for r in rows] == ["going", "waitlisted"]
    assert client_for(amina).get(f"/api/gatherings/{g['id']}/occurrences/{key}/attendees").status_code == 403


def test_errors_are_typed(karim, amina, yacine, body):
    r = post(client_for(amina), "/api/gatherings", body)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = post(client_for(karim), "/api/gatherings", {**body, "rrule": "FREQ=DAILY"})
    assert r.status_code == 400 and r.json()["code"] == "invalid" and r.json()["field"] == "rrule"
    r = post(client_for(karim), "/api/gatherings", {**body, "start": "2001-01-01T10:00:00Z"})
    assert r.json()["field"] == "start"
    r = post(client_for(karim), "/api/gatherings", {**body, "duration_minutes": 0})
    assert r.status_code == 422
    g = post(client_for(karim), "/api/gatherings", body).json()
    assert client_for(yacine).get(f"/api/gatherings/{g['id']}").status_code == 404
    assert Client().get(f"/api/gatherings/{g['id']}").status_code == 401
    r = post(client_for(amina), f"/api/gatherings/{g['id']}/rsvp", {"status": "going", "occurrence": "soon"}, "put")
    assert r.status_code == 400


def test_exceptions_split_and_preview(karim, body):
    mod = client_for(karim)
    g = post(mod, "/api/gatherings", body).json()
    keys = [o["key"] for o in mod.get(f"/api/gatherings/{g['id']}/occurrences").json()]
    assert post(mod, f"/api/gatherings/{g['id']}/occurrences/{keys[1]}/cancel", {}).json()["cancelled"]
    gathering = Gathering.objects.get(pk=g["id"])
    new_start = (gathering.start + timedelta(days=15, hours=2)).isoformat()
    moved = post(mod, f"/api/gatherings/{g['id']}/occurrences/{keys[2]}/move", {"start": new_start}).json()
    assert moved["moved"] and moved["key"] == keys[2]
    r = post(mod, f"/api/gatherings/{g['id']}/occurrences/{keys[3]}/split", {"title": "Suite"})
    assert r.status_code == 201 and r.json()["title"] == "Suite"
    assert len(selectors.gathering_occurrences(gathering=Gathering.objects.get(pk=g["id"]))) == 2
    r = post(mod, "/api/gatherings/preview", {"start": body["start"], "rrule": "FREQ=WEEKLY;BYDAY=FR;COUNT=12", "count": 3})
    assert r.json()["total"] == 12 and len(r.json()["starts"]) == 3
    r = post(mod, "/api/gatherings/preview", {"start": body["start"], "rrule": "FREQ=MINUTELY;COUNT=3"})
    assert r.status_code == 400
    r = post(mod, "/api/gatherings/preview", {"start": body["start"], "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3"})
    # The message is translated (French by default); the field it names is not.
    assert r.status_code == 400 and r.json()["field"] == "rrule" and r.json()["code"] == "invalid"
    r = post(mod, f"/api/gatherings/{g['id']}", {"capacity": 5, "title": "Atelier"}, "patch")
    assert r.json()["capacity"] == 5 and r.json()["title"] == "Atelier"
    assert post(mod, f"/api/gatherings/{g['id']}/cancel", {}).json()["cancelled"]


def test_feed_url_and_revoke(amina):
    c = client_for(amina)
    url = c.get("/api/gatherings/feed").json()["url"]
    assert c.get("/api/gatherings/feed").json()["url"] == url
    new = post(c, "/api/gatherings/feed/revoke", {}).json()["url"]
    assert new != url
    assert Client().get(url).status_code == 404
    assert Client().get(new).status_code == 200


def test_openapi_lists_the_gatherings_endpoints(amina):
    paths = client_for(amina).get("/api/openapi.json").json()["paths"]
    assert "/api/gatherings/{gathering_id}/rsvp" in paths and "/api/gatherings/preview" in paths
    assert "/api/gatherings/{gathering_id}/occurrences/{key}/join" in paths
    assert "/api/gatherings/{gathering_id}/occurrences/{key}/attendance" in paths


def test_the_presenters_picker_finds_members_by_user_name_or_name(karim, amina, lina, yacine):
    c = client_for(karim)
    found = c.get("/api/gatherings/presenters", {"q": "belk"}).json()["members"]
    assert found == [{"username": "amina", "name": "Amina Belkacem"}]
    assert [m["username"] for m in c.get("/api/gatherings/presenters", {"q": "LIN"}).json()["members"]] == ["lina"]
    # Under two letters nothing is searched; a member gone (inactive) is never offered.
    assert c.get("/api/gatherings/presenters", {"q": "a"}).json() == {"members": []}
    yacine.is_active = False
    yacine.save(update_fields=["is_active"])
    assert c.get("/api/gatherings/presenters", {"q": "yac"}).json() == {"members": []}
    assert c.get("/api/gatherings/presenters", {"q": "x" * 61}).status_code == 422
    assert Client().get("/api/gatherings/presenters", {"q": "am"}).status_code in (401, 403)


def test_the_presenters_picker_answers_eight_at_most_and_is_rate_limited(karim, monkeypatch):
    from gatherings import api
    from rooms.ratelimit import TokenBuckets
    from tests import factories

    for n in range(10):
        factories.artisan(f"potier{n}")
    c = client_for(karim)
    assert len(c.get("/api/gatherings/presenters", {"q": "potier"}).json()["members"]) == 8
    monkeypatch.setattr(api, "presenter_buckets", TokenBuckets(burst=1, per_second=0.001))
    assert c.get("/api/gatherings/presenters", {"q": "potier"}).status_code == 200
    refused = c.get("/api/gatherings/presenters", {"q": "potier"})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
