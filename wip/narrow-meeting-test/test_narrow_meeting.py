"""A Chromium subscriber on a narrow link (300 kbit/s, 150 ms) in the network lab, with three
publishers whose cameras alone would need 1.5 Mbit/s: the SFU keeps him audio-only and his
estimate near his link, and he keeps hearing.

The estimate once rose to 3.8 Mbit/s on such a link (every receiver report about a paused
video counted as a loss-free report, and probes were taken as held when no signal came back),
and the videos it then allowed buried the audio in the link's queue. How much audio is lost is
a figure of bench/meeting_adapt.py; this test holds what the server decides.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.netlab import Lab, lab_fixture

PUBLISHERS = 3

AUDIO = """async () => {
  const pc = (window.benchPeers || []).filter((p) => p.connectionState !== "closed").at(-1);
  let received = 0;
  if (pc) (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") received += s.packetsReceived || 0;
  });
  return received;
}"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_fixture()


def test_a_narrow_subscriber_is_kept_audio_only_and_keeps_hearing(lab: Lab) -> None:
    from bench import meeting_adapt, netlab

    if not os.path.exists(netlab.CHROMIUM):
        pytest.skip(f"no Chromium at {netlab.CHROMIUM}")
    from playwright.sync_api import sync_playwright

    folder = tempfile.mkdtemp(prefix="narrow-meeting-")
    try:
        clip = meeting_adapt.write_clip(folder)
        hub, reports = meeting_adapt.start_meeting(lab, folder, clip, PUBLISHERS, meeting_adapt.NARROW)
        assert all(os.path.exists(r + ".ready") for r in reports), "the publishers did not connect"
        with sync_playwright() as playwright:
            browser = meeting_adapt.launch_subscriber(playwright, lab, folder)
            try:
                page = netlab.open_subscriber(browser, "hirfa", hub, PUBLISHERS)
                receptions: list[dict[str, Any]] = []
                heard: list[int] = []
                # Twenty rounds of his allocation (0.5 s each), sampled from his page.
                for _ in range(40):
                    reception = page.evaluate("() => window.hirfaMeeting.reception()")
                    if reception:
                        receptions.append(reception)
                    heard.append(page.evaluate(AUDIO))
                    time.sleep(0.5)
            finally:
                browser.close()
        assert receptions, "no meeting_reception reached his page"
        last = receptions[-1]
        assert last["audio_only"], last
        assert all(v["quality"] == "paused" for v in last["videos"]), last
        # His estimate stays near his link (300 kbit/s): never the megabits that let videos in.
        assert max(r["estimate_kbps"] for r in receptions) < 1000, [r["estimate_kbps"] for r in receptions]
        # He keeps hearing: audio packets arrive through the last seconds.
        assert heard[-1] > heard[-10] > 0, heard
    finally:
        netlab.stop_publishers(lab, [])
        shutil.rmtree(folder, ignore_errors=True)
