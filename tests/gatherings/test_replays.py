"""Replays on the gathering's page: who sees them, range requests, chapters, the chat
alongside, deletion by a host."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gatherings import selectors, services
from rooms import services as room_services
from signaling import services as signaling_services
from signaling.models import Recording, RecordingMarker, RecordingState, recording_directory
from signaling.replay import AUDIO_FILE, VIDEO_FILE

pytestmark = pytest.mark.django_db

VIDEO = bytes(range(256)) * 40  # 10 240 bytes standing for a WebM file


@pytest.fixture
def recorded(settings, tmp_path: Path, schedule, karim, amina, tlemcen_room):
    """Karim's members-only gathering; its first occurrence was recorded (a minute and a
    half) with one chapter, and amina wrote in the room meanwhile."""
    settings.PRIVATE_MEDIA_ROOT = tmp_path
    settings.HIRFA_RECORDINGS_DIR = tmp_path / "recordings"
    gathering = schedule()
    occ = selectors.gathering_occurrences(gathering=gathering)[0]
    opened = services.occurrence_meeting_open(
        user=karim, gathering_id=gathering.pk, original_start=occ.original_start, now=occ.start
    )
    signaling_services.meeting_attend(user=karim, meeting_id=opened.meeting_id)
    recording = signaling_services.recording_start(user=karim, meeting_id=opened.meeting_id)
    started = timezone.now() - timedelta(seconds=90)
    Recording.objects.filter(pk=recording.pk).update(started_at=started)
    RecordingMarker.objects.create(recording=recording, at=30.0, label="now: glazing", by=karim)
    room_services.message_post(user=amina, room_id=tlemcen_room.pk, text="Which clay?", client_id="c1")
    signaling_services.recording_stop(user=karim, meeting_id=opened.meeting_id)
    directory = recording_directory(recording.pk)
    directory.mkdir(parents=True)
    (directory / VIDEO_FILE).write_bytes(VIDEO)
    (directory / AUDIO_FILE).write_bytes(b"OggS" * 100)
    Recording.objects.filter(pk=recording.pk).update(
        state=RecordingState.READY, duration=90.0, video_bytes=len(VIDEO), audio_bytes=400
    )
    return gathering, Recording.objects.get(pk=recording.pk)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, gathering, recording, *extra) -> str:
    return reverse(name, args=[gathering.pk, recording.pk, *extra])


def test_a_member_sees_the_replay_with_chapters_and_the_chat(recorded, amina):
    gathering, recording = recorded
    member = client_of(amina)
    detail = member.get(reverse("gathering_detail", args=[gathering.pk])).content.decode()
    assert url("gathering_replay", gathering, recording) in detail
    page = member.get(url("gathering_replay", gathering, recording))
    assert page.status_code == 200
    html = page.content.decode()
    assert "now: glazing" in html and "Which clay?" in html
    assert url("gathering_replay_file", gathering, recording, "video.webm") in html
    assert 'kind="chapters"' in html
    assert "Delete this recording" not in html  # amina is no host
    vtt = member.get(url("gathering_replay_chapters", gathering, recording)).content.decode()
    assert vtt.splitlines()[:4] == ["WEBVTT", "", "00:00:30.000 --> 00:01:30.000", "now: glazing"]


def test_the_video_streams_with_range_requests(recorded, amina):
    gathering, recording = recorded
    member = client_of(amina)
    video = url("gathering_replay_file", gathering, recording, "video.webm")
    whole = member.get(video)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == VIDEO
    assert whole["Cache-Control"] == "private, no-store"
    part = member.get(video, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{len(VIDEO)}"
    assert b"".join(part.streaming_content) == VIDEO[100:200]
    tail = member.get(video, HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == VIDEO[-10:]
    open_ended = member.get(video, HTTP_RANGE=f"bytes={len(VIDEO) - 5}-")
    assert b"".join(open_ended.streaming_content) == VIDEO[-5:]
    beyond = member.get(video, HTTP_RANGE=f"bytes={len(VIDEO)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(VIDEO)}"
    assert member.get(url("gathering_replay_file", gathering, recording, "audio.ogg")).status_code == 200
    assert member.get(url("gathering_replay_file", gathering, recording, "session-1.json")).status_code == 404


def test_behind_nginx_the_file_goes_by_accel_redirect(recorded, amina, settings):
    gathering, recording = recorded
    settings.HIRFA_ACCEL_REDIRECT = True
    response = client_of(amina).get(url("gathering_replay_file", gathering, recording, "video.webm"))
    assert response["X-Accel-Redirect"] == f"/_private/recordings/{recording.pk}/{VIDEO_FILE}"
    assert response.content == b""


def test_who_may_not_see_the_gathering_gets_404_everywhere(recorded, omar, client):
    gathering, recording = recorded
    outsider = client_of(omar)
    for name, extra in (
        ("gathering_replay", ()),
        ("gathering_replay_file", ("video.webm",)),
        ("gathering_replay_chapters", ()),
    ):
        assert outsider.get(url(name, gathering, recording, *extra)).status_code == 404
        assert client.get(url(name, gathering, recording, *extra)).status_code == 302  # to sign in
    assert outsider.post(url("gathering_replay_delete", gathering, recording)).status_code == 404


def test_a_replay_being_built_is_shown_to_hosts_only(recorded, amina, karim):
    gathering, recording = recorded
    Recording.objects.filter(pk=recording.pk).update(state=RecordingState.BUILDING, progress=40)
    assert client_of(amina).get(url("gathering_replay", gathering, recording)).status_code == 404
    page = client_of(karim).get(url("gathering_replay", gathering, recording))
    assert page.status_code == 200 and 'data-state="building"' in page.content.decode()
    assert client_of(karim).get(url("gathering_replay_file", gathering, recording, "video.webm")).status_code == 404


def test_a_host_deletes_the_replay_and_its_files(recorded, amina, karim):
    gathering, recording = recorded
    directory = recording_directory(recording.pk)
    assert client_of(amina).post(url("gathering_replay_delete", gathering, recording)).status_code == 302
    assert Recording.objects.filter(pk=recording.pk).exists()  # refused: amina is no host
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_of(karim).post(url("gathering_replay_delete", gathering, recording))
    assert response.status_code == 302
    assert not Recording.objects.filter(pk=recording.pk).exists()
    assert not directory.exists()
