"""Placement and liveness on their own: which worker a meeting goes to, and the
heartbeat that lives exactly as long as a loop holds meeting sessions."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from signaling import liveness, placement
from signaling import messages as m


@pytest.fixture
async def workers(settings, redis_url):
    """An empty worker registry on the test Redis, emptied again afterwards."""
    settings.REDIS_URL = redis_url
    placement._redis_clients.clear()
    client = placement._redis()
    await client.delete(placement.WORKERS_KEY)
    yield client
    await client.delete(placement.WORKERS_KEY)
    for key in await client.keys(placement.ALIVE_PREFIX + "test-*"):
        await client.delete(key)
    await client.aclose()
    placement._redis_clients.clear()


async def test_the_least_loaded_live_worker_is_chosen(workers):
    assert await placement.worker_choose() is None
    await placement.worker_register(worker_id="test-busy", load=9)
    await placement.worker_register(worker_id="test-idle", load=1)
    assert await placement.worker_choose() == "test-idle"


async def test_a_dead_worker_is_forgotten_and_a_garbled_one_skipped(workers):
    await placement.worker_register(worker_id="test-dead", load=0)
    await workers.delete(placement.ALIVE_PREFIX + "test-dead")  # stopped heartbeating
    await placement.worker_register(worker_id="test-alive", load=5)
    await workers.hset(placement.WORKERS_KEY, "test-garbled", '{"load": "many"}')
    await workers.set(placement.ALIVE_PREFIX + "test-garbled", "1")
    assert await placement.worker_choose() == "test-alive"
    assert not await workers.hexists(placement.WORKERS_KEY, "test-dead")


async def test_a_worker_announces_a_typed_info(workers):
    await placement.worker_register(worker_id="test-one", load=3)
    raw = await workers.hget(placement.WORKERS_KEY, "test-one")
    info = m.WorkerInfo.model_validate_json(raw)
    assert (info.channel, info.load) == ("sfu.test-one", 3)
    assert abs(info.at - time.time()) < 60


async def test_the_heartbeat_runs_while_a_loop_holds_sessions(settings, monkeypatch):
    settings.HIRFA_MEETING_HEARTBEAT_SECONDS = 0.01
    beats: list[str] = []
    monkeypatch.setattr("signaling.services.attendance_heartbeat", lambda *, process: beats.append(process))
    # No database here: channels' wrapper would first tidy the pool thread's connection, which an
    # earlier test of this process may have left open, and database access is refused here.
    monkeypatch.setattr(liveness, "database_sync_to_async", sync_to_async)

    async def no_sweep(*, force: bool = False) -> list[int]:
        return []

    monkeypatch.setattr(liveness, "sweep", no_sweep)
    loop = asyncio.get_running_loop()
    liveness.session_opened()
    liveness.session_opened()
    task = liveness._heartbeats[loop]
    liveness.session_closed()
    await asyncio.sleep(0.1)
    assert beats and set(beats) == {liveness.PROCESS_ID}, "one session left: still beating"
    liveness.session_closed()
    await asyncio.wait_for(task, timeout=5)  # the last session gone: the heartbeat ends
    liveness.session_closed()  # one too many is harmless
    assert liveness._sessions[loop] == 0


async def test_a_worker_whose_loop_is_busy_for_seconds_stays_alive_and_a_stuck_one_does_not(workers, settings):
    """A hundred participants kept a worker's loop from its heartbeat for 7.4 s: its sockets
    counted it dead (after 3 heartbeats) and sent its participants to rejoin."""
    settings.HIRFA_SFU_HEARTBEAT_SECONDS = 0.5  # dead after 1.5 s without a refresh
    keeper = placement.AliveKeeper("test-busy", stuck_after=3.0)
    await placement.worker_register(worker_id="test-busy", load=100)
    keeper.start()
    try:
        time.sleep(2.5)  # noqa: ASYNC251 - the loop forwards media and does not turn: no heartbeat of its own
        assert await placement.worker_alive("test-busy")
        deadline = time.monotonic() + 15
        while await placement.worker_alive("test-busy") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # still no tick: stuck beyond 3 s, the key expires
        assert not await placement.worker_alive("test-busy")
        keeper.tick()
        while not await placement.worker_alive("test-busy") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await placement.worker_alive("test-busy"), "turning again: alive again"
    finally:
        keeper.stop()
    await placement.worker_unregister(worker_id="test-busy")
    await asyncio.sleep(1.0)
    assert not await placement.worker_alive("test-busy"), "stopped before unregistering: not set again"


async def test_a_command_sent_after_the_embedded_sfu_closed_makes_no_new_one(settings):
    """At shutdown (and at a test's end) the loop's embedded SFU is closed while sockets are
    still going: a Leave sent then must not make a new SFU on that loop (with its tasks and
    ports, never closed)."""
    settings.HIRFA_SFU_PLACEMENT = "embedded"
    assert placement.embedded_engine() is placement.current_engine()
    await placement.close_embedded()
    await placement.EmbeddedLink().send(m.Leave(meeting=1, room=1, user=1, reply_to="gone"))
    assert placement.current_engine() is None
