"""Edits and reactions count in the member's rate bucket, and edits wait for slow mode."""

from __future__ import annotations

import pytest

from hub.errors import ErrorCode, HirfaError
from rooms import services
from tests import factories
from tests.rooms.test_services import amina, guild, post, poterie, tlemcen, yacine  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_refill(monkeypatch):
    # A loaded machine takes seconds for a burst; the bucket must not refill meanwhile.
    monkeypatch.setattr(services.send_buckets, "per_second", 1e-6)


def refused(call) -> HirfaError:
    with pytest.raises(HirfaError) as caught:
        call()
    return caught.value


def test_edits_take_tokens_from_the_send_bucket(amina, guild, settings):  # noqa: F811
    seq = post(amina, guild).message.id
    burst = int(settings.HIRFA_RATE_BURST)
    for i in range(burst - 1):  # the post took one token
        services.message_edit(user=amina, room_id=guild.pk, seq=seq, text=f"v{i}")
    error = refused(lambda: services.message_edit(user=amina, room_id=guild.pk, seq=seq, text="one more"))
    assert error.code == ErrorCode.RATE_LIMITED and error.retry_after > 0


def test_reactions_take_tokens_from_the_send_bucket(amina, yacine, guild, settings):  # noqa: F811
    seq = post(yacine, guild).message.id
    burst = int(settings.HIRFA_RATE_BURST)
    for i in range(burst):
        services.reaction_set(user=amina, room_id=guild.pk, seq=seq, emoji="👍", on=i % 2 == 0)
    error = refused(lambda: services.reaction_set(user=amina, room_id=guild.pk, seq=seq, emoji="🎉", on=True))
    assert error.code == ErrorCode.RATE_LIMITED
    # ... and a post after the flood of reactions waits too: one bucket.
    assert refused(lambda: post(amina, guild)).code == ErrorCode.RATE_LIMITED


def test_an_edit_waits_for_slow_mode(amina, yacine, guild, poterie):  # noqa: F811
    factories.moderator_of(yacine, trade_=poterie)
    seq = post(amina, guild).message.id
    services.slow_mode_set(moderator=yacine, room_id=guild.pk, seconds=30)
    error = refused(lambda: services.message_edit(user=amina, room_id=guild.pk, seq=seq, text="encore"))
    assert error.code == ErrorCode.SLOW_MODE and 0 < error.retry_after <= 30
    mine = post(yacine, guild).message.id  # moderators are exempt
    services.message_edit(user=yacine, room_id=guild.pk, seq=mine, text="edited")
