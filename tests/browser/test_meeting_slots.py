"""Slots in Chromium: the page's one video slot follows the active speaker.

The hub as it runs (Redis, daphne, an SFU worker process with one video slot per participant),
two aiortc participants with cameras in a load-generator process (bench/assembly.py) and Chromium
on the meeting page, its camera and microphone off. The first speaks: his camera is in the
page's video slot. Then he falls silent and the second speaks: the server switches the second's
camera into the same slot, ``meeting_reception`` says so (the page relabels its m-line), and
the slot's picture comes from a new keyframe, decoding on — with no renegotiation.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from bench import assembly
from rooms.models import Room, RoomKind
from signaling import services
from tests import factories
from tests.conftest import skip_or_fail
from tests.parallel import worker_port
from tests.servers import session_cookie, test_database_name

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

# The page's video slot: whom its m-line carries (the page's labels: from the offer's m-lines, then
# from meeting_reception's slots), the last reception's own word for it (none before a switch),
# and what Chromium decoded on it.
SLOT = """async () => {
  const line = window.hirfaMeeting.mlines().find((m) => m.direction === "subscribe" && m.kind === "video");
  if (!line) return null;
  const told = (window.hirfaMeeting.reception()?.slots || []).find((s) => s.mid === line.mid);
  const out = { mid: line.mid, user: line.user ?? null, told: told?.user ?? null, frames: 0, keyframes: 0,
                peers: window.hirfaMeeting.generation(), offer: window.hirfaMeeting.sdp()?.offer ?? null };
  const pc = window.benchPeers.filter((p) => p.connectionState !== "closed").at(-1);
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.mid === line.mid) {
      out.frames = s.framesDecoded || 0;
      out.keyframes = s.keyFramesDecoded || 0;
    }
  });
  return out;
}"""


def wait_slot(page: Any, what: str, condition: Any, seconds: float = 45) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    slot = None
    while time.monotonic() < deadline:
        slot = page.evaluate(SLOT)
        if slot and condition(slot):
            return dict(slot)
        page.wait_for_timeout(200)
    raise AssertionError(f"{what}: the page's video slot is {slot}")


def test_the_video_slot_follows_the_active_speaker(tmp_path: Path) -> None:
    if not os.path.exists(assembly.netlab.CHROMIUM):
        skip_or_fail(f"no Chromium at {assembly.netlab.CHROMIUM}")
    if shutil.which("redis-server") is None:
        skip_or_fail("no redis-server (the test starts its own)")
    from playwright.sync_api import sync_playwright

    trade, wilaya = factories.trade(), factories.wilaya()
    people = [factories.artisan(f"slot{i}", trades=[trade], wilaya_=wilaya) for i in range(3)]
    first, second = people[0].pk, people[1].pk
    factories.moderator_of(people[0], trade_=trade)
    room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    meeting = services.meeting_start(user=people[0], room_id=room.pk).meeting
    cookies = [f"{c['name']}={c['value']}" for c in map(session_cookie, people)]
    database = {"HIRFA_TEST_DATABASE_NAME": test_database_name()}
    if os.environ.get("DATABASE_URL"):
        database["DATABASE_URL"] = os.environ["DATABASE_URL"]
    ports = assembly.Ports(worker_port(int(os.environ.get("HIRFA_BENCH_PORT_BASE", "43500"))))
    clip = assembly.write_clip(str(tmp_path), (160, 120))
    hub = assembly.start_hub(str(tmp_path), ports, 3, audio_slots=3, video_slots=1,
                             prepared={"room": room.pk, "meeting": meeting, "cookies": cookies}, database_env=database)
    generator = None
    try:
        low, high = ports.generator(0, 1)
        generator = assembly.Generator(hub, 0, {
            "http_port": ports.http, "meeting": meeting, "clip": clip, "port_min": low, "port_max": high,
            "participants": [{"index": i, "cookie": cookies[i], "camera": True} for i in (0, 1)]})
        for index in (0, 1):
            assert generator.ask(f"join {index}")["connected"], f"participant {index} did not connect"
        generator.ask("voice 1 off")  # the first speaks, the second is silent
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=assembly.netlab.CHROMIUM, headless=True,
                                                 args=assembly.CHROMIUM_ARGS)
            try:
                page = assembly.open_page(browser, hub, cookies[2])
                page.click("#join")
                page.wait_for_selector("#meeting[data-phase='in']")
                page.click("#ctl-camera")
                page.wait_for_selector("#ctl-camera.off")
                page.click("#ctl-mic")  # his own voice would take the speaker's place
                before = wait_slot(page, "the speaker's camera in the slot, decoding",
                                   lambda s: s["user"] == first and s["frames"] > 0)
                seen = wait_slot(page, "frames going on", lambda s: s["frames"] > before["frames"] + 10)

                generator.ask("voice 0 off")
                generator.ask("voice 1 on")
                switched = wait_slot(page, "the new speaker's camera in the same slot",
                                     lambda s: s["user"] == second and s["told"] == second)
                assert switched["mid"] == before["mid"]
                after = wait_slot(page, "a keyframe of the new speaker decoded, then frames going on",
                                  lambda s: s["keyframes"] > seen["keyframes"] and s["frames"] > switched["frames"] + 10)
                assert (after["peers"], after["offer"]) == (before["peers"], before["offer"]), "the switch renegotiated"
                assert not page.console_lines or not any("pageerror" in line for line in page.console_lines)
            finally:
                browser.close()
    finally:
        if generator is not None:
            generator.quit()
        hub.stop()
