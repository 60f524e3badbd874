"""Voice messages: uploaded, attached, heard, marked as heard, deleted — with real recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from rooms import services
from rooms.models import Attachment, VoiceListen
from rooms.selectors import room_history
from tests import factories
from tests.audio_samples import voice_bytes
from tests.rooms.test_attachments import image_bytes, media, upload, world  # noqa: F401

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def voice_upload_api(user, room, data: bytes, content_type: str = "audio/webm;codecs=opus"):
    return client_of(user).post(
        f"/api/rooms/{room.pk}/attachments", {"file": upload("voice.webm", data, content_type), "kind": "voice"}
    )


def sent_voice(world, container: str = "webm") -> dict:  # noqa: F811
    response = voice_upload_api(world["amina"], world["guild"], voice_bytes(2.0, container=container))
    assert response.status_code == 201, response.content
    body = response.json()
    services.message_post(
        user=world["amina"], room_id=world["guild"].pk, client_id=f"v{body['id']}", text="", attachment_ids=[body["id"]]
    )
    return body


@pytest.mark.parametrize(("container", "content_type"), [("webm", "audio/webm"), ("ogg", "audio/webm"), ("mp4", "audio/mp4")])
def test_a_recording_becomes_a_voice_message_with_its_duration_and_waveform(world, container, content_type):  # noqa: F811
    body = sent_voice(world, container)
    assert body["kind"] == "voice" and body["content_type"] == content_type
    assert body["url"] == f"/api/rooms/attachments/{body['id']}/audio"
    assert 1900 <= body["duration_ms"] <= 2100 and len(body["waveform"]) == 48
    messages, _ = room_history(user=world["walid"], room_id=world["guild"].pk)
    (voice,) = messages[-1].attachments
    assert (voice.kind, voice.duration_ms, voice.listened_by) == ("voice", body["duration_ms"], [])


def test_the_declared_type_is_not_trusted(world):  # noqa: F811
    # A recording sent as a PNG is still a recording; a picture sent as audio is refused.
    assert voice_upload_api(world["amina"], world["guild"], voice_bytes(1.0), "image/png").status_code == 201
    refused = voice_upload_api(world["amina"], world["guild"], image_bytes(), "audio/webm")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    text = voice_upload_api(world["amina"], world["guild"], b"hello " * 100, "audio/ogg")
    assert text.status_code == 400 and text.json()["code"] == "invalid"
    assert Attachment.objects.count() == 1


def test_longer_than_the_cap_is_refused(world, settings):  # noqa: F811
    settings.HIRFA_VOICE_MAX_SECONDS = 3
    refused = voice_upload_api(world["amina"], world["guild"], voice_bytes(6.0))
    assert refused.status_code == 413 and refused.json()["code"] == "too_long"
    assert refused.json()["max_seconds"] == 3
    assert Attachment.objects.count() == 0


def test_the_recording_is_served_to_readers_only(world):  # noqa: F811
    body = sent_voice(world)
    heard = client_of(world["walid"]).get(body["url"])
    assert heard.status_code == 200 and heard["Content-Type"] == "audio/webm"
    assert heard["Cache-Control"].startswith("private")
    assert b"".join(heard.streaming_content).startswith(b"\x1a\x45\xdf\xa3")
    # Not the image variants of a recording.
    assert client_of(world["walid"]).get(f"/api/rooms/attachments/{body['id']}/image").status_code == 404
    # A guild is readable by every member, of its trade or not.
    assert client_of(factories.artisan("outsider")).get(body["url"]).status_code == 200
    assert Client().get(body["url"]).status_code == 401


def test_a_private_groups_voice_is_for_its_members_only(world):  # noqa: F811
    walid, secret = world["walid"], world["secret"]
    response = voice_upload_api(walid, secret, voice_bytes(1.0))
    assert response.status_code == 201
    voice = response.json()
    services.message_post(user=walid, room_id=secret.pk, client_id="s1", text="", attachment_ids=[voice["id"]])
    assert client_of(walid).get(voice["url"]).status_code == 200
    refused = client_of(world["amina"]).get(voice["url"])
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    listened = client_of(world["amina"]).post(f"/api/rooms/attachments/{voice['id']}/listened")
    assert listened.status_code == 404


def test_a_listener_is_marked_once_and_the_author_sees_it(world, django_capture_on_commit_callbacks):  # noqa: F811
    body = sent_voice(world)
    walid = client_of(world["walid"])
    url = f"/api/rooms/attachments/{body['id']}/listened"
    before = room_history(user=world["amina"], room_id=world["guild"].pk)[0][-1].rev
    with django_capture_on_commit_callbacks() as published:
        assert walid.post(url).status_code == 204
        assert walid.post(url).status_code == 204  # idempotent
        # The author's own plays are not marked.
        assert client_of(world["amina"]).post(url).status_code == 204
    assert list(VoiceListen.objects.values_list("user_id", flat=True)) == [world["walid"].pk]
    assert len(published) == 1  # the message published again once, for the first play
    after = room_history(user=world["amina"], room_id=world["guild"].pk)[0][-1]
    assert after.rev > before and after.attachments[0].listened_by == [world["walid"].pk]


def test_an_image_cannot_be_marked_listened(world):  # noqa: F811
    image = client_of(world["amina"]).post(
        f"/api/rooms/{world['guild'].pk}/attachments", {"file": upload("p.png", image_bytes(), "image/png")}
    ).json()
    services.message_post(user=world["amina"], room_id=world["guild"].pk, client_id="i", text="", attachment_ids=[image["id"]])
    refused = client_of(world["walid"]).post(f"/api/rooms/attachments/{image['id']}/listened")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"


def test_a_deleted_messages_recording_leaves_storage(world, media, django_capture_on_commit_callbacks):  # noqa: F811
    body = sent_voice(world)
    stored = Path(Attachment.objects.get(pk=body["id"]).audio.path)
    assert stored.exists() and media in stored.parents and "attachments" in stored.parts
    seq = room_history(user=world["amina"], room_id=world["guild"].pk)[0][-1].id
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=world["amina"], room_id=world["guild"].pk, seq=seq)
    assert not stored.exists() and not Attachment.objects.filter(pk=body["id"]).exists()
    assert client_of(world["walid"]).get(body["url"]).status_code == 404
