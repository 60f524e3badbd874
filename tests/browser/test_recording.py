"""Recording a gathering's meeting in headless Chromium, and its replay.

Nadia (a moderator of the pottery guild, on her phone in French) opens the meeting of
the guild's gathering and starts recording; Amina (on her phone, in Arabic) comes
later: before her media flows she is told it records and chooses to be recorded. Each
browser is its own Chromium with its own fake camera (Nadia red, Amina blue) and
microphone (a steady tone each). Nadia speaks while Amina's microphone is off, then
Amina while hers is off; Nadia stops the recording. The job's build (run here) makes the
replay, checked with ffprobe: its duration, both voices audible, and the picture
following the speaker — red while Nadia speaks, blue while Amina does. Then both open the
replay on the gathering's page. Screenshots under test-artifacts/recording-*.png.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from gatherings import selectors as gathering_selectors
from gatherings import services as gathering_services
from rooms.models import Room, RoomKind
from signaling.models import Recording, RecordingState, recording_directory
from signaling.replay import AUDIO_FILE, VIDEO_FILE, recording_plan
from signaling.tasks import recording_build
from tests import factories
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_meeting import (
    MEETING_ARGS,
    PHONE,
    open_page,
    wait_for_media,
    wait_for_participants,
    write_tone,
)
from tests.conftest import skip_or_fail
from tests.servers import ARTIFACTS, DaphneServer, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

SPEAK_SECONDS = 6
COLOURS = {"nadia": "red", "amina": "blue"}
TONES = {"nadia": 440.0, "amina": 660.0}


def write_picture(path: Path, colour: str) -> None:
    """A short Y4M clip of one colour: Chromium's fake camera loops it."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={colour}:s=320x240:r=15:d=1",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


@pytest.fixture
def chromiums(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One Chromium per person, each with its own fake camera colour and microphone tone."""
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"the playwright package is missing: {exc}")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browsers = {}
        try:
            for who in ("nadia", "amina"):
                picture, tone = tmp_path / f"{who}.y4m", tmp_path / f"{who}.wav"
                write_picture(picture, COLOURS[who])
                write_tone(tone, hertz=TONES[who])
                args = list(
                    dict.fromkeys(
                        CHROMIUM_ARGS
                        + MEETING_ARGS
                        + [f"--use-file-for-fake-audio-capture={tone}", f"--use-file-for-fake-video-capture={picture}"]
                    )
                )
                browsers[who] = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
            yield browsers
        finally:
            for instance in browsers.values():
                instance.close()


@pytest.fixture
def recordings_dir(settings, tmp_path: Path) -> Path:
    settings.HIRFA_RECORDINGS_DIR = tmp_path / "recordings"
    # The build runs here, on a machine shared with other suites: its budget is not under test.
    settings.HIRFA_RECORDING_BUILD_SECONDS_PER_SECOND = 30
    return settings.HIRFA_RECORDINGS_DIR


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneServer], recordings_dir: Path) -> DaphneServer:
    return daphne_factory(
        {
            "HIRFA_SFU_PLACEMENT": "embedded",
            "HIRFA_SFU_ANNOUNCE_ADDRESSES": "127.0.0.1",
            "HIRFA_SFU_BIND_ADDRESS": "127.0.0.1",
            "HIRFA_RECORDINGS_DIR": str(recordings_dir),
        }
    )


@pytest.fixture
def gathering(transactional_db):
    """The pottery guild's gathering, starting in five minutes (its meeting may open)."""
    poterie = factories.trade()
    tlemcen = factories.wilaya()
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    nadia = factories.nadia(pottery_=poterie)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    gathering = gathering_services.gathering_schedule(
        user=nadia,
        room_id=guild.pk,
        title="Émaillage · التزجيج",
        start=timezone.now() + timedelta(minutes=5),
        duration=timedelta(hours=1),
    )
    occurrence = gathering_selectors.gathering_occurrences(gathering=gathering)[0]
    gathering_services.occurrence_meeting_open(
        user=nadia, gathering_id=gathering.pk, original_start=occurrence.original_start
    )
    return {"gathering": gathering, "guild": guild.pk, "nadia": nadia, "amina": amina}


def shoot(page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"recording-{name}.png"), full_page=True)


def mean_volume(path: Path, start: float, end: float) -> float:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-vn", "-af",
         f"atrim={start:.2f}:{end:.2f},volumedetect", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    line = next(line for line in out.splitlines() if "mean_volume" in line)
    return float(line.split("mean_volume:")[1].split("dB")[0])


def colour_at(path: Path, at: float) -> tuple[int, int, int]:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{at:.2f}", "-i", str(path), "-frames:v", "1",
         "-vf", "crop=64:64:288:148,scale=1:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return raw[0], raw[1], raw[2]


def probe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout)


def test_a_recorded_meeting_becomes_a_replay_that_follows_the_speaker(gathering, server, chromiums):
    ARTIFACTS.mkdir(exist_ok=True)
    guild, nadia, amina = gathering["guild"], gathering["nadia"], gathering["amina"]
    meeting_path = f"/rooms/{guild}/meeting/"

    # Nadia joins on her phone (French) and starts recording; everyone sees the indicator.
    k = open_page(chromiums["nadia"], server, session_cookie(nadia), meeting_path, language="fr", viewport=PHONE)
    k.wait_for_selector("#join:not([disabled])")
    assert k.locator("#consent").is_hidden()  # nothing records yet: nothing to ask
    k.click("#join")
    k.wait_for_selector("#meeting[data-phase='in']")
    k.click("#ctl-people")
    k.wait_for_selector("#host-controls:not([hidden])")
    k.click("#record-toggle")
    k.wait_for_selector("#rec-indicator:not([hidden])")
    k.wait_for_function("() => window.hirfaMeeting.state()?.recording === true")
    k.fill("#marker-label", "Préparer l'émail")
    k.click("#marker-form button[type='submit']")
    k.wait_for_selector(".toast:has-text(\"Préparer l'émail\")")
    shoot(k, "fr-host-controls")
    k.click("#panel-close")

    # Amina (Arabic) comes later: she is told before her media flows, and says yes.
    a = open_page(chromiums["amina"], server, session_cookie(amina), meeting_path, language="ar", viewport=PHONE)
    a.wait_for_selector("#rec-indicator:not([hidden])")
    a.wait_for_selector("#join:not([disabled])")
    a.click("#join")
    a.wait_for_selector("#consent:not([hidden])")
    assert a.evaluate("() => window.hirfaMeeting.phase()") == "prejoin"  # no media before her answer
    shoot(a, "ar-consent")
    a.click("#consent-yes")
    a.wait_for_selector("#meeting[data-phase='in']")
    wait_for_participants(k, [nadia.pk, amina.pk])
    wait_for_participants(a, [nadia.pk, amina.pk])
    wait_for_media(k, f"{amina.pk}:camera", "framesDecoded")
    wait_for_media(a, f"{nadia.pk}:camera", "framesDecoded")
    a.click("#ctl-people")
    a.wait_for_selector("#record-me-row:not([hidden]) #record-me:checked")
    shoot(a, "ar-indicator")
    a.click("#panel-close")

    # Nadia speaks (Amina's microphone off), then Amina (Nadia's off).
    a.click("#ctl-mic")
    k.wait_for_function("(id) => window.hirfaMeeting.state()?.active_speaker === id", arg=nadia.pk)
    time.sleep(SPEAK_SECONDS)
    k.click("#ctl-mic")
    a.click("#ctl-mic")
    k.wait_for_function("(id) => window.hirfaMeeting.state()?.active_speaker === id", arg=amina.pk)
    time.sleep(SPEAK_SECONDS)
    shoot(k, "fr-indicator")

    # Nadia stops the recording; the build (the job worker's) makes the replay.
    k.click("#ctl-people")
    k.click("#record-toggle")
    k.wait_for_selector("#rec-indicator", state="hidden")
    recording = Recording.objects.get()
    assert recording.stopped_at is not None and recording.state == RecordingState.BUILDING
    deadline = time.monotonic() + 60
    while (outcome := recording_build.call(recording_id=recording.pk)) == "waiting":
        assert time.monotonic() < deadline, "the SFU never finished writing"
        time.sleep(0.5)
    recording.refresh_from_db()
    assert outcome == RecordingState.READY, recording.error
    directory = recording_directory(recording.pk)
    video = directory / VIDEO_FILE

    # The expected length, within a second.
    expected = (recording.stopped_at - recording.started_at).total_seconds()
    assert abs(probe_duration(video) - expected) <= 1.0, (probe_duration(video), expected)
    assert abs(probe_duration(directory / AUDIO_FILE) - expected) <= 1.0

    # Each voice was written, and is heard in the replay while its owner speaks.
    manifest = json.loads(next(directory.glob("session-*.json")).read_text())
    plan = recording_plan(directory)
    voices = {t.participant: t for t in plan.audio}
    assert set(voices) == {str(nadia.pk), str(amina.pk)}
    shown = [(s.start, s.end, plan.video[s.video].participant) for s in plan.shown]
    spans = {who: max((e - s, s, e) for s, e, p in shown if p == who) for who in voices}
    for who, (_length, start, end) in spans.items():
        assert end - start >= 2, (who, shown, manifest["speakers"])
        assert mean_volume(video, start + 0.5, end - 0.5) > -45, f"{who}'s voice is not heard in the replay"
        assert mean_volume(voices[who].path, 0, 60) > -50, f"{who}'s recorded track is silent"

    # The picture follows the speaker: red (Nadia) while she speaks, then blue (Amina).
    karim_span, amina_span = spans[str(nadia.pk)], spans[str(amina.pk)]
    assert karim_span[1] < amina_span[1]
    red = colour_at(video, (karim_span[1] + karim_span[2]) / 2)
    blue = colour_at(video, (amina_span[1] + amina_span[2]) / 2)
    assert red[0] > 150 and red[2] < 100, red
    assert blue[2] > 150 and blue[0] < 100, blue

    # The replay on the gathering's page, with its chapter, in both languages.
    page_path = f"/gatherings/{gathering['gathering'].pk}/replays/{recording.pk}/"
    for page, name in ((a, "ar"), (k, "fr")):
        page.goto(f"{server.url}{page_path}")
        page.wait_for_selector("video.replay-video")
        page.wait_for_function("() => document.querySelector('video.replay-video').readyState >= 1")
        assert page.locator(".replay-chapters").inner_text().count("Préparer") == 1
        # A picture in the screenshot rather than the player's first black frame.
        page.evaluate(
            "() => new Promise((done) => { const v = document.querySelector('video.replay-video');"
            " v.addEventListener('seeked', done, { once: true }); v.currentTime = 2; })"
        )
        shoot(page, f"{name}-replay")
    assert k.evaluate("() => document.querySelector('video.replay-video').duration") == pytest.approx(
        probe_duration(video), abs=1.0
    )
    assert a.errors == [] and k.errors == []  # type: ignore[attr-defined]
