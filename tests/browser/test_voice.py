"""A voice message between two members in Chromium (its fake microphone beeps): Amina
holds the microphone on her phone and lets go; Yacine, on his phone, sees its duration
and waveform and plays it; Amina sees that he heard it. Each interface language records
once and plays once (ar → fr, fr → kab, kab → ar)."""

from __future__ import annotations

import pytest

from tests.browser.test_chat import PHONE, open_room, people  # noqa: F401
from tests.servers import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECORD_MS = 2500


@pytest.mark.parametrize(("speaker", "listener"), [("ar", "fr"), ("fr", "kab"), ("kab", "ar")])
def test_a_voice_message_is_recorded_sent_played_and_marked_heard(
    people, daphne_server, browser, speaker, listener  # noqa: F811
):
    amina, yacine, _karim, guild = people
    a = open_room(browser, daphne_server, amina, guild, language=speaker, viewport=PHONE)
    y = open_room(browser, daphne_server, yacine, guild, language=listener, viewport=PHONE)
    assert a.get_attribute("html", "lang") == speaker and y.get_attribute("html", "lang") == listener

    # Hold the microphone (the pointer stays on it), then let go: the recording is sent.
    mic = a.locator("#mic")
    mic.wait_for(state="visible")
    assert mic.get_attribute("aria-pressed") == "false"
    box = mic.bounding_box()
    a.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    a.mouse.down()
    a.locator("#recording").wait_for(state="visible")
    assert mic.get_attribute("aria-pressed") == "true"
    a.wait_for_timeout(RECORD_MS)  # speaking, not waiting for something to happen
    a.mouse.up()
    a.locator("#recording").wait_for(state="hidden")

    # Both see it, with its duration and 48 bars; nothing else was posted.
    for page in (a, y):
        page.locator("#messages .msg .voice").wait_for()
    voice = y.locator("#messages .msg .voice")
    assert voice.locator(".voice-wave rect").count() == 48
    seconds = int(voice.locator(".voice-time").inner_text().split(":")[1])
    assert 2 <= seconds <= 4
    assert "unheard" in (voice.get_attribute("class") or "")
    assert y.locator("#messages .msg").count() == 1
    a.screenshot(path=str(ARTIFACTS / f"voice-{speaker}-phone.png"))

    # The stored recording is Opus in WebM, served to a reader of the room.
    stored = y.evaluate(
        """async () => {
            const id = document.querySelector('.voice').dataset.voice;
            const response = await fetch(`/api/rooms/attachments/${id}/audio`);
            const bytes = new Uint8Array(await response.arrayBuffer());
            return [response.status, response.headers.get('content-type'), Array.from(bytes.slice(0, 4))];
        }"""
    )
    assert stored == [200, "audio/webm", [0x1A, 0x45, 0xDF, 0xA3]]

    # Yacine plays it: the waveform fills as it plays, to the end.
    voice.locator(".voice-play").click()
    y.wait_for_selector(".voice.playing")
    y.wait_for_function("() => document.querySelectorAll('.voice .voice-wave rect.played').length > 10")
    y.wait_for_selector(".voice:not(.playing)")
    assert "unheard" not in (voice.get_attribute("class") or "")

    # Amina, its author, sees that one member heard it.
    a.locator("#messages .msg .voice .voice-heard").wait_for()
    assert "1" in a.locator(".voice-heard").inner_text()
    assert a.errors == [] and y.errors == []  # type: ignore[attr-defined]
