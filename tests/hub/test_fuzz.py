"""The protocol fuzzer in the suite: a few thousand seeded inputs through the real
consumer, on PostgreSQL and Redis in CI (tests/protocol_fuzz.py says what is checked).

`HIRFA_FUZZ_INPUTS` sets how many inputs run (default 2,500) and `HIRFA_FUZZ_SEED`
the seed; bench/fuzz.py runs the long one through this test and reads the figures it
writes to `HIRFA_FUZZ_REPORT`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests import protocol_fuzz
from tests.protocol_fuzz import FuzzHarness, World, input_sequences

INPUTS = int(os.environ.get("HIRFA_FUZZ_INPUTS", "2500"))
SEED = int(os.environ.get("HIRFA_FUZZ_SEED", "20261129"))
#: Sequences one socket serves before it is closed and checked (tests/protocol_fuzz.py).
BATCH = int(os.environ.get("HIRFA_FUZZ_BATCH", "4"))
ROUND = 400  # sequences per hypothesis run; each round has its own seed

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(int(os.environ.get("HIRFA_FUZZ_TIMEOUT", "900"))),
]


def make_world() -> World:
    """Amina and the rooms, messages, members and meeting her frames may name."""
    from rooms import services as room_services
    from rooms.models import Room, RoomKind
    from signaling import services as meeting_services
    from tests import factories

    trade, wilaya = factories.trade(), factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    yacine = factories.yacine(pottery_=trade)
    nadia = factories.nadia(pottery_=trade)
    other_trade = factories.trade("tissage-test", "Tissage", "النسيج")
    sofia = factories.sofia(weaving_=other_trade)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    region = Room.objects.filter(kind=RoomKind.REGION, wilaya=wilaya).first()
    closed = Room.objects.get(kind=RoomKind.GUILD, trade=other_trade)  # not hers to read
    group = room_services.group_create(user=amina, title="Atelier", member_ids=[yacine.pk])
    direct = room_services.direct_room_open(user=amina, other_id=yacine.pk)
    message = room_services.message_post(user=yacine, room_id=guild.pk, client_id="m1", text="salam")
    meeting = meeting_services.meeting_start(user=nadia, room_id=guild.pk)
    assert meeting.meeting is not None
    rooms = [r.pk for r in (guild, group, direct, closed, region) if r is not None]
    return World(
        user=amina,
        pools={
            "room": rooms,
            "all_rooms": rooms,
            "group": [group.pk],
            "message": [message.message.id],
            "user": [yacine.pk, nadia.pk, sofia.pk, amina.pk],
            "meeting": [meeting.meeting],
        },
    )


@pytest.fixture
def fuzz_loop(settings, monkeypatch):
    """One event loop for the whole run; the consumer's rate limits out of the way
    (they would turn most inputs into `rate_limited`), the SFU in this process."""
    from hub import consumers
    from rooms.services import send_buckets
    from signaling import consumers as meeting_consumers

    settings.HIRFA_SFU_PLACEMENT = "embedded"
    settings.HIRFA_RATE_BURST = 10**6
    monkeypatch.setattr(consumers, "FRAME_BURST", 10**6)
    monkeypatch.setattr(consumers, "FRAMES_PER_SECOND", 10**6)
    monkeypatch.setattr(consumers, "MAX_REFUSED_IN_A_ROW", 10**6)
    monkeypatch.setattr(meeting_consumers, "MEETING_FRAME_BURST", 10**6)
    monkeypatch.setattr(meeting_consumers, "MEETING_FRAMES_PER_SECOND", 10**6)
    send_buckets.reset()
    loop = asyncio.new_event_loop()
    yield loop
    from signaling import placement

    loop.run_until_complete(placement.close_embedded())
    loop.close()


def test_no_input_crashes_the_socket_or_leaks_its_state(fuzz_loop):
    from tests.sockets import clear_presence

    world = make_world()
    fuzz_loop.run_until_complete(clear_presence())
    harness = FuzzHarness(world, batch=BATCH)

    started = time.monotonic()
    rounds = 0
    while harness.figures.inputs < INPUTS:

        @seed(SEED + rounds)
        @settings(
            max_examples=ROUND,
            deadline=None,
            database=None,
            # No shrinking: every problem is recorded with the input that caused it, and
            # the run stays bounded in time.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(sequence=input_sequences)
        def one_sequence(sequence):
            if harness.figures.inputs < INPUTS:
                fuzz_loop.run_until_complete(harness.run(sequence))

        one_sequence()
        if harness.figures.inputs >= INPUTS:
            fuzz_loop.run_until_complete(harness.finish())
        rounds += 1
        _report(harness.figures, started, complete=harness.figures.inputs >= INPUTS)
    figures = harness.figures
    print(f"fuzz: {figures.inputs} inputs in {figures.sequences} sequences; answers {sorted(figures.answers.items())}")
    assert figures.inputs >= INPUTS
    # Enough reached the services and the SFU to mean something.
    assert figures.answers.get("ack", 0) > 0 and figures.answers.get("meeting_joined", 0) > 0
    assert (figures.crashes, figures.leaks, figures.undocumented_answers) == (0, 0, 0), figures.problems


def _report(figures, started: float, *, complete: bool) -> None:
    """Write the figures so far where bench/fuzz.py reads them (after every round, so a
    long run that is stopped still tells how far it got)."""
    report = os.environ.get("HIRFA_FUZZ_REPORT")
    if report:
        data = asdict(figures)
        data.update(seconds=round(time.monotonic() - started, 1), seed=SEED, complete=complete)
        with open(report + ".tmp", "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1)
        os.replace(report + ".tmp", report)


def test_the_fuzzer_knows_every_client_frame_and_documented_code():
    from hub import protocol
    from hub.errors import CloseCode, ErrorCode

    assert set(protocol_fuzz.FIELDS) == set(protocol.CLIENT_FRAME_TYPES)
    assert {c.value for c in ErrorCode} <= protocol_fuzz.DOCUMENTED_ERRORS
    assert {int(c) for c in CloseCode} <= protocol_fuzz.DOCUMENTED_CLOSES
