"""The production placement: ``hirfa sfu`` worker processes reached through
Redis, daphne with ``HIRFA_SFU_PLACEMENT=workers``. A meeting is placed on
the least loaded worker, media flows through it, and when it is killed the
participants are told to rejoin and the meeting moves to the other worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from rooms.models import Room, RoomKind
from signaling import services
from signaling.messages import WorkerInfo
from signaling.models import Meeting
from signaling.placement import ALIVE_PREFIX, WORKERS_KEY
from signaling.sfu import TrackSource
from tests import factories
from tests.parallel import worker_port
from tests.servers import ARTIFACTS, ROOT, daphne_factory, server_env, test_database_name  # noqa: F401
from tests.signaling.clients import MeetingClient, wait_until
from tests.signaling.remote import peer_connections_open, remote_client, udp_ports
from tests.signaling.sfu.peers import ClientPeer, PatternVideoTrack, ToneAudioTrack

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]

#: The production default. docs/protocol.md, meeting_rejoin: a worker counts as dead 3
#: heartbeats after its last one, and each socket checks it once a heartbeat. With 0.5 s a
#: worker silent for 1.5 s was dead, and a loaded CI machine stalls a process that long: the
#: other meeting's worker was taken for dead (test_..._survive_a_killed_worker's stall).
HEARTBEAT = 2.0
REJOIN_DELAY = 4 * HEARTBEAT
#: How long the test stops a worker's process, as a loaded machine may (within 3 heartbeats).
STALL = 2.0


@dataclass
class SfuWorker:
    worker_id: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port_min: int
    port_max: int

    def udp_ports(self) -> list[int]:
        return udp_ports(self.process.pid, port_min=self.port_min, port_max=self.port_max)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def isolated_redis(redis_url: str) -> str:
    """A Redis database of its own, so that no other run's workers or groups mix in."""
    parts = urllib.parse.urlsplit(redis_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{1 + os.getpid() % 15}"))


@pytest.fixture
def sfu_workers(isolated_redis: str, transactional_db: None) -> Iterator[Callable[[str, int], SfuWorker]]:
    """Start ``hirfa sfu`` worker processes (one each); all stop at teardown."""
    import redis

    client = redis.Redis.from_url(isolated_redis)
    workers: list[SfuWorker] = []
    env = server_env(
        test_database_name(),
        {
            "REDIS_URL": isolated_redis,
            "HIRFA_SFU_PLACEMENT": "workers",
            "HIRFA_SFU_HEARTBEAT_SECONDS": str(HEARTBEAT),
        },
    )
    ARTIFACTS.mkdir(exist_ok=True)

    def start(worker_id: str, port_min: int, ops_port: int = 0, extra: dict[str, str] | None = None) -> SfuWorker:
        worker_id = f"{worker_id}-{os.getpid()}"
        log_path = ARTIFACTS / f"sfu-{worker_id}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "sfu", "--processes", "1", "--worker-id", worker_id,
                 "--ops-port", str(ops_port)],
                cwd=ROOT,
                env={**env, "HIRFA_SFU_PORT_MIN": str(port_min), "HIRFA_SFU_PORT_MAX": str(port_min + 199), **(extra or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = SfuWorker(worker_id, process, log_path, port_min, port_min + 199)
        workers.append(worker)
        deadline = time.monotonic() + 60
        while not client.exists(ALIVE_PREFIX + worker_id):
            assert process.poll() is None, f"hirfa sfu exited:\n{worker.log()}"
            assert time.monotonic() < deadline, f"hirfa sfu did not register:\n{worker.log()}"
            time.sleep(0.1)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        client.hdel(WORKERS_KEY, worker.worker_id)
    client.close()


@database_sync_to_async
def two_guild_meetings():
    trade, wilaya = factories.trade(), factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    nadia = factories.nadia(pottery_=trade)
    other = factories.trade("dinanderie-test", "Dinanderie", "النحاس")
    rachid = factories.moderator_of(factories.artisan("rachid", trades=[other]), trade_=other)
    first = services.meeting_start(user=nadia, room_id=Room.objects.get(kind=RoomKind.GUILD, trade=trade).pk)
    second = services.meeting_start(user=rachid, room_id=Room.objects.get(kind=RoomKind.GUILD, trade=other).pk)
    assert first.meeting != second.meeting
    return first.meeting, second.meeting, nadia, amina, rachid


@database_sync_to_async
def worker_of(meeting_id: int) -> str:
    return Meeting.objects.get(pk=meeting_id).worker


def registered(redis_url: str, worker_id: str) -> WorkerInfo | None:
    """What the worker last announced (its heartbeat)."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        raw = client.hget(WORKERS_KEY, worker_id)
    return WorkerInfo.model_validate_json(raw) if raw else None


def registered_load(redis_url: str, worker_id: str) -> int:
    info = registered(redis_url, worker_id)
    return info.load if info else -1


async def flowing(x: MeetingClient, y: MeetingClient, *, more: int = 10) -> None:
    """Both hear and see each other (``more`` new frames from now)."""
    start = {
        (c.name, s): len(c.frames_from(o.user_id, s)) for c, o in ((x, y), (y, x)) for s in ("mic", "camera")
    }
    await wait_until(
        lambda: all(
            len(c.frames_from(o.user_id, s)) >= start[(c.name, s)] + more
            for c, o in ((x, y), (y, x))
            for s in ("mic", "camera")
        ),
        what=f"media between {x.name} and {y.name}",
    )


async def test_meetings_on_sfu_workers_survive_a_killed_worker(daphne_factory, sfu_workers, isolated_redis):  # noqa: F811
    first, second, nadia, amina, rachid = await two_guild_meetings()
    w1 = await asyncio.to_thread(sfu_workers, "w1", worker_port(42000))
    w2 = await asyncio.to_thread(sfu_workers, "w2", worker_port(42200))
    workers = {w1.worker_id: w1, w2.worker_id: w2}
    assert w1.udp_ports() == [] and w2.udp_ports() == []
    server = await asyncio.to_thread(
        daphne_factory,
        {"REDIS_URL": isolated_redis, "HIRFA_SFU_PLACEMENT": "workers", "HIRFA_SFU_HEARTBEAT_SECONDS": str(HEARTBEAT)},
    )
    n = await remote_client(server, nadia, "nadia")
    a = await remote_client(server, amina, "amina")
    k = await remote_client(server, rachid, "rachid", publish=("mic",))
    try:
        await n.join(first)
        await a.join(first)
        await flowing(n, a)
        holder = workers[await worker_of(first)]
        other = w2 if holder is w1 else w1
        assert holder.udp_ports(), "the media goes through the worker holding the meeting"
        assert other.udp_ports() == []

        # chosen by load: once the holder reports its two participants, the next meeting goes elsewhere
        await wait_until(lambda: registered_load(isolated_redis, holder.worker_id) == 2, what="load reported")
        # its health: the UDP ports its peers hold, as the kernel counts them
        await wait_until(
            lambda: (info := registered(isolated_redis, holder.worker_id)) is not None
            and info.ports == len(holder.udp_ports()) > 0,
            what="ports reported",
        )
        await k.join(second)
        assert await worker_of(second) == other.worker_id
        await k.wait_for("meeting_state", lambda f: f["participants"] and f["participants"][0]["connected"])

        # a loaded machine stalls a process now and then: a worker silent for less than 3
        # heartbeats is alive, and nobody is told to rejoin
        other.process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(STALL)
        finally:
            other.process.send_signal(signal.SIGCONT)

        # the holder dies: its participants are told to rejoin, the other meeting is untouched
        marks = {c.name: c.mark() for c in (n, a, k)}
        holder.process.send_signal(signal.SIGKILL)
        holder.process.wait(timeout=10)
        for c in (n, a):
            rejoin = await c.wait_for("meeting_rejoin", after=marks[c.name], timeout=REJOIN_DELAY + 5)
            assert rejoin == {"type": "meeting_rejoin", "meeting": first, "reason": "worker_lost"}
        assert "meeting_rejoin" not in [f["type"] for f in k.frames]

        # rejoining (a new peer connection, as the page does) places the meeting on the other worker
        for c, tracks in ((n, nadia), (a, amina)):
            await c.peer.close()
            c.peer = ClientPeer(
                c.name, tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()}
            )
            await c.join(first)
        assert await worker_of(first) == other.worker_id
        await flowing(n, a)
        state = await n.wait_for(
            "meeting_state",
            lambda f: len(f["participants"]) == 2 and all(p["connected"] for p in f["participants"]),
            after=marks["nadia"],
        )
        assert state["meeting"] == first

        # everybody leaves: the worker holds no peer connection and no UDP socket any more
        for c, meeting in ((n, first), (a, first), (k, second)):
            await c.send({"type": "meeting_leave", "meeting": meeting})
            await c.wait_for("meeting_ended")
        await wait_until(lambda: other.udp_ports() == [], what="the worker freed its UDP sockets")
    finally:
        for c in (n, a, k):
            await c.close()
    assert peer_connections_open(collect=True) == 0
    # a stopped worker (SIGTERM) unregisters and exits cleanly
    other.process.terminate()
    assert other.process.wait(timeout=15) == 0, other.log()
    assert registered_load(isolated_redis, other.worker_id) == -1


#: A meeting spreads once its worker holds one participant (signaling/spread.py).
SPREAD = {"HIRFA_SFU_SPREAD_LOAD": "1"}


def meeting_workers(redis_url: str, meeting_id: int) -> set[str]:
    """The workers holding parts of the meeting, as they noted in Redis."""
    import redis

    from signaling.placement import MEETING_PREFIX

    with redis.Redis.from_url(redis_url) as client:
        return {w.decode() for w in client.hkeys(f"{MEETING_PREFIX}{meeting_id}")}


async def test_a_big_meeting_spreads_over_two_workers_joined_by_a_pipe(daphne_factory, sfu_workers, isolated_redis):  # noqa: F811
    first, _second, nadia, amina, _rachid = await two_guild_meetings()
    w1 = await asyncio.to_thread(sfu_workers, "w1", worker_port(42000), 0, SPREAD)
    w2 = await asyncio.to_thread(sfu_workers, "w2", worker_port(42200), 0, SPREAD)
    workers = {w1.worker_id: w1, w2.worker_id: w2}
    server = await asyncio.to_thread(
        daphne_factory,
        {"REDIS_URL": isolated_redis, "HIRFA_SFU_PLACEMENT": "workers", "HIRFA_SFU_HEARTBEAT_SECONDS": str(HEARTBEAT),
         **SPREAD},
    )
    n = await remote_client(server, nadia, "nadia")
    a = await remote_client(server, amina, "amina")
    try:
        await n.join(first)
        holder = workers[await worker_of(first)]
        other = w2 if holder is w1 else w1
        await wait_until(lambda: registered_load(isolated_redis, holder.worker_id) == 1, what="load reported")

        # the meeting's worker holds one: amina goes to the other worker, and each one's
        # camera and voice reach the other through the pipes between the workers
        await a.join(first)
        await flowing(n, a)
        assert holder.udp_ports() and other.udp_ports(), "each worker holds one participant's peer"
        assert await worker_of(first) == holder.worker_id
        assert meeting_workers(isolated_redis, first) == {w1.worker_id, w2.worker_id}
        # one meeting state from both workers' parts, on both sockets
        for c in (n, a):
            await c.wait_for(
                "meeting_state",
                lambda f: sorted(p["user"]["id"] for p in f["participants"]) == sorted([nadia.pk, amina.pk])
                and all(p["connected"] for p in f["participants"]),
            )

        # amina leaves: her worker holds nobody of the meeting, the pipes close, nadia's
        # state has her alone
        mark = n.mark()
        await a.send({"type": "meeting_leave", "meeting": first})
        await a.wait_for("meeting_ended")
        await wait_until(lambda: meeting_workers(isolated_redis, first) == {holder.worker_id}, what="amina's part gone")
        await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 1, after=mark)
        await wait_until(lambda: other.udp_ports() == [], what="amina's worker freed its UDP sockets")
        await wait_until(lambda: registered_load(isolated_redis, other.worker_id) == 0, what="its load reported")

        # she comes back (on the other worker again), then that worker dies: she is told to
        # rejoin as before, and rejoins on the meeting's worker (the only one alive)
        await a.peer.close()
        a.peer = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
        await a.join(first)
        await flowing(n, a)
        assert other.udp_ports(), "amina is on the other worker again"
        mark = a.mark()
        other.process.send_signal(signal.SIGKILL)
        other.process.wait(timeout=10)
        rejoin = await a.wait_for("meeting_rejoin", after=mark, timeout=REJOIN_DELAY + 5)
        assert rejoin["reason"] == "worker_lost"
        await a.peer.close()
        a.peer = ClientPeer("amina", tracks={TrackSource.MICROPHONE: ToneAudioTrack(), TrackSource.CAMERA: PatternVideoTrack()})
        await a.join(first)
        await flowing(n, a)
        # The dead worker's note is swept by the holder's heartbeat once its alive key has
        # expired, which on a loaded machine came after the rejoin (entering the meeting
        # skips a dead worker's note meanwhile: RedisPeerBus.enter).
        await wait_until(lambda: meeting_workers(isolated_redis, first) == {holder.worker_id},
                         what="the dead worker swept from the meeting")

        # both leave: the worker frees everything
        for c in (n, a):
            await c.send({"type": "meeting_leave", "meeting": first})
            await c.wait_for("meeting_ended")
        await wait_until(lambda: holder.udp_ports() == [], what="the worker freed its UDP sockets")
        await wait_until(lambda: not meeting_workers(isolated_redis, first), what="the meeting's parts forgotten")
    finally:
        for c in (n, a):
            await c.close()


async def test_a_hosts_acts_reach_a_participant_on_the_other_worker(daphne_factory, sfu_workers, isolated_redis):  # noqa: F811
    first, _second, nadia, amina, _rachid = await two_guild_meetings()
    w1 = await asyncio.to_thread(sfu_workers, "w1", worker_port(42000), 0, SPREAD)
    w2 = await asyncio.to_thread(sfu_workers, "w2", worker_port(42200), 0, SPREAD)
    workers = {w1.worker_id: w1, w2.worker_id: w2}
    server = await asyncio.to_thread(
        daphne_factory,
        {"REDIS_URL": isolated_redis, "HIRFA_SFU_PLACEMENT": "workers", "HIRFA_SFU_HEARTBEAT_SECONDS": str(HEARTBEAT),
         **SPREAD},
    )
    n = await remote_client(server, nadia, "nadia")
    a = await remote_client(server, amina, "amina")
    try:
        await n.join(first)
        holder = workers[await worker_of(first)]
        other = w2 if holder is w1 else w1
        await wait_until(lambda: registered_load(isolated_redis, holder.worker_id) == 1, what="load reported")
        await a.join(first)
        await flowing(n, a)
        assert meeting_workers(isolated_redis, first) == {w1.worker_id, w2.worker_id}

        # nadia (host, on the meeting's worker) mutes amina (on the other): her voice stops
        # at her worker, her picture goes on, and both sockets show her muted
        mark = n.mark()
        await n.send({"type": "meeting_host", "meeting": first, "action": "mute", "user": amina.pk, "source": "mic"})
        for c in (n, a):
            await c.wait_for(
                "meeting_state",
                lambda f: [p["host_muted"] for p in f["participants"] if p["user"]["id"] == amina.pk] == [["mic"]],
                after=mark if c is n else 0,
            )
        assert "error" not in [f["type"] for f in n.frames[mark:]]
        heard = len(n.frames_from(amina.pk, "mic"))
        seen = len(n.frames_from(amina.pk, "camera"))
        await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= seen + 20, what="her picture goes on")
        assert len(n.frames_from(amina.pk, "mic")) - heard <= 3, "nadia still hears amina"

        # nadia removes her: she is told at once, her worker lets her peer go, her part ends
        await n.send({"type": "meeting_host", "meeting": first, "action": "remove", "user": amina.pk})
        ended = await a.wait_for("meeting_ended")
        assert ended["reason"] == "removed"
        await wait_until(lambda: other.udp_ports() == [], what="amina's worker freed her UDP socket")
        await wait_until(lambda: meeting_workers(isolated_redis, first) == {holder.worker_id}, what="her part gone")
        await n.wait_for("meeting_state", lambda f: [p["user"]["id"] for p in f["participants"]] == [nadia.pk], after=mark)
        assert "error" not in [f["type"] for f in n.frames[mark:]]
    finally:
        for c in (n, a):
            await c.close()
