"""The authorization matrix of the pages that write, held against docs/permissions.md.

Each role posts every form through Django's test client with its own session
(in English); each post runs in a transaction rolled back afterwards. The
answer is read as a person sees it: the log-in page, a 404 or 403, an error
message, or the form shown again with its errors. A refusal is `hidden` only
when it is exactly what a missing room (gathering, report, product…) shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.contrib.messages import constants, get_messages
from django.core.cache import cache
from django.db import transaction
from django.forms import BaseForm
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from rooms.services import send_buckets
from tests.permissions import matrix
from tests.permissions.matrix import LOGIN, OK, Answer, Results
from tests.permissions.world import KINDS, MISSING_ID, ROLES, World, build, png_bytes

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-passphrase"
FORBIDDEN_TEXT = "You are not allowed to do this."


@dataclass(frozen=True)
class Post:
    """One page that writes: its document key (`POST <url pattern>`), its form, which id goes missing."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    upload: str | None = None
    missing: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    done_at_login: bool = False  # the log-in page is where it sends one when done
    ends_session: bool = False  # it logs the member out: a session of its own
    json: dict[str, Any] | None = None  # posted as a JSON body instead of a form

    @property
    def pattern(self) -> str:
        return self.key.split(maxsplit=1)[1]


def _local(days: int = 0, hours: int = 0) -> str:
    when = timezone.localtime(timezone.now() + timedelta(days=days, hours=hours), timezone.get_fixed_timezone(60))
    return when.strftime("%Y-%m-%dT%H:%M")


GATHERING_FORM = {"title": "Meet", "start": "TOMORROW", "tz": "Africa/Algiers", "duration_minutes": 60, "visibility": "members"}

ROOM_POSTS = [
    Post("POST rooms/<int:room_id>/follow", missing="room_id"),
    Post("POST rooms/<int:room_id>/leave", missing="room_id"),
    Post("POST rooms/<int:room_id>/slow-mode", {"seconds": 10}, missing="room_id"),
    Post("POST moderation/reports/<int:report_id>", {"action": "dismiss"}, missing="report_id"),
    Post("POST gatherings/new", {**GATHERING_FORM, "room": "ROOM"}, missing="room"),
]
GATHERING_POSTS = [
    Post("POST gatherings/<int:gathering_id>/edit", {**GATHERING_FORM, "title": "Renamed"}, missing="gathering_id"),
    Post("POST gatherings/<int:gathering_id>/materials", {"title": "Steps"}, upload="file", missing="gathering_id"),
    Post("POST gatherings/<int:gathering_id>/materials/<int:material_id>/delete", missing="gathering_id"),
    Post("POST gatherings/<int:gathering_id>/rsvp", {"status": "going"}, missing="gathering_id"),
    Post("POST gatherings/<int:gathering_id>/cancel", missing="gathering_id"),
    Post(
        "POST gatherings/<int:gathering_id>/occurrences/<str:key>/move",
        {"start": "NEXT_WEEK", "duration_minutes": 60},
        missing="gathering_id",
        values={"key": "next"},
    ),
    Post("POST gatherings/<int:gathering_id>/occurrences/<str:key>/cancel", missing="gathering_id", values={"key": "next"}),
    Post(
        "POST gatherings/<int:gathering_id>/occurrences/<str:key>/split",
        {**GATHERING_FORM, "start": "NEXT_WEEK", "title": "Split"},
        missing="gathering_id",
        values={"key": "next"},
    ),
    Post("POST gatherings/<int:gathering_id>/occurrences/<str:key>/join", missing="gathering_id", values={"key": "now"}),
    Post("POST gatherings/<int:gathering_id>/replays/<int:recording_id>/delete", missing="gathering_id"),
]
PLAIN_POSTS = [
    Post("POST i18n/setlang/", {"language": "en", "next": "/"}),
    Post(
        "POST signup/",
        {
            "username": "newcomer", "email": "newcomer@example.org", "password1": PASSWORD, "password2": PASSWORD,
            "display_name": "Newcomer", "wilaya": "WILAYA", "trades": "TRADE", "languages": "fr",
        },
    ),
    Post("POST login/", {"username": "SELF", "password": PASSWORD}, ends_session=True),
    Post("POST logout/", done_at_login=True, ends_session=True),
    Post("POST password/change/", ends_session=True, data={"old_password": PASSWORD, "new_password1": "an-other-passphrase-9", "new_password2": "an-other-passphrase-9"}),
    Post("POST password/reset/", {"email": "ghania@example.org"}),
    Post("POST password/reset/<uidb64>/<token>/", {"new_password1": "an-other-passphrase-9", "new_password2": "an-other-passphrase-9"}),
    Post("POST profile/", {"display_name": "Renamed", "wilaya": "WILAYA", "trades": "TRADE", "languages": "fr"}),
    Post("POST direct/", {"user": "GHANIA"}),
    Post("POST groups/", {"title": "Nouveau"}),
    Post("POST gatherings/feed/revoke"),
    Post("POST registry/", {"action": "census", "commune": "Mansourah"}),
    Post("POST registry/review/cards/<int:user_id>", {"decision": "approve"}, missing="user_id"),
    Post("POST registry/review/reports/<int:report_id>", {"action": "dismiss"}, missing="report_id"),
    Post("POST registry/me/delete", {"password": PASSWORD}, ends_session=True),
    Post("POST artisans/<str:username>/contact", missing="username"),
    Post("POST artisans/<str:username>/follow", missing="username"),
    Post("POST products/<int:product_id>/favourite", missing="product_id"),
    Post("POST products/new", {"title": "Pot", "availability": "in_stock", "status": "published"}),
    Post("POST products/<int:product_id>/edit", {"title": "Mine now", "availability": "in_stock", "status": "published"}, missing="product_id"),
    Post("POST products/<int:product_id>/order", {"note": "Two"}, missing="product_id"),
    Post("POST products/<int:product_id>/report", {"reason": "abuse"}, missing="product_id"),
    Post("POST products/<int:product_id>/enquiry", {"name": "Lamia", "contact": "lamia@example.org", "text": "Prix ?"},
         missing="product_id"),
    Post("POST enquiries/<str:link>/", {"text": "Et en bleu ?"}, missing="link"),
    Post("POST a/<str:code>/report", {"text": "Bought as hers, it is a copy"}, missing="code"),
    Post("POST exchange/", {"kind": "need", "material": "clay", "quantity": "5", "unit": "kg", "wilaya": "WILAYA"}),
    Post("POST exchange/<int:post_id>/close", missing="post_id"),
    Post("POST exchange/<int:post_id>/reply", missing="post_id"),
    Post("POST notifications/push", json={"endpoint": "https://push.example.org/device", "remove": True}),
    Post("POST notifications/settings", {"push_mention": "on", "quiet_from": "22:00", "quiet_to": "07:00"}),
    Post("POST notifications/email", {"after_hours": "1"}),
    Post("POST notifications/read"),
]


def _values(world: World, kind: str, post: Post, role: str) -> dict[str, Any]:
    ghania = world.ghania
    values: dict[str, Any] = {
        "username": ghania.username,
        "user_id": ghania.pk,
        "product_id": world.registry["product"],
        "post_id": world.registry["post"],
        "report_id": world.registry["product_report"],
        "code": world.tag_code,
        "link": world.enquiry_link,
        "uidb64": urlsafe_base64_encode(force_bytes(ghania.pk)),
        "token": default_token_generator.make_token(ghania),
    }
    if kind:
        values |= {"room_id": world.rooms[kind].pk, "report_id": world.reports.get(kind, MISSING_ID)}
        if kind in world.gatherings:
            values["gathering_id"] = world.gatherings[kind]
            values["key"] = (world.occurrence_next if post.values.get("key") == "next" else world.occurrence_now)[kind]
            if "<int:recording_id>" in post.pattern:
                values["recording_id"] = _replay_of(world.gatherings[kind])
            if "<int:material_id>" in post.pattern:
                values["material_id"] = _material_of(world.gatherings[kind])
    return values


def _replay_of(gathering_id: int) -> int:
    """A fresh replay of the gathering's first occurrence (deleting one must not hide the next role's)."""
    from gatherings.models import Gathering, OccurrenceMeeting
    from signaling.models import Meeting, Recording, RecordingState

    gathering = Gathering.objects.get(pk=gathering_id)
    now = timezone.now()
    meeting = Meeting.objects.create(room_id=gathering.room_id, ended_at=now)
    OccurrenceMeeting.objects.create(gathering=gathering, occurrence_start=gathering.start, meeting=meeting)
    return Recording.objects.create(meeting=meeting, stopped_at=now, state=RecordingState.READY).pk


def _material_of(gathering_id: int) -> int:
    """A fresh PDF of the gathering (removing one must not hide the next role's)."""
    from django.core.files.base import ContentFile

    from gatherings.models import Material

    material = Material(gathering_id=gathering_id, kind="pdf", content_type="application/pdf", size=14)
    material.file.save(f"{gathering_id}/matrix.pdf", ContentFile(b"%PDF-1.4\n%%EOF\n"), save=False)
    material.save()
    return material.pk


def _url(pattern: str, values: dict[str, Any]) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), pattern)


def _data(world: World, kind: str, post: Post, role: str) -> dict[str, Any]:
    user = world.users.get(role)
    fill = {
        "TOMORROW": _local(days=1),
        "NEXT_WEEK": _local(days=7, hours=2),
        "GHANIA": world.ghania.pk,
        "WILAYA": world.ghania.profile.wilaya_id,
        "TRADE": world.ghania.profile.trades.get().pk,
        "ROOM": world.rooms[kind].pk if kind else "",
        "SELF": user.username if user else world.ghania.username,
    }
    return {k: fill.get(v, v) if isinstance(v, str) else v for k, v in post.data.items()}


def _read(response: Any, post: Post) -> Answer:
    """What a person sees after the post (numbers in messages left out: they echo the input)."""
    if response.status_code in (301, 302) and response["Location"].startswith(resolve_url(settings.LOGIN_URL)):
        return OK if post.done_at_login else LOGIN
    if response.status_code == 404:
        return Answer(ok=False, code="not_found", message="404")
    if response.status_code == 403:
        return Answer(ok=False, code="forbidden", message="403")
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level >= constants.ERROR]
    for context in response.context or []:
        form = context.get("form") if hasattr(context, "get") else None
        if isinstance(form, BaseForm) and form.errors:
            errors.append(form.errors.as_text())
            break
    if errors:
        text = re.sub(r"\d+", "#", " ".join(errors))
        return Answer(ok=False, code="forbidden" if text == FORBIDDEN_TEXT else "refused", message=text)
    if response.get("Content-Type", "").startswith("application/json") and response.json().get("ok") is False:
        return Answer(ok=False, code="refused", message=str(response.json()))
    if response.status_code >= 400:
        return Answer(ok=False, code=f"http_{response.status_code}")
    return OK


def _perform(client: Client, url: str, data: dict[str, Any], post: Post) -> Answer:
    send_buckets.reset()
    cache.clear()  # the pages' throttles (per address: every role posts from 127.0.0.1) have their own tests
    with transaction.atomic():
        if post.upload:
            from django.core.files.uploadedfile import SimpleUploadedFile

            data = {**data, post.upload: SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png")}
        if post.json is not None:
            response = client.post(url, post.json, content_type="application/json")
        else:
            response = client.post(url, data)
        answer = _read(response, post)
        transaction.set_rollback(True)
    client.cookies.pop("messages", None)  # shown: not carried into the next answer
    return answer


def _client(world: World, role: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"


def test_every_page_that_writes_answers_each_role_as_documented(media):
    world = build(gatherings=True, registry=True)
    doc = matrix.document()
    missing_caches: dict[str, dict[str, Answer]] = {role: {} for role in ROLES}
    clients = {role: _client(world, role) for role in ROLES}
    mismatches: list[str] = []
    tables: list[str] = []
    places: list[tuple[str, list[Post]]] = [("", PLAIN_POSTS)]
    places += [(kind, ROOM_POSTS + (GATHERING_POSTS if kind in world.gatherings else [])) for kind in KINDS]
    for kind, posts in places:
        results = Results("Pages", kind)
        for post in posts:
            for role in ROLES:
                client = _client(world, role) if post.ends_session else clients[role]
                values = _values(world, kind, post, role)
                data = _data(world, kind, post, role)
                answer = _perform(client, _url(post.pattern, values), data, post)
                missing = None
                if not answer.ok and post.missing:
                    cache = missing_caches[role]
                    if post.key not in cache:
                        gone = {**values, post.missing: MISSING_ID if post.missing != "username" else "nobody-here"}
                        gone_data = {**data, "room": MISSING_ID} if post.missing == "room" else data
                        cache[post.key] = _perform(client, _url(post.pattern, gone), gone_data, post)
                    missing = cache[post.key]
                results.record(post.key, role, matrix.word(answer, missing))
        expected = doc.get(("Pages", kind), {})
        mismatches += results.mismatches(expected)
        tables.append(f"### Pages: {kind}\n" + results.table())
    assert not mismatches, "\n".join(mismatches) + "\n\nobserved:\n" + "\n\n".join(tables)


def _patterns(patterns: list[Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for p in patterns:
        if isinstance(p, URLResolver):
            found += _patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            found.append(prefix + str(p.pattern))
    return found


def _read_only_pages() -> set[str]:
    text = matrix.DOC_PATH.read_text(encoding="utf-8")
    section = text.split("### Pages that only read", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `([^`]*)`", section, flags=re.MULTILINE))


def test_every_page_is_in_the_document():
    """Each URL outside /api/ and /admin/ either writes (a row of the pages tables) or only reads."""
    pages = {p for p in _patterns(get_resolver().url_patterns) if not p.startswith(("api/", "admin/", "^media"))}
    doc = matrix.document()
    writes = {key.split(maxsplit=1)[1] for (surface, _), table in doc.items() if surface == "Pages" for key in table}
    reads = _read_only_pages()
    missing = sorted(pages - writes - reads)
    assert not missing, f"pages missing from docs/permissions.md: {missing}"
    posted = {p.pattern for p in ROOM_POSTS + GATHERING_POSTS + PLAIN_POSTS}
    assert writes <= posted, f"pages the matrix does not post to: {sorted(writes - posted)}"


def test_pages_that_only_read_refuse_a_post(admin_client):
    """A page the document lists as read-only answers a post with 405, even for an admin."""
    from tests import factories

    amina = factories.amina()
    wrote = []
    for pattern in sorted(_read_only_pages()):
        values = {"room_id": MISSING_ID, "gathering_id": MISSING_ID, "user_id": MISSING_ID, "product_id": MISSING_ID,
                  "recording_id": MISSING_ID, "material_id": MISSING_ID, "name": "video.webm", "username": amina.username,
                  "notification_id": MISSING_ID, "key": "20260101T000000Z", "token": "x", "uidb64": "x", "code": "x"}
        response = admin_client.post(_url(pattern, values))
        if response.status_code != 405:
            wrote.append(f"{pattern}: {response.status_code}")
    assert not wrote, f"pages listed as read-only that take a post: {wrote}"
