"""Edits and reactions count in the member's rate bucket, and edits wait for slow mode;
the private groups a member creates in a day are limited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from hub.errors import ErrorCode, HirfaError
from rooms import services
from rooms.models import Room
from tests.rooms.test_services import guild, post  # noqa: F401

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


def test_an_edit_waits_for_slow_mode(amina, nadia, guild):  # noqa: F811
    seq = post(amina, guild).message.id
    services.slow_mode_set(moderator=nadia, room_id=guild.pk, seconds=30)
    error = refused(lambda: services.message_edit(user=amina, room_id=guild.pk, seq=seq, text="encore"))
    assert error.code == ErrorCode.SLOW_MODE and 0 < error.retry_after <= 30
    mine = post(nadia, guild).message.id  # moderators are exempt
    services.message_edit(user=nadia, room_id=guild.pk, seq=mine, text="edited")


# --- groups a day ---------------------------------------------------------------------


def test_groups_a_member_creates_in_a_day_are_limited(amina, yacine, settings):
    settings.HIRFA_GROUPS_PER_DAY = 2
    first = services.group_create(user=amina, title="Potières de Nedroma")
    services.group_create(user=amina, title="Émaux")
    error = refused(lambda: services.group_create(user=amina, title="Une de trop"))
    assert error.code is ErrorCode.LIMIT_REACHED and error.message
    assert 23 * 3600 < error.retry_after <= 24 * 3600, "until her first group of the day is a day old"
    assert Room.objects.filter(created_by=amina).count() == 2, "nothing made"
    services.group_create(user=yacine, title="Le sien")  # per member
    Room.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=1, seconds=1))
    services.group_create(user=amina, title="Le lendemain")  # a day after, one more


def test_the_group_api_answers_429_with_retry_after(amina, settings):
    settings.HIRFA_GROUPS_PER_DAY = 1
    client = Client()
    client.force_login(amina)
    made = client.post("/api/rooms/groups", {"title": "Atelier"}, content_type="application/json")
    assert made.status_code == 201
    refused_ = client.post("/api/rooms/groups", {"title": "Encore"}, content_type="application/json")
    assert refused_.status_code == 429
    assert refused_.json()["code"] == "limit_reached" and refused_.json()["message"]
    assert int(refused_["Retry-After"]) > 3600
