"""The REST API through Django's test client: auth, errors, and each endpoint."""

from __future__ import annotations

import pytest
from django.test import Client

from hub.errors import HirfaError
from hub.models import Notification
from rooms import services
from rooms.models import Membership, Message, Report, Room, RoomKind
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Amina and Yacine, potters; Sofia, a weaver of Alger; a private group of Sofia's."""
    pottery = factories.pottery()
    weaving = factories.weaving()
    tlemcen = factories.tlemcen()
    amina = factories.amina(pottery_=pottery, tlemcen_=tlemcen)
    yacine = factories.yacine(pottery_=pottery)
    sofia = factories.sofia(weaving_=weaving)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=pottery)
    weavers = Room.objects.get(kind=RoomKind.GUILD, trade=weaving)
    secret = services.group_create(user=sofia, title="Sofia's circle", member_ids=[])
    return {
        "amina": amina, "yacine": yacine, "sofia": sofia, "guild": guild, "weavers": weavers,
        "secret": secret, "pottery": pottery, "tlemcen": tlemcen,
    }


def client_for(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def post(client: Client, url: str, data: dict | None = None):
    return client.post(url, data or {}, content_type="application/json")


def say(user, room, text: str, client_id: str):
    return services.message_post(user=user, room_id=room.pk, client_id=client_id, text=text).message


# --- auth, errors, schema ---------------------------------------------------------


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/rooms"),
        ("get", "/api/rooms/public"),
        ("get", "/api/rooms/1"),
        ("get", "/api/rooms/1/messages"),
        ("get", "/api/search?q=x"),
        ("get", "/api/notifications"),
        ("get", "/api/reports"),
        ("post", "/api/rooms/groups"),
    ],
)
def test_anonymous_requests_are_unauthenticated(method, url):
    response = getattr(Client(), method)(url)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.json()["message"]


def test_anonymous_unsafe_request_is_401_before_any_csrf_check(world):
    response = Client(enforce_csrf_checks=True).post(f"/api/rooms/{world['guild'].pk}/follow")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_openapi_schema_lists_the_paths():
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/rooms", "/api/rooms/public", "/api/rooms/{room_id}", "/api/rooms/{room_id}/members",
        "/api/rooms/{room_id}/messages", "/api/search", "/api/notifications",
        "/api/notifications/read", "/api/rooms/{room_id}/follow", "/api/rooms/{room_id}/leave",
        "/api/rooms/direct", "/api/rooms/groups", "/api/rooms/{room_id}/attachments",
        "/api/reports", "/api/reports/{report_id}",
    ):
        assert path in paths, path
    assert Client().get("/api/docs").status_code == 200


def test_missing_and_forbidden_rooms_answer_the_same(world):
    client = client_for(world["amina"])
    missing_id = Room.objects.order_by("-pk").first().pk + 1000
    for suffix in ("", "/members", "/messages"):
        forbidden = client.get(f"/api/rooms/{world['secret'].pk}{suffix}")
        missing = client.get(f"/api/rooms/{missing_id}{suffix}")
        assert forbidden.status_code == missing.status_code == 404
        f_body, m_body = forbidden.json(), missing.json()
        assert f_body["code"] == m_body["code"] == "not_found"
        assert f_body["message"] == m_body["message"]
        assert set(f_body) == set(m_body)


def test_validation_errors_are_422_invalid(world):
    client = client_for(world["amina"])
    response = client.get(f"/api/rooms/{world['guild'].pk}/messages?limit=0")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid" and body["message"]
    assert body["errors"][0]["loc"][-1] == "limit"
    response = post(client, "/api/rooms/groups", {"members": []})
    assert response.status_code == 422 and response.json()["code"] == "invalid"


def test_unsafe_methods_need_the_csrf_token(world):
    client = client_for(world["amina"], csrf=True)
    refused = post(client, f"/api/rooms/{world['weavers'].pk}/follow")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    client.get("/api/rooms")  # no cookie is set by the API itself: fetch one as a page would
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    accepted = client.post(
        f"/api/rooms/{world['weavers'].pk}/follow",
        {},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret),
    )
    assert accepted.status_code == 200, accepted.content


# --- rooms ------------------------------------------------------------------------


def test_rooms_lists_followed_rooms_with_unread(world):
    say(world["yacine"], world["guild"], "Salam les potiers", "c1")
    say(world["yacine"], world["guild"], "Qui vient au salon ?", "c2")
    body = client_for(world["amina"]).get("/api/rooms").json()
    by_id = {r["id"]: r for r in body}
    assert world["guild"].pk in by_id
    assert world["secret"].pk not in by_id and world["weavers"].pk not in by_id
    guild = by_id[world["guild"].pk]
    assert guild["unread"] == 2 and guild["last_id"] == 2 and guild["kind"] == "guild"
    assert guild["title"]


def test_public_rooms_filter_by_kind_and_query(world):
    client = client_for(world["amina"])
    body = client.get("/api/rooms/public").json()
    ids = {r["id"] for r in body}
    assert {world["guild"].pk, world["weavers"].pk} <= ids
    assert world["secret"].pk not in ids
    follows = {r["id"]: r["follows"] for r in body}
    assert follows[world["guild"].pk] is True and follows[world["weavers"].pk] is False
    guilds = client.get("/api/rooms/public?kind=guild").json()
    assert {r["kind"] for r in guilds} == {"guild"}
    weaving = client.get("/api/rooms/public?kind=guild&q=tissage").json()
    assert [r["id"] for r in weaving] == [world["weavers"].pk]
    assert client.get("/api/rooms/public?kind=nonsense").status_code == 422


def test_room_detail_and_members(world):
    client = client_for(world["amina"])
    say(world["yacine"], world["guild"], "Bonjour", "c1")
    room = client.get(f"/api/rooms/{world['guild'].pk}").json()
    assert room["id"] == world["guild"].pk
    assert room["follows"] is True and room["role"] == "member"
    assert room["unread"] == 1 and room["can_moderate"] is False
    members = client.get(f"/api/rooms/{world['guild'].pk}/members").json()
    assert [m["user"]["name"] for m in members] == ["Amina Belkacem", "Yacine Haddad"]
    # A public room one does not follow is readable too.
    weavers = client.get(f"/api/rooms/{world['weavers'].pk}").json()
    assert weavers["follows"] is False and weavers["role"] is None


def test_messages_history_and_changes(world):
    for i in range(1, 6):
        say(world["yacine"], world["guild"], f"message {i}", f"c{i}")
    client = client_for(world["amina"])
    url = f"/api/rooms/{world['guild'].pk}/messages"
    page = client.get(f"{url}?limit=2").json()
    assert [m["id"] for m in page["messages"]] == [4, 5] and page["more"] is True
    first = page["messages"][0]
    assert first["type"] == "message" and first["text"] == "message 4"
    assert first["author"]["name"] == "Yacine Haddad" and first["room"] == world["guild"].pk
    older = client.get(f"{url}?before=4&limit=10").json()
    assert [m["id"] for m in older["messages"]] == [1, 2, 3] and older["more"] is False
    services.message_edit(user=world["yacine"], room_id=world["guild"].pk, seq=2, text="edited")
    rev = page["messages"][-1]["rev"]
    changes = client.get(f"{url}?since_rev={rev}").json()
    assert [(m["id"], m["text"]) for m in changes["messages"]] == [(2, "edited")]


def test_follow_and_leave(world):
    client = client_for(world["amina"])
    weavers = world["weavers"].pk
    assert post(client, f"/api/rooms/{weavers}/follow").json() == {"room": weavers, "follows": True}
    assert Membership.objects.get(room_id=weavers, user=world["amina"]).active
    assert post(client, f"/api/rooms/{weavers}/leave").json() == {"room": weavers, "follows": False}
    assert not Membership.objects.get(room_id=weavers, user=world["amina"]).active
    refused = post(client, f"/api/rooms/{world['secret'].pk}/follow")
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"


def test_slow_mode_is_set_by_moderators_only(world):
    guild = world["guild"].pk
    refused = post(client_for(world["amina"]), f"/api/rooms/{guild}/slow-mode", {"seconds": 30})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    factories.moderator_of(world["yacine"], trade_=world["pottery"])
    moderator = client_for(world["yacine"])
    done = post(moderator, f"/api/rooms/{guild}/slow-mode", {"seconds": 30})
    assert done.json() == {"room": guild, "slow_mode_seconds": 30}
    too_long = post(moderator, f"/api/rooms/{guild}/slow-mode", {"seconds": 7200})
    assert too_long.status_code == 422
    say(world["amina"], world["guild"], "first", "s1")
    with pytest.raises(HirfaError) as exc:
        say(world["amina"], world["guild"], "second", "s2")
    assert exc.value.code == "slow_mode"


def test_direct_room(world):
    client = client_for(world["amina"])
    first = post(client, "/api/rooms/direct", {"user": world["sofia"].pk})
    assert first.status_code == 200 and first.json()["kind"] == "direct"
    again = post(client, "/api/rooms/direct", {"user": world["sofia"].pk}).json()
    assert again["id"] == first.json()["id"]
    sofia = client_for(world["sofia"])
    assert sofia.get(f"/api/rooms/{again['id']}").status_code == 200
    assert client_for(world["yacine"]).get(f"/api/rooms/{again['id']}").status_code == 404
    yourself = post(client, "/api/rooms/direct", {"user": world["amina"].pk})
    assert yourself.status_code == 400 and yourself.json()["code"] == "invalid"
    assert post(client, "/api/rooms/direct", {"user": 0}).status_code == 422


def test_group_create(world):
    client = client_for(world["amina"])
    response = post(client, "/api/rooms/groups", {"title": "Salon 2026", "members": [world["yacine"].pk]})
    assert response.status_code == 201
    group = response.json()
    assert group["kind"] == "group" and group["title"] == "Salon 2026"
    assert client_for(world["yacine"]).get(f"/api/rooms/{group['id']}").status_code == 200
    assert client_for(world["sofia"]).get(f"/api/rooms/{group['id']}").status_code == 404
    blank = post(client, "/api/rooms/groups", {"title": "   "})
    assert blank.status_code == 400 and blank.json()["code"] == "invalid"


# --- search, notifications ---------------------------------------------------------


def test_search_endpoint(world):
    say(world["yacine"], world["guild"], "Je vends de la poterie de Tlemcen", "c1")
    say(world["sofia"], world["secret"], "poterie secrète", "c2")
    client = client_for(world["amina"])
    hits = client.get("/api/search", {"q": "poterie"}).json()
    assert [(h["room"], h["id"]) for h in hits] == [(world["guild"].pk, 1)]
    assert hits[0]["author"]["name"] == "Yacine Haddad" and "poterie" in hits[0]["excerpt"]
    forbidden = client.get("/api/search", {"q": "poterie", "room": world["secret"].pk})
    assert forbidden.status_code == 404 and forbidden.json()["code"] == "not_found"
    empty = client.get("/api/search", {"q": "  "})
    assert empty.status_code == 400 and empty.json()["code"] == "empty"
    assert client.get("/api/search").status_code == 422


def test_notifications_list_and_read(world):
    say(world["yacine"], world["guild"], "@amina tu viens ?", "c1")
    say(world["amina"], world["guild"], "@yacine oui", "c2")
    client = client_for(world["amina"])
    notes = client.get("/api/notifications").json()
    assert len(notes) == 1
    assert notes[0]["kind"] == "mention" and notes[0]["read_at"] is None
    assert notes[0]["data"]["room"] == world["guild"].pk
    assert post(client, "/api/notifications/read", {"ids": [notes[0]["id"]]}).json() == {"updated": 1}
    assert client.get("/api/notifications?unread=true").json() == []
    # Someone else's notification is never marked by me.
    theirs = Notification.objects.get(user=world["yacine"])
    assert post(client, "/api/notifications/read", {"ids": [theirs.pk]}).json() == {"updated": 0}
    assert post(client_for(world["yacine"]), "/api/notifications/read", {}).json() == {"updated": 1}


# --- moderation --------------------------------------------------------------------


@pytest.fixture
def reported(world):
    moderator = factories.nadia(pottery_=world["pottery"])
    message = say(world["yacine"], world["guild"], "spam spam", "c1")
    report = services.message_report(
        user=world["amina"], room_id=world["guild"].pk, seq=message.id, reason="spam"
    )
    return {**world, "nadia": moderator, "report": report}


def test_reports_queue_for_moderators_only(reported):
    queue = client_for(reported["nadia"]).get("/api/reports").json()
    assert [r["id"] for r in queue] == [reported["report"].pk]
    assert queue[0]["message"]["text"] == "spam spam" and queue[0]["reason"] == "spam"
    assert queue[0]["reporter"]["name"] == "Amina Belkacem"
    assert client_for(reported["sofia"]).get("/api/reports").json() == []
    not_mod = post(client_for(reported["sofia"]), f"/api/reports/{reported['report'].pk}", {"action": "dismiss"})
    assert not_mod.status_code == 404 and not_mod.json()["code"] == "not_found"


def test_report_dismiss(reported):
    response = post(client_for(reported["nadia"]), f"/api/reports/{reported['report'].pk}", {"action": "dismiss"})
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert Message.objects.get(room=reported["guild"], seq=1).deleted_at is None


def test_report_delete(reported):
    client = client_for(reported["nadia"])
    response = post(client, f"/api/reports/{reported['report'].pk}", {"action": "delete"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "actioned" and body["message"]["deleted"] is True
    assert Report.objects.get(pk=reported["report"].pk).status == "actioned"
    assert client.get("/api/reports").json() == []
    bad = post(client, f"/api/reports/{reported['report'].pk}", {"action": "burn"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid"


def test_a_message_sent_over_http_is_stored_once_with_the_sockets_client_id(world):
    """The service worker sends the outbox over HTTP when the page is closed; the page may
    send the same item over its socket: one message either way."""
    client = client_for(world["amina"], csrf=True)
    client.get("/rooms/")  # the CSRF cookie, as the page had it
    token = client.cookies["csrftoken"].value
    url = f"/api/rooms/{world['guild'].pk}/messages"
    body = {"client_id": "out-1", "text": "Le four est prêt"}
    assert client.post(url, body, content_type="application/json").status_code == 403  # no token
    first = client.post(url, body, content_type="application/json", headers={"X-CSRFToken": token})
    again = client.post(url, body, content_type="application/json", headers={"X-CSRFToken": token})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert services.message_post(user=world["amina"], room_id=world["guild"].pk, client_id="out-1", text="Le four est prêt").created is False
    assert Message.objects.filter(room=world["guild"], client_id="out-1").count() == 1
    secret = client.post(f"/api/rooms/{world['secret'].pk}/messages", body, content_type="application/json",
                         headers={"X-CSRFToken": token})
    assert secret.status_code == 404
