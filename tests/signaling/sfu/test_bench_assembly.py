"""bench/meeting_adapt.py's ``assembly`` case (bench/assembly.py) runs at a tiny size: Redis, daphne
and an SFU worker process, two load-generator processes holding three participants, Chromium on
the meeting page. No figure is checked for its value (a bench); that the machinery measured is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import assembly
from rooms.models import Room, RoomKind
from signaling import services
from tests import factories
from tests.conftest import skip_or_fail
from tests.parallel import worker_port
from tests.servers import session_cookie, test_database_name

pytestmark = [pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]


def run_tiny_assembly(tmp_path: Path, *, workers: int = 1) -> dict:
    if not os.path.exists(assembly.netlab.CHROMIUM):
        skip_or_fail(f"no Chromium at {assembly.netlab.CHROMIUM}")
    if shutil.which("redis-server") is None:
        skip_or_fail("no redis-server (the bench starts its own)")
    trade, wilaya = factories.trade(), factories.wilaya()
    people = [factories.artisan(f"assembly{i}", trades=[trade], wilaya_=wilaya) for i in range(4)]
    factories.moderator_of(people[0], trade_=trade)
    room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    meeting = services.meeting_start(user=people[0], room_id=room.pk).meeting
    cookies = [session_cookie(p) for p in people]
    database = {"HIRFA_TEST_DATABASE_NAME": test_database_name()}
    if os.environ.get("DATABASE_URL"):
        database["DATABASE_URL"] = os.environ["DATABASE_URL"]

    return assembly.run(
        str(tmp_path), assembly.Ports(worker_port(int(os.environ.get("HIRFA_BENCH_PORT_BASE", "43500")))),
        participants=4, cameras=1, generators=2, seconds=1, warmup=0.5, clip_size=(160, 120),
        prepared={"room": room.pk, "meeting": meeting, "cookies": [f"{c['name']}={c['value']}" for c in cookies]},
        database_env=database, workers=workers,
    )


def test_the_assembly_case_runs(tmp_path: Path) -> None:
    row = run_tiny_assembly(tmp_path)

    assert "error" not in row, row
    assert row["generators_connected"] == 3 and row["join_errors"] == [], row
    assert row["join_to_first_frame_ms"] is not None and row["subscriber_fps"] is not None, row
    assert row["audio_concealed_pct"] is not None and row["subscriber_audio_streams"] == 3, row
    assert row["sfu_participants"] == 4 and row["cpu_pct_per_stream"] is not None and row["sfu_rss_mb"] > 0, row
    assert row["renegotiations_per_silent_join"] == 0, "with slots a silent join renegotiates nobody else"


def test_the_assembly_case_runs_spread_over_two_workers(tmp_path: Path) -> None:
    # --workers 2: the meeting's worker takes the first half (the camera first; joins may outrun
    # the loads it registers), the other the rest and Chromium, whose picture and voice come
    # through the pipe between them.
    row = run_tiny_assembly(tmp_path, workers=2)

    assert "error" not in row, row
    assert row["generators_connected"] == 3 and row["join_errors"] == [], row
    assert row["subscriber_worker"] == "assembly-1", row
    parts = {w: d["participants"] for w, d in row["sfu_workers_detail"].items()}
    assert parts["assembly"] >= 2 and parts["assembly-1"] >= 1 and sum(parts.values()) == 4, row
    assert row["join_to_first_frame_ms"] is not None and row["subscriber_fps"] is not None, row
    assert row["subscriber_audio_streams"] == 3 and row["sfu_participants"] == 4, row
    assert row["renegotiations_per_silent_join"] == 0, row


@pytest.mark.parametrize(("keep_rtcp", "kept"), [
    (False, [b"\x00\x01", b"\x01\x01", b"\x16\xfe", b"\x3f\x00"]),
    (True, [b"\x00\x01", b"\x01\x01", b"\x80\xc8", b"\x81\xcd", b"\xbf\xdf", b"\x16\xfe", b"\x3f\x00"]),
])
def test_a_load_generators_socket_drops_what_he_is_sent_in_the_kernel(keep_rtcp: bool, kept: list[bytes]) -> None:
    # What the server sends a load generator's participant (RTP; RTCP too unless he publishes a
    # camera, whose keyframe requests come by RTCP) never wakes his process; the STUN (consent)
    # and DTLS he needs still arrive.
    import socket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.5)
        if not assembly.drop_media_in_kernel(receiver, keep_rtcp=keep_rtcp):
            skip_or_fail("no socket filters here (Linux only)")
        sent = [b"\x00\x01", b"\x01\x01", b"\x80\x6f", b"\x90\xe0", b"\x80\xc8", b"\x81\xcd", b"\xbf\xdf",
                b"\xbf\x00", b"\x16\xfe", b"\x3f\x00"]
        for head in sent:
            sender.sendto(head + bytes(40), receiver.getsockname())
        arrived = []
        with pytest.raises(TimeoutError):
            while True:
                arrived.append(receiver.recv(100)[:2])
    finally:
        receiver.close()
        sender.close()
    assert arrived == kept
