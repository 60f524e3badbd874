"""Admission smoothing (hub/admission.py): a hub process lets a few sockets open at a time;
the next one is closed at once with 4013 and told when to come back, and a crowd refused
together is given turns one after another."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from hub import admission
from hub.asgi import application
from hub.protocol import BusyReason
from tests.hub.test_asgi import session_cookie_for as cookie_for
from tests.sockets import clear_presence

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_opening_past_the_limit_is_refused_until_one_settles():
    gate = admission.Admission(limit=2, lag_max=0.1, clock=Clock())
    first, second = gate.enter(), gate.enter()
    assert first is not None and second is not None
    assert gate.enter() is None
    first.done()
    first.done()  # idempotent: one turn given back, not two
    third = gate.enter()
    assert third is not None
    assert gate.enter() is None


def test_a_late_loop_lets_a_quarter_in():
    gate = admission.Admission(limit=8, lag_max=0.1, clock=Clock())
    gate.lag = 0.5
    tickets = [gate.enter() for _ in range(3)]
    assert tickets[:2] != [None, None] and tickets[2] is None
    gate.lag = 0.0
    assert gate.enter() is not None


def test_only_lateness_from_the_process_own_work_counts():
    # Busy with its own work (0.4 s of CPU in 0.45 s): late by 0.4 s.
    assert admission.own_lateness(0.45, 0.4) == pytest.approx(0.4)
    # Waiting for a machine busy with other processes (0.01 s of CPU): not counted.
    assert admission.own_lateness(0.45, 0.01) == 0.0


def test_a_crowd_refused_together_gets_turns_one_after_another():
    clock = Clock()
    gate = admission.Admission(limit=4, lag_max=0.1, clock=clock)
    for _ in range(4):
        gate.enter()
    waits = [gate.retry_after() for _ in range(1000)]
    assert waits == sorted(waits)
    assert waits[0] >= admission.RETRY_AFTER_MIN
    assert waits[-1] == admission.RETRY_AFTER_MAX  # never told to wait longer
    # At the assumed pace (4 at once, a quarter of a second each: 16 a second), handed out
    # twice as fast: 160 turns take five seconds.
    assert waits[160] == pytest.approx(admission.RETRY_AFTER_MIN + 161 / 32, abs=0.1)


def test_turns_follow_the_pace_the_process_lets_sockets_in():
    clock = Clock()
    gate = admission.Admission(limit=4, lag_max=0.1, clock=clock)
    for _ in range(50):  # 50 settled in the last 5 s: 10 a second, slower than assumed
        ticket = gate.enter()
        assert ticket is not None
        clock.now += 0.1
        ticket.done()
    assert gate.pace() == pytest.approx(10, rel=0.05)
    first = gate.retry_after()
    assert gate.retry_after() - first == pytest.approx(0.05, abs=0.051)
    clock.now += 10  # the window forgets them: back to the assumed pace
    assert gate.pace() == pytest.approx(16)


async def welcomed(cookie: bytes) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/", headers=[ORIGIN, (b"cookie", cookie)])
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "hello", "v": 2})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    return comm


async def close_of(cookie: bytes) -> dict[str, object]:
    """Open a socket the hub is expected to refuse at once: its close message."""
    comm = WebsocketCommunicator(application, "/ws/", headers=[ORIGIN, (b"cookie", cookie)])
    assert (await comm.connect())[0]  # accepted, then closed with a code and reason the client reads
    output = await comm.receive_output(timeout=5)
    await comm.wait()
    return output


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_socket_past_the_limit_is_closed_with_4013_and_a_retry_after(settings):
    await clear_presence()
    settings.HIRFA_OPENINGS_AT_ONCE = 2
    amina, yacine, karim = [await cookie_for(n) for n in ("amina", "yacine", "karim")]
    phone = await welcomed(amina)
    laptop = await welcomed(yacine)
    refused = await close_of(karim)
    assert refused["type"] == "websocket.close" and refused["code"] == 4013
    reason = BusyReason.model_validate_json(str(refused["reason"]))
    assert admission.RETRY_AFTER_MIN <= reason.retry_after <= admission.RETRY_AFTER_MAX
    # The first frame after the welcome ends the opening: the next socket comes in.
    await phone.send_json_to({"type": "ping", "ref": "p"})
    assert (await phone.receive_json_from(timeout=5))["type"] == "pong"
    tablet = await welcomed(karim)
    # A socket that closes gives its turn back too.
    assert (await close_of(karim))["code"] == 4013
    await laptop.disconnect()
    again = await welcomed(karim)
    for comm in (phone, tablet, again):
        await comm.disconnect()


def test_the_busy_reason_is_the_documented_json():
    assert json.loads(admission.busy_reason(2.5)) == {"retry_after": 2.5}



@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
async def test_with_the_default_setting_a_crowd_is_let_in_without_refusals(settings):
    """Refusing costs the process a handshake per try: on a 5,000-socket storm the refused
    came back 4,700-18,000 times and the first crowd took 213-538 s to get in (48-68 s
    without the gate), so the gate is an operator's choice (HIRFA_OPENINGS_AT_ONCE > 0) and
    the default lets every opening in (paced further on: subscriptions, replays)."""
    from hub import settings as hub_settings

    await clear_presence()
    settings.HIRFA_OPENINGS_AT_ONCE = hub_settings.HIRFA_OPENINGS_AT_ONCE
    # More openings at once (none has sent a frame after its welcome) than 32 would let in.
    crowd = [await welcomed(await cookie_for(f"crowd{n}")) for n in range(36)]
    assert len(crowd) == 36
    for comm in crowd:
        await comm.disconnect()
