from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from hub import services
from hub.errors import ErrorCode, HirfaError
from hub.models import ArtisanProfile, ModeratorScope, Trade, User, Wilaya
from rooms.models import Membership, Room, RoomKind
from rooms.services import room_follow

pytestmark = pytest.mark.usefixtures("reference_data")

PASSWORD = "a-long-test-passphrase"


def trade(slug: str) -> Trade:
    return Trade.objects.get(slug=slug)


def wilaya(code: int) -> Wilaya:
    return Wilaya.objects.get(code=code)


def register(username: str = "amina", **overrides: Any) -> User:
    params: dict[str, Any] = {
        "username": username,
        "email": f"{username}@example.org",
        "password": PASSWORD,
        "display_name": username.capitalize(),
        "wilaya_id": wilaya(13).pk,
        "trade_ids": [trade("pottery-ceramics").pk],
        "languages": ["ar", "fr"],
    }
    params.update(overrides)
    return services.artisan_register(**params)


def active_rooms(user: User) -> set[tuple[str, str | None, int | None]]:
    return {
        (m.room.kind, m.room.trade.slug if m.room.trade else None, m.room.wilaya.code if m.room.wilaya else None)
        for m in Membership.objects.filter(user=user, active=True).select_related("room__trade", "room__wilaya")
    }


def test_registration_creates_the_account_profile_and_memberships():
    amina = register(trade_ids=[trade("pottery-ceramics").pk, trade("basketry").pk])
    assert amina.check_password(PASSWORD)
    profile = amina.profile
    assert profile.display_name == "Amina"
    assert profile.wilaya.code == 13
    assert set(profile.trades.values_list("slug", flat=True)) == {"pottery-ceramics", "basketry"}
    assert profile.languages == ["ar", "fr"]
    assert active_rooms(amina) == {
        (RoomKind.GUILD, "pottery-ceramics", None),
        (RoomKind.GUILD, "basketry", None),
        (RoomKind.REGION, None, 13),
        (RoomKind.GUILD_REGION, "pottery-ceramics", 13),
        (RoomKind.GUILD_REGION, "basketry", 13),
    }


def test_two_artisans_of_a_trade_and_wilaya_share_their_rooms():
    amina = register("amina")
    karim = register("karim")
    shared = Room.objects.filter(memberships__user=amina).filter(memberships__user=karim)
    assert shared.count() == 3


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"password": "123"}, ErrorCode.INVALID, "password"),
        ({"password": "amina-example"}, ErrorCode.INVALID, "password"),
        ({"wilaya_id": 10_000}, ErrorCode.INVALID, "wilaya"),
        ({"trade_ids": [10_000]}, ErrorCode.INVALID, "trades"),
        ({"languages": ["xx"]}, ErrorCode.INVALID, "languages"),
        ({"display_name": "   "}, ErrorCode.EMPTY, "display_name"),
        ({"display_name": "x" * 81}, ErrorCode.TOO_LONG, "display_name"),
    ],
)
def test_registration_refusals_name_the_field(overrides, code, field):
    with pytest.raises(HirfaError) as info:
        register(**overrides)
    assert info.value.code == code
    assert info.value.details["field"] == field
    assert not User.objects.filter(username="amina").exists()


def test_a_taken_username_is_a_conflict_whatever_its_case():
    register("amina")
    with pytest.raises(HirfaError) as info:
        register("AMINA")
    assert info.value.code == ErrorCode.CONFLICT
    assert User.objects.filter(username__iexact="amina").count() == 1


def test_profile_update_changes_only_the_given_fields():
    amina = register()
    services.profile_update(user=amina, bio="  Potière à Tlemcen.  ")
    profile = ArtisanProfile.objects.get(user=amina)
    assert profile.bio == "Potière à Tlemcen."
    assert profile.display_name == "Amina" and profile.languages == ["ar", "fr"]
    assert profile.wilaya.code == 13


def test_moving_wilaya_and_trades_resyncs_memberships_and_keeps_followed_rooms():
    amina = register()
    copper_guild = Room.objects.get_or_create(kind=RoomKind.GUILD, trade=trade("copperware"))[0]
    room_follow(user=amina, room_id=copper_guild.pk)
    old_region = Room.objects.get(kind=RoomKind.REGION, wilaya__code=13)

    services.profile_update(
        user=amina, wilaya_id=wilaya(31).pk, trade_ids=[trade("glass").pk], display_name="Amina B."
    )

    assert active_rooms(amina) == {
        (RoomKind.GUILD, "glass", None),
        (RoomKind.REGION, None, 31),
        (RoomKind.GUILD_REGION, "glass", 31),
        (RoomKind.GUILD, "copperware", None),  # followed by hand: kept
    }
    left = Membership.objects.get(user=amina, room=old_region)
    assert not left.active
    assert amina.profile.display_name == "Amina B."


def test_profile_update_without_a_change_does_not_resync(monkeypatch):
    amina = register()
    calls = []
    # The receiver rooms registers (its memberships follow the profile), replaced by a spy.
    monkeypatch.setitem(services._profile_receivers, "rooms", calls.append)
    services.profile_update(user=amina, wilaya_id=wilaya(13).pk, trade_ids=[trade("pottery-ceramics").pk])
    assert calls == []
    services.profile_update(user=amina, wilaya_id=wilaya(25).pk)
    assert calls == [amina]


def test_profile_update_refuses_a_bad_value_and_changes_nothing():
    amina = register()
    with pytest.raises(HirfaError) as info:
        services.profile_update(user=amina, display_name="New", trade_ids=[10_000])
    assert info.value.details["field"] == "trades"
    assert ArtisanProfile.objects.get(user=amina).display_name == "Amina"


def _jpeg(size=(900, 600)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "brown").save(out, "JPEG")
    return out.getvalue()


def test_avatar_set_stores_a_resized_image_and_replaces_the_old_one(media_root, django_capture_on_commit_callbacks):
    amina = register()
    with django_capture_on_commit_callbacks(execute=True):
        profile = services.avatar_set(user=amina, upload=_jpeg())
    first = profile.avatar.name
    assert first.startswith("avatars/") and first.endswith(".jpg")
    with profile.avatar.open("rb") as stored:
        assert Image.open(stored).size == (512, 341)
    with django_capture_on_commit_callbacks(execute=True):
        profile = services.avatar_set(user=amina, upload=_jpeg((100, 100)))
    assert profile.avatar.name != first
    assert not profile.avatar.storage.exists(first)
    with django_capture_on_commit_callbacks(execute=True):
        services.avatar_clear(user=amina)
    assert not ArtisanProfile.objects.get(user=amina).avatar


def test_avatar_set_refuses_a_non_image(media_root):
    amina = register()
    with pytest.raises(HirfaError) as info:
        services.avatar_set(user=amina, upload=b"GIF89a but not really")
    assert info.value.code == ErrorCode.INVALID
    assert not ArtisanProfile.objects.get(user=amina).avatar


def test_moderator_scope_grant_is_idempotent_and_needs_a_scope():
    nadia = register("nadia")
    services.moderator_scope_grant(user=nadia, wilaya_id=wilaya(13).pk)
    services.moderator_scope_grant(user=nadia, wilaya_id=wilaya(13).pk)
    assert ModeratorScope.objects.filter(user=nadia).count() == 1
    with pytest.raises(HirfaError):
        services.moderator_scope_grant(user=nadia)
