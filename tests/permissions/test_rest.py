"""The authorization matrix of the REST API (/api/), held against docs/permissions.md.

Each role calls every endpoint through Django's test client with its own
session; each call runs in a transaction rolled back afterwards, so no cell
sees what another did. A refusal is `hidden` only when it is exactly the answer
(status, code and message) for an object that does not exist.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from hub.api import api
from rooms.services import send_buckets
from tests.permissions import matrix
from tests.permissions.matrix import LOGIN, OK, Answer, Results
from tests.permissions.world import KINDS, MISSING_ID, ROLES, World, build, png_bytes

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-passphrase"


@dataclass(frozen=True)
class Call:
    """One endpoint: its document key (`METHOD /api/path`), a body, and which id goes missing."""

    key: str
    body: dict[str, Any] | None = None
    upload: str | None = None  # the multipart field of an image
    missing: str | None = None  # the path parameter replaced by an id that does not exist
    values: dict[str, str] = field(default_factory=dict)  # path parameters this call sets itself

    @property
    def method(self) -> str:
        return self.key.split()[0]

    @property
    def path(self) -> str:
        return self.key.split()[1]


def _later(days: int = 0, hours: int = 0) -> str:
    return (timezone.now() + timedelta(days=days, hours=hours)).replace(microsecond=0).isoformat()


ROOM_CALLS = [
    Call("GET /api/rooms/{room_id}", missing="room_id"),
    Call("GET /api/rooms/{room_id}/members", missing="room_id"),
    Call("GET /api/rooms/{room_id}/messages", missing="room_id"),
    Call("POST /api/rooms/{room_id}/follow", missing="room_id"),
    Call("POST /api/rooms/{room_id}/leave", missing="room_id"),
    Call("POST /api/rooms/{room_id}/messages", {"client_id": "sent-by-the-worker", "text": "Salam"}, missing="room_id"),
    Call("POST /api/rooms/{room_id}/slow-mode", {"seconds": 10}, missing="room_id"),
    Call("POST /api/rooms/{room_id}/attachments", upload="file", missing="room_id"),
    Call("POST /api/rooms/attachments/{attachment_id}/listened", missing="attachment_id", values={"of": "voice"}),
    Call(
        "GET /api/rooms/attachments/{attachment_id}/{variant}",
        missing="attachment_id",
        values={"variant": "thumb"},
    ),
    Call("POST /api/reports/{report_id}", {"action": "dismiss"}, missing="report_id"),
    Call("POST /api/gatherings", {"title": "Meet", "start": "START", "duration_minutes": 60}, missing="room_id"),
]
GATHERING_CALLS = [
    Call("GET /api/gatherings/{gathering_id}", missing="gathering_id"),
    Call("PATCH /api/gatherings/{gathering_id}", {"title": "Renamed"}, missing="gathering_id"),
    Call("POST /api/gatherings/{gathering_id}/cancel", missing="gathering_id"),
    Call("GET /api/gatherings/{gathering_id}/occurrences", missing="gathering_id"),
    Call("POST /api/gatherings/{gathering_id}/occurrences/{key}/cancel", missing="gathering_id", values={"key": "next"}),
    Call(
        "POST /api/gatherings/{gathering_id}/occurrences/{key}/move",
        {"start": "MOVED"},
        missing="gathering_id",
        values={"key": "next"},
    ),
    Call(
        "POST /api/gatherings/{gathering_id}/occurrences/{key}/split",
        {"title": "Split"},
        missing="gathering_id",
        values={"key": "next"},
    ),
    Call("PUT /api/gatherings/{gathering_id}/rsvp", {"status": "going"}, missing="gathering_id"),
    Call("GET /api/gatherings/{gathering_id}/occurrences/{key}/attendees", missing="gathering_id", values={"key": "now"}),
    Call("POST /api/gatherings/{gathering_id}/occurrences/{key}/join", missing="gathering_id", values={"key": "now"}),
    Call("GET /api/gatherings/{gathering_id}/occurrences/{key}/attendance", missing="gathering_id", values={"key": "now"}),
]
PLAIN_CALLS = [
    Call("GET /api/rooms"),
    Call("GET /api/rooms/public"),
    Call("POST /api/rooms/direct", {"user": "GHANIA"}),
    Call("POST /api/rooms/groups", {"title": "Nouveau", "members": []}),
    Call("GET /api/search", {"q": "Salam"}),
    Call("GET /api/notifications"),
    Call("POST /api/notifications/read", {}),
    Call("GET /api/reports"),
    Call("GET /api/gatherings"),
    Call("POST /api/gatherings/preview", {"start": "START", "rrule": "FREQ=WEEKLY;COUNT=3"}),
    Call("GET /api/gatherings/presenters", {"q": "Am"}),
    Call("GET /api/gatherings/feed"),
    Call("POST /api/gatherings/feed/revoke"),
    Call("GET /api/registry/artisans"),
    Call("GET /api/registry/artisans/{username}", missing="username"),
    Call("GET /api/registry/census/me"),
    Call("PATCH /api/registry/census/me", {"commune": "Mansourah"}),
    Call("POST /api/registry/census/me/card", {"card_number": "TL-9999"}, upload="photo"),
    Call("GET /api/registry/verifications"),
    Call("POST /api/registry/verifications/{user_id}", {"approve": True}, missing="user_id"),
    Call("GET /api/registry/artisans/{username}/products", missing="username"),
    Call("GET /api/registry/products/{product_id}", missing="product_id"),
    Call("PATCH /api/registry/products/{product_id}", {"title": "Mine now"}, missing="product_id"),
    Call("DELETE /api/registry/products/{product_id}", missing="product_id"),
    Call("POST /api/registry/products", {"title": "Pot"}),
    Call("POST /api/registry/products/{product_id}/photos", upload="photo", missing="product_id"),
    Call("POST /api/registry/products/{product_id}/order", {"note": "Two"}, missing="product_id"),
    Call("POST /api/registry/products/{product_id}/report", {"reason": "abuse"}, missing="product_id"),
    Call("GET /api/registry/product-reports"),
    Call("POST /api/registry/product-reports/{report_id}", {"action": "dismiss"}, missing="report_id"),
    Call("POST /api/registry/artisans/{username}/contact", missing="username"),
    Call("GET /api/registry/exchange"),
    Call(
        "POST /api/registry/exchange",
        {"kind": "need", "material": "clay", "quantity": "5", "unit": "kg", "wilaya_id": "WILAYA"},
    ),
    Call("POST /api/registry/exchange/{post_id}/close", missing="post_id"),
    Call("GET /api/registry/census/stats"),
    Call("GET /api/registry/me/export"),
    Call("POST /api/registry/me/delete", {"password": PASSWORD}),
]


def _values(world: World, kind: str, call: Call) -> dict[str, Any]:
    values: dict[str, Any] = {"username": world.ghania.username, "user_id": world.ghania.pk}
    values |= {"product_id": world.registry["product"], "post_id": world.registry["post"]}
    values["report_id"] = world.registry["product_report"]
    if kind:
        values |= {"room_id": world.rooms[kind].pk, "report_id": world.reports.get(kind, MISSING_ID)}
        of = world.voices if call.values.get("of") == "voice" else world.attachments
        values["attachment_id"] = of.get(kind, MISSING_ID)
        values["variant"] = call.values.get("variant", "image")
        if kind in world.gatherings:
            values["gathering_id"] = world.gatherings[kind]
            values["key"] = (world.occurrence_next if call.values.get("key") == "next" else world.occurrence_now)[kind]
    return values


def _body(world: World, kind: str, call: Call) -> dict[str, Any] | None:
    if call.body is None:
        return None
    fill = {
        "START": _later(days=1),
        "MOVED": _later(days=7, hours=2),
        "GHANIA": world.ghania.pk,
        "WILAYA": world.ghania.profile.wilaya_id,
    }
    body = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in call.body.items()}
    if call.key == "POST /api/gatherings":
        body["room_id"] = world.rooms[kind].pk
    return body


def _perform(client: Client, call: Call, url: str, body: dict[str, Any] | None, asked: list[Any]) -> Answer:
    send_buckets.reset()
    with transaction.atomic():
        if call.upload:
            data = dict(body or {})
            data[call.upload] = _image()
            response = client.post(url, data)
        elif call.method == "GET":
            response = client.get(url, body or {})
        else:
            response = client.generic(call.method, url, json.dumps(body or {}), content_type="application/json")
        transaction.set_rollback(True)
    if response.status_code < 300:
        return OK
    if response.status_code == 401:
        return LOGIN
    data = response.json()
    return Answer(
        ok=False,
        code=data["code"],
        message=f"{response.status_code} {data['message']}",
        details=Answer.details_of(data, asked),
    )


def _image():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png")


def _answer_and_missing(
    world: World, client: Client, kind: str, call: Call, missing_cache: dict[str, Answer]
) -> tuple[Answer, Answer | None]:
    """The answer, and (for a refusal) the same role's answer for an object that does not exist."""
    values = _values(world, kind, call)
    body = _body(world, kind, call)
    named = re.findall(r"{(\w+)}", call.path)
    asked = [*(values[n] for n in named), *(body or {}).values()]
    answer = _perform(client, call, call.path.format(**values), body, asked)
    if answer.ok or not call.missing:
        return answer, None
    if call.key not in missing_cache:
        gone = {**values, call.missing: MISSING_ID if call.missing != "username" else "nobody-here"}
        if call.key == "POST /api/gatherings" and body is not None:
            body = {**body, "room_id": MISSING_ID}
        gone_asked = [*(gone[n] for n in named), *(body or {}).values()]
        missing_cache[call.key] = _perform(client, call, call.path.format(**gone), body, gone_asked)
    return answer, missing_cache[call.key]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"


def test_every_endpoint_answers_each_role_as_documented(media):
    world = build(gatherings=True, registry=True)
    doc = matrix.document()
    clients = {}
    for role in ROLES:
        clients[role] = Client()
        if role != "anonymous":
            clients[role].force_login(world.users[role])
    missing_caches: dict[str, dict[str, Answer]] = {role: {} for role in ROLES}
    mismatches: list[str] = []
    tables: list[str] = []
    places: list[tuple[str, list[Call]]] = [("", PLAIN_CALLS)]
    places += [(kind, ROOM_CALLS + (GATHERING_CALLS if kind in world.gatherings else [])) for kind in KINDS]
    for kind, calls in places:
        results = Results("REST", kind)
        for call in calls:
            for role in ROLES:
                answer, missing = _answer_and_missing(world, clients[role], kind, call, missing_caches[role])
                results.record(call.key, role, matrix.word(answer, missing))
        expected = doc.get(("REST", kind), {})
        mismatches += results.mismatches(expected)
        for key, by_role in expected.items():
            if key not in results.observed and set(by_role.values()) != {matrix.NOT_APPLICABLE}:
                mismatches.append(f"REST: {kind or 'no room'}: `{key}` is in the document but not called here")
        tables.append(f"### REST: {kind}\n" + results.table())
    assert not mismatches, "\n".join(mismatches) + "\n\nobserved:\n" + "\n\n".join(tables)


def test_every_endpoint_is_in_the_document():
    schema = api.get_openapi_schema()
    endpoints = {
        f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops
    }
    doc = matrix.document()
    documented = {key for (surface, _), table in doc.items() if surface == "REST" for key in table}
    missing = sorted(endpoints - documented)
    assert not missing, f"endpoints missing from docs/permissions.md: {missing}"
    called = {c.key for c in ROOM_CALLS + GATHERING_CALLS + PLAIN_CALLS}
    assert endpoints <= called, f"endpoints the matrix does not call: {sorted(endpoints - called)}"
