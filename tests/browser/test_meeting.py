"""A video meeting in headless Chromium with a fake camera and microphone,
through a real daphne server whose in-process SFU announces 127.0.0.1.

Nadia, who moderates the pottery guild, starts the guild's meeting from her
desktop (in French); Amina sees it live on the room page of her phone (in
Arabic, right to left) and joins. Each decodes the other's video and receives
the other's audio (getStats). Yacine joins and leaves; the others see him come and go.
Screenshots are kept under test-artifacts/meeting-*.png.
"""

from __future__ import annotations

import math
import struct
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rooms.models import Room, RoomKind
from tests import factories
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import skip_or_fail
from tests.servers import ARTIFACTS, DaphneServer, open_signed_in, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_MS = 30_000
MEDIA_WAIT_SECONDS = 45
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
MEETING_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


def write_tone(path: Path, *, hertz: float = 440.0, seconds: float = 2.0, rate: int = 48_000) -> None:
    """A mono 16-bit WAV file of a sine tone at half of full scale."""
    frames = b"".join(
        struct.pack("<h", int(16_000 * math.sin(2 * math.pi * hertz * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


@pytest.fixture
def meeting_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Chromium with a fake camera and microphone that may reach 127.0.0.1 over WebRTC."""
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"the playwright package is missing: {exc}")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # A steady tone rather than Chromium's default short beeps, so that whoever speaks
    # speaks all the time and the SFU names an active speaker.
    tone = tmp_path / "tone.wav"
    write_tone(tone)
    args = list(dict.fromkeys(CHROMIUM_ARGS + MEETING_ARGS + [f"--use-file-for-fake-audio-capture={tone}"]))
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def meeting_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """daphne with the SFU in its own process, announcing 127.0.0.1 (whatever REDIS_URL says)."""
    return daphne_factory(
        {
            "HIRFA_SFU_PLACEMENT": "embedded",
            "HIRFA_SFU_ANNOUNCE_ADDRESSES": "127.0.0.1",
            "HIRFA_SFU_BIND_ADDRESS": "127.0.0.1",
        }
    )


@pytest.fixture
def people(transactional_db):
    """Nadia (moderates the pottery guild), Amina and Yacine: their sessions, ids and the guild."""
    poterie = factories.trade()
    tlemcen = factories.wilaya()
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    yacine = factories.yacine(pottery_=poterie)
    nadia = factories.nadia(pottery_=poterie)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    return {
        "nadia": (session_cookie(nadia), nadia.pk),
        "amina": (session_cookie(amina), amina.pk),
        "yacine": (session_cookie(yacine), yacine.pk),
        "guild": guild.pk,
    }


def open_page(browser, server: DaphneServer, cookie, path: str, *, language: str, viewport):
    return open_signed_in(browser, server, cookie, path, language=language, viewport=viewport, wait_ms=WAIT_MS)


def join(page) -> None:
    page.wait_for_selector("#join:not([disabled])")
    page.click("#join")
    page.wait_for_selector("#meeting[data-phase='in']")


def inbound(page) -> dict[str, dict[str, int]]:
    return page.evaluate("() => window.hirfaMeeting.inbound()")


def wait_for_media(page, key: str, field: str, *, above: int = 0) -> int:
    """Wait until the inbound stream `key` ("user:source") has `field` above `above`; return it."""
    deadline = time.monotonic() + MEDIA_WAIT_SECONDS
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = inbound(page)
        value = int(last.get(key, {}).get(field, 0))
        if value > above:
            return value
        page.wait_for_timeout(500)
    mlines = page.evaluate("() => window.hirfaMeeting.mlines()")
    raise AssertionError(f"{key} {field} stayed at most {above}; inbound stats: {last}; m-lines: {mlines}")



def wait_for_participants(page, expected: list[int]) -> None:
    page.wait_for_function(
        "(ids) => JSON.stringify((window.hirfaMeeting.state()?.participants || [])"
        ".map((p) => p.user.id).sort((a, b) => a - b)) === JSON.stringify(ids)",
        arg=sorted(expected),
    )


def test_two_artisans_see_and_hear_each_other_and_a_third_comes_and_goes(
    people, meeting_server, meeting_browser
):
    server, browser = meeting_server, meeting_browser
    guild = people["guild"]
    karim_cookie, karim_id = people["nadia"]
    amina_cookie, amina_id = people["amina"]
    yacine_cookie, yacine_id = people["yacine"]
    ARTIFACTS.mkdir(exist_ok=True)

    # Nadia, on a desktop in French, starts the guild's meeting.
    k = open_page(browser, server, karim_cookie, f"/rooms/{guild}/meeting/", language="fr", viewport=DESKTOP)
    assert k.get_attribute("html", "dir") == "ltr"
    k.wait_for_selector("#preview:not([hidden])")
    k.screenshot(path=str(ARTIFACTS / "meeting-prejoin-desktop.png"))
    join(k)

    # Amina, on her phone in Arabic, sees it live on the room page and joins from there.
    a = open_page(browser, server, amina_cookie, f"/rooms/{guild}/", language="ar", viewport=PHONE)
    assert a.get_attribute("html", "dir") == "rtl"
    a.wait_for_selector("#meeting-banner:not([hidden]) #meeting-people:has-text('Nadia')")
    assert a.locator("#meeting-start").count() == 0  # a member does not start meetings in a guild
    a.screenshot(path=str(ARTIFACTS / "meeting-room-banner-phone.png"))
    a.click("#meeting-join")
    a.wait_for_selector("body[data-connection='online']")
    a.wait_for_selector("#preview:not([hidden])")
    a.screenshot(path=str(ARTIFACTS / "meeting-prejoin-phone.png"))
    join(a)
    assert a.locator("#host-controls").count() == 0
    wait_for_participants(k, [karim_id, amina_id])
    wait_for_participants(a, [karim_id, amina_id])

    # Each decodes the other's video and receives the other's audio, and it keeps flowing.
    for page, other in ((a, karim_id), (k, amina_id)):
        frames = wait_for_media(page, f"{other}:camera", "framesDecoded")
        wait_for_media(page, f"{other}:camera", "framesDecoded", above=frames)
        packets = wait_for_media(page, f"{other}:mic", "packetsReceived")
        wait_for_media(page, f"{other}:mic", "packetsReceived", above=packets)
        samples = wait_for_media(page, f"{other}:mic", "totalSamplesReceived")
        wait_for_media(page, f"{other}:mic", "totalSamplesReceived", above=samples)
    # The tile of the other shows his video; the data meter counts.
    k.wait_for_selector(f".tile[data-key='{amina_id}:camera'] video:not([hidden])")
    a.wait_for_selector(f".tile[data-key='{karim_id}:camera'] video:not([hidden])")
    k.wait_for_function("() => document.querySelector('#meter-text').textContent.includes('/')")
    # Both fake microphones beep: the SFU names an active speaker and his tile is highlighted.
    k.wait_for_selector(".tile.speaking")
    assert k.evaluate("() => window.hirfaMeeting.usage()")["received"] > 0

    # Nadia, a host, sees the host controls; Amina raises her hand and Nadia sees it.
    k.click("#ctl-people")
    k.wait_for_selector("#host-controls:not([hidden])")
    a.click("#ctl-hand")
    k.wait_for_selector(f".tile[data-key='{amina_id}:camera'].hand")
    k.wait_for_selector(f"#people li[data-user='{amina_id}'] .badge-icon.hand")

    # Nadia shares her screen (Chromium's fake capture): Amina gets a second tile and decodes it.
    k.click("#ctl-screen")
    k.wait_for_selector("#ctl-screen[aria-pressed='true']")
    wait_for_media(a, f"{karim_id}:screen", "framesDecoded")
    a.wait_for_selector(f".tile.screen[data-key='{karim_id}:screen'] video:not([hidden])")
    k.click("#ctl-screen")
    a.wait_for_selector(f".tile[data-key='{karim_id}:screen']", state="detached")

    # Low bandwidth: Nadia's camera is capped at the default 500 kbit/s.
    assert k.evaluate("() => window.hirfaMeeting.caps()").get("camera") == 500_000
    # Simulcast: the server asked for layers l, m, h; a 360p camera sends 180p and 360p.
    expected = [
        {"rid": "l", "active": True, "scale": 2, "maxBitrate": 150_000},
        {"rid": "m", "active": True, "scale": 1, "maxBitrate": 500_000},
        {"rid": "h", "active": False, "scale": 1, "maxBitrate": 500_000},
    ]
    k.wait_for_function("(expected) => JSON.stringify(window.hirfaMeeting.encodings('camera')) === JSON.stringify(expected)",
                        arg=expected)
    # What Amina's connection carries of Nadia's camera is on her tile; Amina pins it.
    a.wait_for_function(
        "(user) => (window.hirfaMeeting.reception()?.videos || []).some((v) => v.user === user && v.quality !== 'paused')",
        arg=karim_id,
    )
    a.wait_for_selector(f".tile[data-key='{karim_id}:camera'] .badge-icon.quality")
    a.click(f".tile[data-key='{karim_id}:camera'] .tile-pin")
    a.wait_for_function("(user) => window.hirfaMeeting.reception()?.pinned === user", arg=karim_id)
    a.wait_for_selector(f".tile.pinned[data-key='{karim_id}:camera'] .tile-pin[aria-pressed='true']")

    # Yacine joins in audio only, then leaves; the others follow.
    y = open_page(browser, server, yacine_cookie, f"/rooms/{guild}/meeting/", language="ar", viewport=DESKTOP)
    y.check("#audio-only")
    y.wait_for_selector("#preview[hidden]", state="attached")
    join(y)
    for page in (k, a, y):
        wait_for_participants(page, [karim_id, amina_id, yacine_id])
    wait_for_media(y, f"{karim_id}:mic", "packetsReceived")
    wait_for_media(k, f"{yacine_id}:mic", "packetsReceived")
    assert y.evaluate("() => window.hirfaMeeting.mlines().filter((m) => m.kind === 'video').length") == 0
    k.wait_for_selector(f".tile[data-key='{yacine_id}:camera'] video[hidden]", state="attached")
    k.wait_for_timeout(1500)  # let the tiles' video paint for the screenshots
    k.screenshot(path=str(ARTIFACTS / "meeting-desktop.png"))
    a.screenshot(path=str(ARTIFACTS / "meeting-phone.png"))
    y.screenshot(path=str(ARTIFACTS / "meeting-audio-only-desktop-ar.png"))
    y.click("#ctl-leave")
    y.wait_for_selector("#meeting[data-phase='ended']")
    for page in (k, a):
        wait_for_participants(page, [karim_id, amina_id])
        page.wait_for_selector(f".tile[data-key='{yacine_id}:camera']", state="detached")

    # A network blip on Amina's phone: ICE restarts on the same peer connection (new ICE
    # credentials in the server's next offer), without leaving the meeting (Nadia never sees
    # her go, nor is she offered anything), and the media flows again both ways.
    k.evaluate(
        "(id) => { window.sawLeave = false; window.hirfaHub.on('meeting_state', (f) => {"
        " if (!f.participants.some((p) => p.user.id === id)) window.sawLeave = true; }); }",
        amina_id,
    )
    k.evaluate("() => { window.offers = 0; window.hirfaHub.on('meeting_offer', () => { window.offers += 1; }); }")
    ufrag = "() => (window.hirfaMeeting.sdp()?.offer || '').match(/a=ice-ufrag:(\\S+)/)?.[1]"
    before, generation = a.evaluate(ufrag), a.evaluate("() => window.hirfaMeeting.generation()")
    a.evaluate("() => window.hirfaMeeting.restartIce()")
    a.wait_for_function(f"(u) => ({ufrag})() !== u", arg=before)
    assert a.evaluate("() => window.hirfaMeeting.generation()") == generation
    a.wait_for_function("() => window.hirfaMeeting.iceState() === 'connected'")
    wait_for_media(a, f"{karim_id}:camera", "framesDecoded")
    frames = wait_for_media(k, f"{amina_id}:camera", "framesDecoded")
    wait_for_media(k, f"{amina_id}:camera", "framesDecoded", above=frames)
    assert k.evaluate("() => window.sawLeave") is False
    assert k.evaluate("() => window.offers") == 0

    # Her socket closes (cleanly: the server takes it as her leaving, and closes her peer): it
    # reconnects and the page joins again by itself; its resume is refused, so a new peer.
    a.evaluate("() => window.hirfaHub.ws.close()")
    a.wait_for_function("(n) => window.hirfaMeeting.generation() > n", arg=generation)
    assert a.evaluate("() => window.hirfaMeeting.phase()") == "in"
    wait_for_participants(k, [karim_id, amina_id])
    wait_for_media(a, f"{karim_id}:camera", "framesDecoded")
    frames = wait_for_media(k, f"{amina_id}:camera", "framesDecoded")
    wait_for_media(k, f"{amina_id}:camera", "framesDecoded", above=frames)

    for page in (k, a, y):
        assert page.errors == [], page.errors


def test_a_host_admits_from_the_lobby_mutes_locks_and_removes(people, meeting_server, meeting_browser):
    server, browser = meeting_server, meeting_browser
    guild = people["guild"]
    karim_cookie, karim_id = people["nadia"]
    amina_cookie, amina_id = people["amina"]
    path = f"/rooms/{guild}/meeting/"

    # On the room page a moderator may start the meeting (no meeting is live yet).
    r = open_page(browser, server, karim_cookie, f"/rooms/{guild}/", language="ar", viewport=PHONE)
    r.wait_for_selector("#meeting-start:not([hidden])")
    assert r.is_hidden("#meeting-banner")
    r.screenshot(path=str(ARTIFACTS / "meeting-room-start-phone.png"))
    r.context.close()

    k = open_page(browser, server, karim_cookie, path, language="en", viewport=DESKTOP)
    join(k)
    k.click("#ctl-people")
    k.check("#lobby")
    k.wait_for_function("() => window.hirfaMeeting.state()?.lobby === true")

    # Amina, on her phone in French, waits in the lobby until Nadia admits her.
    a = open_page(browser, server, amina_cookie, path, language="fr", viewport=PHONE)
    a.wait_for_selector("#join:not([disabled])")
    a.click("#join")
    a.wait_for_selector("#meeting[data-phase='lobby'] #waiting:not([hidden])")
    a.screenshot(path=str(ARTIFACTS / "meeting-lobby-phone.png"))
    k.click("#waiting-list li:has-text('Amina') button:has-text('Admit')")
    a.wait_for_selector("#meeting[data-phase='in']")
    wait_for_participants(k, [karim_id, amina_id])
    wait_for_media(k, f"{amina_id}:mic", "packetsReceived")
    a.click("#ctl-people")
    a.wait_for_selector("#panel:not([hidden]) #people li[data-user]")
    a.screenshot(path=str(ARTIFACTS / "meeting-panel-phone.png"))
    a.click("#panel-close")

    # Nadia mutes her microphone: she is told, and everyone sees it.
    k.click(f"#people li[data-user='{amina_id}'] button:has-text('Mute')")
    a.wait_for_selector("#ctl-mic.off")
    a.wait_for_selector(".toast")
    k.wait_for_selector(f".tile[data-key='{amina_id}:camera'] .badge-icon.muted")
    k.click(f"#people li[data-user='{amina_id}'] button:has-text('Allow to speak')")
    a.wait_for_selector("#ctl-mic:not(.off)")

    # He locks the meeting and removes her; she may not come back while it is locked.
    k.check("#lock")
    k.wait_for_function("() => window.hirfaMeeting.state()?.locked === true")
    k.screenshot(path=str(ARTIFACTS / "meeting-host-desktop.png"))
    k.click(f"#people li[data-user='{amina_id}'] button:has-text('Remove')")
    a.wait_for_selector("#meeting[data-phase='ended']")
    assert "retiré" in a.text_content("#ended-text")
    wait_for_participants(k, [karim_id])
    a.click("#rejoin")
    a.wait_for_selector(".toast-error:has-text('verrouillée')")
    a.wait_for_selector("#meeting[data-phase='prejoin']")
    a.screenshot(path=str(ARTIFACTS / "meeting-locked-phone.png"))

    for page in (k, a):
        assert page.errors == [], page.errors


def outbound_camera(page) -> dict[str, int]:
    return page.evaluate("() => window.hirfaMeeting.outbound()").get("camera", {})


def test_a_camera_turned_off_sends_a_black_frame_a_second_until_it_is_turned_on(people, meeting_server, meeting_browser):
    """Off is (almost) off: on a 3G uplink the black frames of a disabled track, 18 a second, and the
    padding a simulcast sender adds towards its next layer filled the queue the phone's NACKs wait
    in. Not nothing at all: with no video sent Chromium sends no REMB for what it receives."""
    server, browser = meeting_server, meeting_browser
    path = f"/rooms/{people['guild']}/meeting/"
    nadia_cookie, _ = people["nadia"]
    amina_cookie, amina_id = people["amina"]
    k = open_page(browser, server, nadia_cookie, path, language="fr", viewport=DESKTOP)
    join(k)
    a = open_page(browser, server, amina_cookie, path, language="ar", viewport=PHONE)
    join(a)
    decoded = wait_for_media(k, f"{amina_id}:camera", "framesDecoded")
    a.wait_for_function("() => window.hirfaMeeting.outbound().then((o) => (o.camera?.framesEncoded || 0) > 0)")

    a.click("#ctl-camera")
    a.wait_for_selector("#ctl-camera.off")
    a.wait_for_timeout(3000)  # what was on its way, and the encoder's reconfiguration
    off = outbound_camera(a)
    a.wait_for_timeout(4000)
    still = outbound_camera(a)
    # One black frame a second, a packet each (see cameraOff in meeting-peer.js); on, 15-24.
    frames, packets = still["framesEncoded"] - off["framesEncoded"], still["packetsSent"] - off["packetsSent"]
    assert frames <= 6 and packets <= 12, f"a camera turned off sent {frames} frames, {packets} packets in 4 s"
    encodings = a.evaluate("() => window.hirfaMeeting.encodings('camera')")
    assert [e["active"] for e in encodings][:1] == [True] and not any(e["active"] for e in encodings[1:])

    a.click("#ctl-camera")
    a.wait_for_selector("#ctl-camera:not(.off)")
    a.wait_for_function(
        "(n) => window.hirfaMeeting.outbound().then((o) => (o.camera?.framesEncoded || 0) > n)",
        arg=still["framesEncoded"] + 10,
    )
    wait_for_media(k, f"{amina_id}:camera", "framesDecoded", above=decoded + 10)
    assert not a.errors and not k.errors
