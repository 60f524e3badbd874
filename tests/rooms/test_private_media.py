"""Message images: served through a permission check, never cached by others, gone with their message."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from rooms import services
from rooms.models import Membership
from tests import factories
from tests.rooms.test_attachments import api_upload, image_bytes, media, world  # noqa: F401

pytestmark = pytest.mark.django_db


def client_of(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def post_image(user, room) -> dict:
    body = api_upload(user, room, "pot.png", image_bytes()).json()
    services.message_post(user=user, room_id=room.pk, client_id=f"c{body['id']}", text="", attachment_ids=[body["id"]])
    return body


def test_a_private_groups_image_is_for_its_members_only(world):  # noqa: F811
    walid, amina = world["walid"], world["amina"]
    body = post_image(walid, world["secret"])
    for variant in ("url", "thumb"):
        mine = client_of(walid).get(body[variant])
        assert mine.status_code == 200
        assert b"".join(mine.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
        assert mine["Content-Type"] == "image/png"
        assert mine["Cache-Control"].startswith("private")
        assert client_of(amina).get(body[variant]).status_code == 404  # not a member
        assert client_of().get(body[variant]).status_code == 401
    # Invited into the group (no service invites yet: the membership is what a future one writes).
    Membership.objects.create(room=world["secret"], user=amina, source=Membership.Source.INVITE)
    assert client_of(amina).get(body["url"]).status_code == 200


def test_an_image_not_yet_sent_is_its_uploaders_only(world):  # noqa: F811
    body = api_upload(world["amina"], world["guild"], "pot.png", image_bytes()).json()
    assert client_of(world["amina"]).get(body["url"]).status_code == 200
    other = factories.yacine(pottery_=world["amina"].profile.trades.get())
    assert client_of(other).get(body["url"]).status_code == 404


def test_behind_nginx_the_file_is_sent_by_an_internal_redirect(world, settings):  # noqa: F811
    settings.HIRFA_ACCEL_REDIRECT = True
    body = post_image(world["walid"], world["secret"])
    answer = client_of(world["walid"]).get(body["url"])
    assert answer.status_code == 200 and answer.content == b""
    assert answer["X-Accel-Redirect"].startswith("/media/attachments/")
    assert answer["Cache-Control"].startswith("private")
    nginx = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    assert "location /media/attachments/ {\n        internal;" in nginx


def test_a_deleted_messages_images_leave_storage(world, media, django_capture_on_commit_callbacks):  # noqa: F811
    walid = world["walid"]
    body = post_image(walid, world["secret"])
    files = [p for p in Path(media).rglob("*") if p.is_file()]
    assert len(files) == 2  # the image and its thumbnail
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=walid, room_id=world["secret"].pk, seq=1)
    assert [p for p in Path(media).rglob("*") if p.is_file()] == []
    assert client_of(walid).get(body["url"]).status_code == 404
