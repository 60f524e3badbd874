"""Benchmark: a meeting follows each subscriber's connection (simulcast, estimate, allocator).

Cases (``--cases``), one JSON object each with the key ``case``:

* ``narrow``: a meeting of 8 in the network lab (tests/netlab.py): 7 aiortc publishers
  (360p VP8 at about 500 kbit/s and an Opus tone, on ``good`` links; pre-encoded media, as
  in bench/netlab.py) and one Chromium subscriber on a 300 kbit/s, 150 ms RTT link, offered
  about 3.5 Mbit/s of video. Figures: ``seconds_to_adapt`` (from his join to the first
  ``meeting_reception`` that fits his link: audio-only, or only low layers),
  ``audio_loss_pct`` (his audio packets lost, from 5 s after the join to the end of the
  window), ``added_delay_ms`` (median round trip of small probes through his link 5 s after
  the join, less the link's own 150 ms), ``keyframes_per_publisher_per_min``;
* ``recover``: then his link rises to 2 Mbit/s: ``seconds_to_high_layer`` (until a video
  reaches him at its high layer and decodes).

* ``simulcast_cpu``: bench/sfu.py's fan-out at K = 8 (one publisher, eight aiortc subscribers,
  no network lab) three times in the same run: the publisher sending two simulcast RID layers
  (320x180 at 150 kbit/s and bench/sfu.py's 640x360 loop at 1 Mbit/s: ``cpu_pct_per_stream``,
  with ``layers``, the subscriptions by the layer forwarded to them at the end), then sending
  today's one stream (``today_cpu_pct_per_stream``; ``vs_today_pct`` the difference), then the
  one stream through Janus's videoroom (``janus_cpu_ratio``: Janus's CPU over the simulcast
  SFU's; root and /usr/bin/janus, else null with a ``note``).

* ``assembly``: an assembly of ``--participants`` (30) on the hub as it runs (bench/assembly.py):
  Redis, daphne and one ``hirfa sfu`` worker process (``HIRFA_SFU_PLACEMENT=workers``: the SFU's
  CPU and memory are that process's); ``--participants`` − 1 aiortc participants held by
  ``--generators`` (4) load-generator processes, many per event loop, joining one after the other:
  the first ``--cameras`` (4) publish a camera (360p VP8 at 500 kbit/s) and a tone, the others a
  microphone with DTX (mostly silent: a packet of comfort noise every 400 ms), all pre-encoded
  once by the driver (a generator only packetizes) and receiving no video; then one Chromium on
  the meeting page joins last (its camera turned off once in). Each participant has
  ``--audio-slots`` (3) and ``--video-slots`` (9) slots (0 and 0: one m-line per track).
  Figures: ``join_to_first_frame_ms`` (Chromium, the last joiner: from his click on Join until a
  video of each camera decodes, at most his video slots; ``join_to_first_video_ms`` where the wait
  went), then over ``--assembly-seconds`` (20) after a 5 s warm-up: ``subscriber_fps`` (frames
  decoded per second per video), ``audio_concealed_pct`` (his audio slots), ``sfu_cpu_pct`` (the
  worker process's CPU, % of one core), ``forwarded_streams`` (subscriptions forwarding media, from
  the worker's /metrics, mean over the window), ``cpu_pct_per_stream`` (their quotient),
  ``sfu_rss_mb``/``sfu_peak_rss_mb``, ``daphne_cpu_pct`` and ``generators_cpu_pct`` beside; and
  ``renegotiations_per_silent_join`` (offers the participants already there received during each
  silent join, mean; ``renegotiations_last_silent_join`` for the last), ``join_negotiated_ms_*``
  and ``join_connected_ms_median`` (a load generator's join until his answer was sent, until
  connected). Beside them, to read the figures: ``subscriber_fps_per_video``, ``subscriber_videos``
  (each video's quality in his last ``meeting_reception``), ``subscriber_estimate_kbps``,
  ``sfu_heartbeat_longest_gap_s`` (the worker's longest silence in Redis; a socket calls it gone
  after 3 heartbeats) and ``worker_gone_rejoins`` (sockets that did, from daphne's log).
  ``--workers N`` (1): N SFU worker processes, the meeting spread over them (a worker takes
  new participants once the meeting's worker holds participants / N: ``HIRFA_SFU_SPREAD_LOAD``;
  the workers pipe each other's tracks, signaling/spread.py); the SFU figures are then the
  workers' sums, each worker's in ``sfu_workers_detail``, and ``subscriber_worker`` says which
  one holds Chromium (the cameras join first: on the meeting's worker, ``assembly``). Needs
  Chromium and ``redis-server``, not root.

The narrow/recover publishers are aiortc peers, which cannot send simulcast: their one stream
counts as the "high" layer, so adapting means pausing videos (or audio-only); Chromium
publishers' simulcast is covered by tests/signaling/sfu/test_simulcast.py.

Usage (root for the lab cases; Chromium): ``python bench/meeting_adapt.py [--json] [--seconds 20]
[--cases narrow,recover,simulcast_cpu,assembly] [--cpu-seconds 10] [--participants 30] [--cameras 4]
[--audio-slots 3] [--video-slots 9] [--generators 4] [--assembly-seconds 20] [--workers 1]``;
``HIRFA_BENCH_PORT_BASE`` (44000): the assembly's ports (TCP and UDP, base to base + 999)
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import netlab
from tests.netlab import PROFILES, Direction, Lab, Profile, lab_unavailable, probe_rtt

PUBLISHERS = 7
CAMERA_BPS = 500_000
NARROW = Profile(
    "narrow",
    Direction(delay_ms=75, jitter_ms=2, rate_bps=300_000),
    Direction(delay_ms=75, jitter_ms=2, rate_bps=300_000),
)
WIDE = Profile(
    "wide",
    Direction(delay_ms=75, jitter_ms=2, rate_bps=2_000_000),
    Direction(delay_ms=75, jitter_ms=2, rate_bps=2_000_000),
)

SAMPLE = """async () => {
  const pcs = (window.benchPeers || []).filter((p) => p.connectionState !== "closed");
  const pc = pcs.at(-1);
  const audio = { lost: 0, received: 0 };
  const frames = {};
  if (pc) {
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "audio") { audio.lost += s.packetsLost || 0; audio.received += s.packetsReceived || 0; }
      else frames[s.mid] = s.framesDecoded || 0;
    });
  }
  const mlines = window.hirfaMeeting.mlines();
  return { at: performance.now(), audio, frames, mlines, reception: window.hirfaMeeting.reception() };
}"""


def sample(page: Any) -> dict[str, Any]:
    return page.evaluate(SAMPLE)


def fits(reception: dict[str, Any] | None) -> bool:
    """Whether the server's decision fits a 300 kbit/s link: audio-only, or low layers only."""
    if not reception:
        return False
    if reception["audio_only"]:
        return True
    qualities = [v["quality"] for v in reception["videos"]]
    return any(q == "low" for q in qualities) and all(q in ("low", "paused") for q in qualities)


def decoding_high(first: dict[str, Any], last: dict[str, Any]) -> bool:
    """A video at its high layer decoded frames between two samples."""
    reception = last.get("reception")
    if not reception or reception["audio_only"]:
        return False
    by_user = {(m.get("user"), m.get("source")): m["mid"] for m in last["mlines"] if m.get("direction") == "subscribe"}
    for video in reception["videos"]:
        mid = by_user.get((video["user"], video["source"]))
        if video["quality"] == "high" and mid is not None and last["frames"].get(mid, 0) > first["frames"].get(mid, 0):
            return True
    return False


def start_meeting(lab: Lab, folder: str, clip: str, publishers: int, link: Profile) -> tuple[dict[str, Any], list[str]]:
    """Hirfa in the lab's hub, ``publishers`` aiortc publishers on ``good`` links (connected, or
    120 s passed) and a namespace ``sub`` on ``link`` for the subscriber: (hub, report files)."""
    for i in range(publishers):
        lab.add(f"pub{i}", PROFILES["good"])
    lab.add("sub", link)
    hub = netlab.start_hirfa(lab, folder, publishers + 1)
    reports = []
    for i in range(publishers):
        report = os.path.join(folder, f"pub{i}.json")
        reports.append(report)
        argv = [sys.executable, os.path.join(ROOT, "bench", "netlab.py"), "publisher", "--server", "hirfa",
                "--meeting", str(hub["meeting"]), "--feed", str(i + 1), "--clip", clip, "--report", report,
                "--cookie", hub["cookies"][i + 1]]
        with open(os.path.join(folder, f"pub{i}.log"), "wb") as out:
            lab.popen(f"pub{i}", argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                      env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 120
    while time.time() < deadline and not all(os.path.exists(r + ".ready") for r in reports):
        time.sleep(0.5)
    return hub, reports


def launch_subscriber(playwright: Any, lab: Lab, folder: str) -> Any:
    """Chromium in the namespace ``sub`` (headless, fake devices)."""
    wrapper = lab.wrapper("sub", netlab.CHROMIUM, folder)
    return playwright.chromium.launch(executable_path=wrapper, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
        f"--unsafely-treat-insecure-origin-as-secure=http://{netlab.HUB_ADDRESS}:{netlab.HTTP_PORT}"])


def write_clip(folder: str) -> str:
    """The publishers' pre-encoded media (camera at CAMERA_BPS, a tone, a beep), in ``folder``."""
    clip = os.path.join(folder, "clip.pickle")
    with open(clip, "wb") as handle:
        pickle.dump({**netlab.encode_clip(CAMERA_BPS), "beep": netlab.encode_audio("beep"),
                     "tone": netlab.encode_audio("tone")}, handle)
    return clip


def run(seconds: float, folder: str, clip: str) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    narrow: dict[str, Any] = {"case": "narrow", "participants": PUBLISHERS + 1, "camera_bps": CAMERA_BPS,
                              "link_bps": NARROW.down.rate_bps, "link_rtt_ms": NARROW.rtt_ms}
    recover: dict[str, Any] = {"case": "recover", "link_bps": WIDE.down.rate_bps}
    with Lab() as lab:
        hub, reports = start_meeting(lab, folder, clip, PUBLISHERS, NARROW)
        narrow["publishers_connected"] = sum(os.path.exists(r + ".ready") for r in reports)
        started = time.time()
        with sync_playwright() as playwright:
            browser = launch_subscriber(playwright, lab, folder)
            try:
                page = netlab.open_subscriber(browser, "hirfa", hub, PUBLISHERS)
                joined = time.monotonic()
                samples = []
                delay = None
                while time.monotonic() - joined < seconds:
                    samples.append((time.monotonic() - joined, sample(page)))
                    if delay is None and time.monotonic() - joined >= 5:
                        rtt = probe_rtt(lab, "sub", count=25, interval=0.04)
                        delay = rtt["rtt_ms"] - NARROW.rtt_ms
                    time.sleep(0.25)
                adapted = next((t for t, s in samples if fits(s["reception"])), None)
                narrow["seconds_to_adapt"] = round(adapted, 2) if adapted is not None else None
                narrow["reception"] = samples[-1][1]["reception"]
                window = [s for t, s in samples if t >= 5]
                if len(window) >= 2:
                    lost = window[-1]["audio"]["lost"] - window[0]["audio"]["lost"]
                    received = window[-1]["audio"]["received"] - window[0]["audio"]["received"]
                    narrow["audio_loss_pct"] = round(100 * lost / max(1, lost + received), 2)
                    narrow["audio_packets"] = received
                narrow["added_delay_ms"] = round(delay, 1) if delay is not None else None

                lab.set_profile("sub", WIDE)
                rise = time.monotonic()
                previous = sample(page)
                high = None
                while time.monotonic() - rise < 30:
                    time.sleep(0.25)
                    current = sample(page)
                    if decoding_high(previous, current):
                        high = time.monotonic() - rise
                        break
                    previous = current
                recover["seconds_to_high_layer"] = round(high, 2) if high is not None else None
                recover["reception"] = sample(page)["reception"]
            finally:
                browser.close()
        minutes = max((time.time() - started) / 60, 1 / 60)
        keyframes = netlab.stop_publishers(lab, reports)
        narrow["keyframes_per_publisher_per_min"] = round(statistics.mean(keyframes) / minutes, 2) if keyframes else None
        narrow["link"] = netlab.lab_counters(lab)
    return [narrow, recover]


def simulcast_cpu(seconds: float, subscribers: int = 8) -> dict[str, Any]:
    """The ``simulcast_cpu`` case: bench/sfu.py's fan-out with simulcast, plain, and through Janus."""
    import contextlib

    from bench import sfu

    loop = sfu.encode_loop()
    row: dict[str, Any] = {"case": "simulcast_cpu", "K": subscribers, "layers_sent": list(sfu.SIMULCAST_RIDS)}
    layered = sfu.measure("sfu", publishers=1, subscribers=subscribers, seconds=seconds, loop_frames=loop,
                          simulcast=True)
    plain = sfu.measure("sfu", publishers=1, subscribers=subscribers, seconds=seconds, loop_frames=loop)
    row.update({
        "cpu_pct_per_stream": round(layered["cpu_pct"] / subscribers, 3),
        "server_cpu_pct": round(layered["cpu_pct"], 2),
        "subscriber_fps": round(layered["fps"], 2),
        "layers": layered.get("layers"),
        "today_cpu_pct_per_stream": round(plain["cpu_pct"] / subscribers, 3),
        "today_server_cpu_pct": round(plain["cpu_pct"], 2),
        "today_subscriber_fps": round(plain["fps"], 2),
        "vs_today_pct": round(100 * (layered["cpu_pct"] / plain["cpu_pct"] - 1), 1) if plain["cpu_pct"] else None,
        "janus_cpu_pct": None, "janus_cpu_ratio": None,
    })
    note = sfu.janus_unavailable()
    with contextlib.ExitStack() as stack:
        if note is None:
            try:
                host = stack.enter_context(sfu.JanusHost())
                gateway = sfu.measure_janus(host, subscribers=subscribers, seconds=seconds, loop_frames=loop,
                                            room=2000 + subscribers)
                if gateway["ready"] < subscribers:
                    note = f"Janus: only {gateway['ready']} of {subscribers} subscribers received"
                else:
                    row["janus_cpu_pct"] = round(gateway["cpu_pct"], 2)
                    row["janus_subscriber_fps"] = round(gateway["fps"], 2)
                    if layered["cpu_pct"]:
                        row["janus_cpu_ratio"] = round(gateway["cpu_pct"] / layered["cpu_pct"], 2)
                    if plain["cpu_pct"]:
                        row["today_janus_cpu_ratio"] = round(gateway["cpu_pct"] / plain["cpu_pct"], 2)
                    note = "Janus is sent the one 1 Mbit/s stream (its publisher does not simulcast)"
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                note = f"Janus not driven: {error}"
    row["note"] = note
    return row


def assembly(participants: int, cameras: int, audio_slots: int = 3, video_slots: int = 9, *, seconds: float = 20.0,
             generators: int = 4, workers: int = 1) -> dict[str, Any]:
    """The ``assembly`` case (bench/assembly.py; see the module's docstring)."""
    from bench import assembly as load

    base = int(os.environ.get("HIRFA_BENCH_PORT_BASE", "44000"))
    folder = tempfile.mkdtemp(prefix="meeting-assembly-")
    try:
        return load.run(folder, load.Ports(base), participants=participants, cameras=cameras, generators=generators,
                        seconds=seconds, audio_slots=audio_slots, video_slots=video_slots, workers=workers)
    except Exception as error:
        return {"case": "assembly", "participants": participants, "error": repr(error)[:500]}
    finally:
        netlab.finish_folder(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="the narrow window after the join")
    parser.add_argument("--cases", default="narrow,recover,simulcast_cpu,assembly")
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="each simulcast_cpu load's CPU window")
    parser.add_argument("--subscribers", type=int, default=8, help="simulcast_cpu's K")
    parser.add_argument("--participants", type=int, default=30, help="assembly's size")
    parser.add_argument("--cameras", type=int, default=4, help="assembly's camera publishers (the first to join)")
    parser.add_argument("--audio-slots", type=int, default=3, help="assembly's audio slots per subscriber (0: no slots)")
    parser.add_argument("--video-slots", type=int, default=9, help="assembly's video slots per subscriber (0: no slots)")
    parser.add_argument("--generators", type=int, default=4, help="assembly's load-generator processes")
    parser.add_argument("--assembly-seconds", type=float, default=20.0, help="assembly's window at the subscriber")
    parser.add_argument("--workers", type=int, default=1,
                        help="assembly's SFU worker processes (more than one: the meeting spread over them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = {c for c in args.cases.split(",") if c}
    unknown = wanted - {"narrow", "recover", "simulcast_cpu", "assembly"}
    if unknown:
        sys.exit(f"bench/meeting_adapt.py: not measured yet: {', '.join(sorted(unknown))} (docs/performance.md)")
    rows = run_lab_cases(args, wanted) if wanted & {"narrow", "recover"} else []
    if "simulcast_cpu" in wanted:
        rows.append(simulcast_cpu(args.cpu_seconds, args.subscribers))
    if "assembly" in wanted:
        rows.append(assembly(args.participants, args.cameras, args.audio_slots, args.video_slots,
                             seconds=args.assembly_seconds, generators=args.generators, workers=args.workers))
    if args.json:
        print(json.dumps({
            "command": " ".join(["python", "bench/meeting_adapt.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
            "results": rows,
        }, indent=2))
    else:
        for row in rows:
            print(json.dumps(row))


def run_lab_cases(args: Any, wanted: set[str]) -> list[dict[str, Any]]:
    """The cases in the network lab (narrow, recover)."""
    reason = lab_unavailable()
    if reason is None and not os.path.exists(netlab.CHROMIUM):
        reason = f"no Chromium at {netlab.CHROMIUM}"
    if reason:
        sys.exit(f"bench/meeting_adapt.py: {reason}")
    folder = tempfile.mkdtemp(prefix="meeting-adapt-")
    try:
        clip = write_clip(folder)
        try:
            rows = [r for r in run(args.seconds, folder, clip) if r["case"] in wanted]
        except Exception as error:
            rows = [{"case": "narrow", "error": repr(error)[:500]}]
    finally:
        netlab.finish_folder(folder)
    return rows


if __name__ == "__main__":
    main()
