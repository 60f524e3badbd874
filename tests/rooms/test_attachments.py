"""Image attachments: the service and its endpoint, with real images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from hub.errors import ErrorCode, HirfaError
from rooms import attachments, services
from rooms.attachments import attachment_upload
from rooms.models import Attachment, Room, RoomKind
from rooms.ratelimit import TokenBuckets
from rooms.selectors import room_history
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Iterator[Path]:
    settings.MEDIA_ROOT = tmp_path
    attachments.upload_buckets.reset()
    yield tmp_path
    attachments.upload_buckets.reset()


@pytest.fixture
def world():
    pottery = factories.pottery()
    amina = factories.amina(pottery_=pottery)
    walid = factories.walid()
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=pottery)
    secret = services.group_create(user=walid, title="Cercle", member_ids=[])
    return {"amina": amina, "walid": walid, "guild": guild, "secret": secret}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (800, 600), mode: str = "RGB") -> bytes:
    image = Image.new(mode, size, "white" if mode != "1" else 1)
    if mode == "RGB":
        image.paste((200, 90, 30), (10, 10, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def noisy_png(side: int = 200) -> bytes:
    import os

    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def api_upload(user, room, name: str, data: bytes, content_type: str = "image/png"):
    client = Client()
    client.force_login(user)
    return client.post(
        f"/api/rooms/{room.pk}/attachments", {"file": upload(name, data, content_type)}
    )


def test_png_is_stored_reencoded_with_a_thumbnail(world, media):
    attachment = attachment_upload(
        user=world["amina"], room_id=world["guild"].pk, upload=upload("pot.png", image_bytes())
    )
    assert (attachment.width, attachment.height) == (800, 600)
    assert attachment.content_type == "image/png" and attachment.message is None
    stored = Path(attachment.image.path)
    thumb = Path(attachment.thumbnail.path)
    assert media in stored.parents and media in thumb.parents
    assert "pot" not in stored.name  # the client's file name is never used
    with Image.open(thumb) as t:
        assert t.size == (320, 240)
    with Image.open(stored) as s:
        assert s.size == (800, 600) and s.format == "PNG"


def test_endpoint_accepts_a_jpeg_and_the_message_carries_it(world):
    response = api_upload(world["amina"], world["guild"], "photo.jpg", image_bytes("JPEG"), "image/jpeg")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["width"] == 800 and body["height"] == 600
    # Never the public media path: the images go through a permission check.
    assert body["url"] == f"/api/rooms/attachments/{body['id']}/image"
    assert body["thumb"] == f"/api/rooms/attachments/{body['id']}/thumb"
    services.message_post(
        user=world["amina"], room_id=world["guild"].pk, client_id="c1", text="", attachment_ids=[body["id"]]
    )
    messages, _ = room_history(user=world["amina"], room_id=world["guild"].pk)
    assert [a.id for a in messages[-1].attachments] == [body["id"]]


def test_text_file_is_refused(world):
    response = api_upload(world["amina"], world["guild"], "notes.png", b"just some text\n" * 20, "image/png")
    assert response.status_code in (400, 415)
    assert response.json()["code"] == "invalid" and response.json()["message"]
    assert Attachment.objects.count() == 0


def test_too_large_file_is_refused_413(world, settings):
    settings.HIRFA_ATTACHMENT_MAX_BYTES = 10_000
    data = noisy_png(200)
    assert len(data) > 10_000
    response = api_upload(world["amina"], world["guild"], "big.png", data)
    assert response.status_code == 413
    assert response.json()["code"] == "too_long"
    assert Attachment.objects.count() == 0


def test_decompression_bomb_is_refused(world):
    # 6000 × 5000 one-bit pixels compress to a few kilobytes but are 30 megapixels.
    bomb = image_bytes("PNG", (6000, 5000), mode="1")
    assert len(bomb) < 200_000
    response = api_upload(world["amina"], world["guild"], "bomb.png", bomb)
    assert response.status_code == 413
    assert response.json()["code"] == "too_long"
    assert Attachment.objects.count() == 0


def test_uploader_must_read_the_room(world):
    forbidden = api_upload(world["amina"], world["secret"], "pot.png", image_bytes())
    missing = api_upload(world["amina"], Room(pk=world["secret"].pk + 1000), "pot.png", image_bytes())
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json()["code"] == missing.json()["code"] == "not_found"
    assert Attachment.objects.count() == 0


def test_muted_member_cannot_upload(world):
    admin = factories.artisan("admin")
    admin.is_staff = True
    admin.save()
    services.member_mute(moderator=admin, room_id=world["guild"].pk, target_id=world["amina"].pk, minutes=10)
    with pytest.raises(HirfaError) as refused:
        attachment_upload(user=world["amina"], room_id=world["guild"].pk, upload=upload("p.png", image_bytes()))
    assert refused.value.code == ErrorCode.MUTED


def test_uploads_are_rate_limited(world, monkeypatch):
    monkeypatch.setattr(attachments, "upload_buckets", TokenBuckets(burst=2, per_second=0.001))
    for _ in range(2):
        assert api_upload(world["amina"], world["guild"], "p.png", image_bytes(size=(40, 40))).status_code == 201
    refused = api_upload(world["amina"], world["guild"], "p.png", image_bytes(size=(40, 40)))
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited" and refused.json()["retry_after"] > 0
    assert int(refused["Retry-After"]) >= 1


def test_missing_file_and_anonymous_upload(world):
    client = Client()
    assert client.post(f"/api/rooms/{world['guild'].pk}/attachments").status_code == 401
    client.force_login(world["amina"])
    response = client.post(f"/api/rooms/{world['guild'].pk}/attachments", {})
    assert response.status_code == 422 and response.json()["code"] == "invalid"
