"""The SFU's offers as Chromium sees them: BUNDLE, rtcp-mux, directions, msid, reused mids.

Headless Chromium (Playwright) answers the server's offers with a fake camera
and microphone, next to in-process aiortc peers: it decodes what they publish,
they receive what it publishes, and an m-line that went idle when a publisher
left is reused for the next one. No daphne, no Django: the SFU alone.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from signaling.sfu import Offer, Participant, Sfu, SfuConfig, SlotDirection, TrackSource
from signaling.sfu.aiortc_hooks import send as send_hooks
from tests.conftest import skip_or_fail
from tests.parallel import worker_port

from .peers import ClientPeer, PatternVideoTrack, ToneAudioTrack, wait_until
from .test_forwarding_e2e import close_all, join

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path(os.environ.get("HIRFA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

# What the meeting page does, reduced to the peer connection: answer every
# offer, attach the local tracks to the mids the server opened for them, and
# wait for ICE gathering so the answer carries the candidates.
PAGE_SCRIPT = """
window.hirfa = {
  pc: new RTCPeerConnection({bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require'}),
  stream: null,
  async answer(sdp, publish) {
    const pc = this.pc;
    if (!this.stream) {
      this.stream = await navigator.mediaDevices.getUserMedia(
        {audio: true, video: {width: 320, height: 240, frameRate: 15}});
    }
    await pc.setRemoteDescription({type: 'offer', sdp});
    for (const [mid, kind] of publish) {
      const t = pc.getTransceivers().find(x => x.mid === mid);
      const track = this.stream.getTracks().find(x => x.kind === kind);
      if (!t.sender.track) await t.sender.replaceTrack(track);
      t.direction = 'sendonly';
    }
    await pc.setLocalDescription();
    if (pc.iceGatheringState !== 'complete') {
      await new Promise(resolve => pc.addEventListener('icegatheringstatechange',
        () => pc.iceGatheringState === 'complete' && resolve()));
    }
    return pc.localDescription.sdp;
  },
  async decoded() {
    const byMid = {};
    (await this.pc.getStats()).forEach(s => {
      if (s.type === 'inbound-rtp') {
        byMid[s.mid] = s.kind === 'video' ? (s.framesDecoded || 0) : (s.packetsReceived || 0);
      }
    });
    return byMid;
  },
  mids() { return this.pc.getTransceivers().map(t => t.mid); },
};
"""


class ChromiumClient:
    """A Chromium page answering one participant's offers."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.slots: dict[str, Any] = {}
        self.negotiations = 0
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def on_negotiation_needed(self, participant: Participant) -> None:
        task = asyncio.ensure_future(self._negotiate(participant))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _negotiate(self, participant: Participant) -> None:
        try:
            offer: Offer = await participant.create_offer()
            publish = [[s.mid, s.kind.value] for s in offer.slots if s.direction is SlotDirection.PUBLISH]
            sdp = await self.page.evaluate("([sdp, publish]) => hirfa.answer(sdp, publish)", [offer.sdp, publish])
            await participant.apply_answer(sdp, revision=offer.revision)
            self.slots = {s.mid: s for s in offer.slots}
            self.negotiations += 1
        except BaseException as exc:  # surfaced by settle(): a refused offer fails the test
            self.errors.append(exc)
            raise

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        assert not self.errors, self.errors

    def mid_for(self, publisher: str, source: TrackSource) -> str:
        return next(m for m, s in self.slots.items() if s.publisher_id == publisher and s.source is source)

    async def decoded(self) -> dict[str, int]:
        return await self.page.evaluate("() => hirfa.decoded()")


@pytest.fixture
async def chromium_page():
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        skip_or_fail(f"the playwright package is missing: {exc}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            # localhost is a secure context (getUserMedia needs one); Playwright serves the page.
            await page.route(
                "http://localhost/sfu", lambda route: route.fulfill(body="<!doctype html><title>sfu</title>", content_type="text/html")
            )
            await page.goto("http://localhost/sfu")
            await page.evaluate(PAGE_SCRIPT)
            yield page
        finally:
            await browser.close()


async def test_chromium_answers_offers_publishes_decodes_and_reuses_idle_mids(
    sfu: Sfu, chromium_page, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = sfu.meeting("guild-chromium")
    amina = ClientPeer("amina", tracks={TrackSource.CAMERA: PatternVideoTrack(), TrackSource.MICROPHONE: ToneAudioTrack()})
    sessions = [await join(meeting, amina, TrackSource.CAMERA, TrackSource.MICROPHONE)]

    # Chromium's first offer both subscribes (amina's two tracks) and publishes (its own two).
    browser = ChromiumClient(chromium_page)
    participant = await meeting.join("chromium", on_negotiation_needed=browser.on_negotiation_needed)
    participant.publish(TrackSource.CAMERA)
    participant.publish(TrackSource.MICROPHONE)
    await browser.settle()
    assert browser.negotiations == 1
    sdp = participant.peer_connection.localDescription.sdp
    assert "a=group:BUNDLE 0 1 2 3" in sdp and sdp.count("a=rtcp-mux") == 4

    video_mid = browser.mid_for("amina", TrackSource.CAMERA)
    audio_mid = browser.mid_for("amina", TrackSource.MICROPHONE)

    async def decoded(mid: str) -> int:
        return (await browser.decoded()).get(mid, 0)

    async def wait_decoded(mid: str, at_least: int, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while await decoded(mid) < at_least:
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.2)

    await wait_decoded(video_mid, 15, "Chromium decoding amina's video")
    await wait_decoded(audio_mid, 25, "Chromium receiving amina's audio")
    await wait_until(lambda: len(amina.frames_from("chromium", TrackSource.CAMERA)) >= 15, what="amina receiving Chromium's camera")
    await wait_until(lambda: len(amina.frames_from("chromium", TrackSource.MICROPHONE)) >= 25, what="amina receiving Chromium's mic")

    # Audio first: Opus with FEC and DTX, RED taken by Chromium (and unwrapped for amina,
    # whose aiortc does not take it); one msid stream per publisher.
    assert sdp.count("useinbandfec=1;usedtx=1") == 2 and sdp.count(" red/48000/2") == 2
    mic = next(f for f in participant.forwarders() if f.source is TrackSource.MICROPHONE)
    assert mic.red_payload_type is not None, "Chromium did not take RED"
    await wait_until(lambda: mic.red_packets_received >= 25, what="RED packets from Chromium")
    # amina's aiortc sends plain Opus: on a lossy downlink the SFU sends it to Chromium as RED
    # with the two packets before each (the allocator's choice, made here: loopback loses
    # nothing, and aiortc's 96 kbit/s Opus three times over is more than the starting estimate
    # gives the voices). Chromium decodes it: a malformed RED payload would be dropped.
    monkeypatch.setattr(Participant, "_allocate", lambda self, now: None)
    heard = next(t for t in participant.subscription_tracks() if t.source is not None and t.source is not mic
                 and t.source.source is TrackSource.MICROPHONE)
    heard.red_distance, heard.send_red = 2, True
    audio_stats = (
        "async (mid) => { const out = {}; (await hirfa.pc.getStats()).forEach((s) => {"
        " if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.mid === mid) Object.assign(out, s); });"
        " return out; }"
    )
    played = await chromium_page.evaluate(
        "(mid) => { const t = hirfa.pc.getTransceivers().find((t) => t.mid === mid);"
        " const a = new Audio(); a.srcObject = new MediaStream([t.receiver.track]); window.heardAudio = a;"
        " return a.play().then(() => true, (e) => String(e)); }", audio_mid)
    assert played is True, played  # played out, so that the jitter buffer is drained and counts samples
    await asyncio.sleep(0.5)
    built = heard.red_built
    before = await chromium_page.evaluate(audio_stats, audio_mid)
    await wait_decoded(audio_mid, before["packetsReceived"] + 50, "Chromium receiving amina's audio as RED")
    after = await chromium_page.evaluate(audio_stats, audio_mid)
    assert heard.red_built >= built + 50, "amina's audio did not go as RED"
    samples = after["totalSamplesReceived"] - before["totalSamplesReceived"]
    assert samples >= 40 * 960, "Chromium did not decode the RED packets"
    assert after["concealedSamples"] - before["concealedSamples"] < samples * 0.1
    heard.red_distance = 0
    monkeypatch.undo()
    stream = next(line.split()[0] for line in sdp.splitlines() if line.startswith("a=msid:hirfa-amina "))
    assert sdp.count(stream + " ") == 2, "amina's audio and video are not one stream"
    assert await chromium_page.evaluate(
        "() => hirfa.pc.getTransceivers().filter(t => t.receiver.track && t.currentDirection === 'recvonly')"
        ".map(t => t.mid).length"
    ) == 2

    # amina leaves: her m-lines go inactive; yasmine's tracks take the same mids.
    await meeting.leave("amina")
    await browser.settle()
    assert browser.slots[video_mid].publisher_id is None
    yasmine = ClientPeer("yasmine", tracks={TrackSource.CAMERA: PatternVideoTrack()})
    sessions.append(await join(meeting, yasmine, TrackSource.CAMERA))
    await browser.settle()
    assert browser.mid_for("yasmine", TrackSource.CAMERA) == video_mid, "the idle m-line was not reused"
    assert await chromium_page.evaluate("() => hirfa.mids()") == ["0", "1", "2", "3"]
    before = await decoded(video_mid)
    await wait_decoded(video_mid, before + 15, "Chromium decoding yasmine's video on the reused mid")
    await wait_until(lambda: len(yasmine.frames_from("chromium", TrackSource.CAMERA)) >= 15, what="yasmine receiving Chromium")

    await amina.close()
    await close_all(sfu, sessions[1:])


async def test_a_screen_share_stopping_moves_the_camera_into_its_slot_and_chromium_takes_every_packet(
    chromium_page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """amina shares her screen, turns her camera on, stops the share, five times: her camera
    goes to the slot paired with her voice (``Participant._pair_up``: swapping with her screen
    as it comes, or into the slot the screen frees), each slot switching source on its own SSRC
    with its sequence numbers going on. Chromium decodes every switch and receives every packet
    the SFU sent on each SSRC: none refused by its SRTP (replay_old) nor counted lost."""
    # No allocator: on loopback Chromium's REMB follows these small streams (45 kbit/s) and
    # pauses the second video, which is not what this test is about.
    server = Sfu(SfuConfig(
        announced_addresses=("127.0.0.1",), bind_address="127.0.0.1", port_min=worker_port(42000), port_max=worker_port(42999),
        audio_slots=1, video_slots=2, allocation_interval=0,
    ))
    sent: dict[int, int] = {}
    packet = send_hooks.RtpWriter._packet

    def counted(self: Any, protect: Any, payload_type: int, seq: int, timestamp: int, ssrc: int, *args: Any) -> bytes:
        sent[ssrc] = sent.get(ssrc, 0) + 1
        return packet(self, protect, payload_type, seq, timestamp, ssrc, *args)

    monkeypatch.setattr(send_hooks.RtpWriter, "_packet", counted)
    meeting = server.meeting("guild-share-stop")
    amina = ClientPeer("amina", tracks={
        TrackSource.CAMERA: PatternVideoTrack(), TrackSource.SCREEN: PatternVideoTrack(320, 180),
        TrackSource.MICROPHONE: ToneAudioTrack(),
    })
    publisher = await join(meeting, amina, TrackSource.MICROPHONE, TrackSource.SCREEN)
    assert publisher.participant is not None
    browser = ChromiumClient(chromium_page)

    def on_reception(participant: Participant, reception: Any) -> None:
        browser.slots.update({slot.mid: slot for slot in reception.slots})

    await meeting.join("chromium", on_negotiation_needed=browser.on_negotiation_needed, on_reception=on_reception)
    await browser.settle()

    async def decodes(source: TrackSource, frames: int) -> None:
        mid = browser.mid_for("amina", source)
        start = (await browser.decoded()).get(mid, 0)
        deadline = asyncio.get_running_loop().time() + 30
        while (await browser.decoded()).get(mid, 0) < start + frames:
            assert asyncio.get_running_loop().time() < deadline, f"Chromium not decoding amina's {source.value} on mid {mid}"
            await asyncio.sleep(0.2)

    await decodes(TrackSource.SCREEN, 10)
    paired = browser.mid_for("amina", TrackSource.SCREEN)
    for _ in range(5):
        publisher.participant.publish(TrackSource.CAMERA)
        await publisher.settle()
        await decodes(TrackSource.CAMERA, 10)
        await decodes(TrackSource.SCREEN, 10)
        publisher.participant.unpublish(TrackSource.SCREEN)
        await publisher.settle()
        await wait_until(lambda: browser.slots[paired].source is TrackSource.CAMERA, what="the camera in the freed slot")
        await decodes(TrackSource.CAMERA, 20)
        publisher.participant.unpublish(TrackSource.CAMERA)
        publisher.participant.publish(TrackSource.SCREEN)
        await publisher.settle()
        await decodes(TrackSource.SCREEN, 10)
    publisher.participant.unpublish(TrackSource.SCREEN)
    publisher.participant.unpublish(TrackSource.MICROPHONE)
    await publisher.settle()
    # Every packet each SSRC carried reached Chromium (retransmissions, if any, go on RTX SSRCs).
    received: dict[str, int] = {}
    deadline = asyncio.get_running_loop().time() + 10
    while not received or any(count != sent.get(int(ssrc)) for ssrc, count in received.items()):
        assert asyncio.get_running_loop().time() < deadline, f"Chromium received {received} of {sent}"
        await asyncio.sleep(0.2)
        received = await chromium_page.evaluate(
            "async () => { const out = {}; (await hirfa.pc.getStats()).forEach((s) => {"
            " if (s.type === 'inbound-rtp') out[String(s.ssrc)] = s.packetsReceived; }); return out; }"
        )
    assert len(received) == 3, received
    await meeting.leave("chromium")
    await close_all(server, [publisher])
