"""Writes to the community domain: artisans' accounts and profiles.

Each function validates its input (refusing with a `HirfaError` whose message
is for people), writes inside one transaction, and tells the apps that registered
with `on_profile_changed` when an artisan's trades or wilaya change (rooms keeps his
memberships in step through `rooms.services.memberships_sync`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from hub.bidi import bidi_strip
from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, validate_and_resize_image
from hub.models import ArtisanProfile, ModeratorScope, Trade, User, Wilaya

AVATAR_SIDE = 512
LANGUAGE_CODES = frozenset(ArtisanProfile.Language.values)

_profile_receivers: dict[str, Callable[[User], object]] = {}


def on_profile_changed(name: str, receiver: Callable[[User], object]) -> None:
    """Have `receiver(user)` called, inside the writing transaction, when `user` registers
    or his trades or wilaya change. Call from `AppConfig.ready()`; idempotent per name."""
    _profile_receivers[name] = receiver


def _profile_changed(user: User) -> None:
    for receiver in _profile_receivers.values():
        receiver(user)


class _Unchanged:
    """Marks a keyword argument left out of `profile_update`."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


def _clean_display_name(display_name: str) -> str:
    display_name = " ".join(bidi_strip(display_name).split())
    if not display_name:
        raise HirfaError(ErrorCode.EMPTY, _("A display name is required."), field="display_name")
    if len(display_name) > 80:
        raise HirfaError(
            ErrorCode.TOO_LONG, _("A display name holds at most 80 characters."), field="display_name"
        )
    return display_name


def _clean_wilaya(wilaya_id: int | None) -> Wilaya | None:
    if wilaya_id is None:
        return None
    wilaya = Wilaya.objects.filter(pk=wilaya_id).first()
    if wilaya is None or not wilaya.is_in_force():
        raise HirfaError(ErrorCode.INVALID, _("Choose a wilaya from the list."), field="wilaya")
    return wilaya


def _clean_trades(trade_ids: Iterable[int]) -> list[Trade]:
    wanted = set(trade_ids)
    trades = list(Trade.objects.filter(pk__in=wanted))
    if len(trades) != len(wanted):
        raise HirfaError(ErrorCode.INVALID, _("Choose trades from the list."), field="trades")
    return trades


def _clean_languages(languages: Sequence[str]) -> list[str]:
    unknown = [code for code in languages if code not in LANGUAGE_CODES]
    if unknown:
        raise HirfaError(ErrorCode.INVALID, _("Unknown language."), field="languages")
    # Keep the artisan's order, without repeats.
    return list(dict.fromkeys(languages))


def _clean_bio(bio: str) -> str:
    bio = bio.strip()
    if len(bio) > 500:
        raise HirfaError(ErrorCode.TOO_LONG, _("A bio holds at most 500 characters."), field="bio")
    return bio


def phone_normalise(number: str) -> str:
    """An Algerian number in international digits (0555 12 34 56 → 213555123456); "" if it
    is not a phone number."""
    digits = re.sub(r"\D", "", number)
    if number.strip().startswith("+") or digits.startswith("00"):
        digits = digits.removeprefix("00")
    elif digits.startswith("0"):
        digits = "213" + digits[1:]
    return digits if 8 <= len(digits) <= 15 else ""


def _username_from(display_name: str) -> str:
    """A free username made from the display name (Latin letters kept), e.g. "amina-b-2"."""
    base = slugify(display_name)[:24].strip("-") or "artisan"
    candidate, n = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}" if base != "artisan" or n > 2 else f"{base}-{secrets.randbelow(9000) + 1000}"
    return candidate


def artisan_register(
    *,
    username: str,
    email: str,
    password: str,
    display_name: str,
    wilaya_id: int | None,
    trade_ids: Sequence[int],
    languages: Sequence[str],
    phone: str = "",
) -> User:
    """Create an artisan's account and profile and place him in his rooms.

    The user, his profile and his memberships (guild, region and guild ×
    region rooms) are written in one transaction: either all exist or none.
    With no username, one is made from the display name; then an e-mail or a phone
    number is required, to log in with. Refuses with `conflict` (username, e-mail or
    phone taken), `invalid` (weak password, bad phone, unknown wilaya, trade or
    language), `empty` or `too_long`.
    """
    username = username.strip()
    email = email.strip()
    phone_digits = phone_normalise(phone) if phone.strip() else ""
    if phone.strip() and not phone_digits:
        raise HirfaError(ErrorCode.INVALID, _("This is not a phone number."), field="phone")
    if not username and not email and not phone_digits:
        raise HirfaError(
            ErrorCode.EMPTY, _("Give an e-mail, a phone number or a username to log in with."), field="phone"
        )
    if phone_digits and User.objects.filter(phone=phone_digits).exists():
        raise HirfaError(ErrorCode.CONFLICT, _("This phone number already has an account."), field="phone")
    if email and User.objects.filter(email__iexact=email).exists():
        raise HirfaError(ErrorCode.CONFLICT, _("This e-mail already has an account."), field="email")
    display_name = _clean_display_name(display_name)
    username = username or _username_from(display_name)
    wilaya = _clean_wilaya(wilaya_id)
    trades = _clean_trades(trade_ids)
    langs = _clean_languages(languages)
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise HirfaError(ErrorCode.INVALID, " ".join(exc.messages), field="password") from exc
    if User.objects.filter(username__iexact=username).exists():
        raise HirfaError(ErrorCode.CONFLICT, _("This username is taken."), field="username")
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=email, password=password, phone=phone_digits
            )
            profile = ArtisanProfile.objects.create(
                user=user, display_name=display_name, wilaya=wilaya, languages=langs
            )
            profile.trades.set(trades)
            _profile_changed(user)
    except IntegrityError as exc:
        # Two sign-ups raced for the same username.
        raise HirfaError(ErrorCode.CONFLICT, _("This username is taken."), field="username") from exc
    return user


def profile_ensure(*, user: User) -> ArtisanProfile:
    """The user's profile, created empty (display name = username) when missing."""
    profile, _created = ArtisanProfile.objects.get_or_create(
        user=user, defaults={"display_name": user.username}
    )
    return profile


def profile_update(
    *,
    user: User,
    display_name: str = UNCHANGED,
    wilaya_id: int | None = UNCHANGED,
    trade_ids: Sequence[int] = UNCHANGED,
    languages: Sequence[str] = UNCHANGED,
    bio: str = UNCHANGED,
) -> ArtisanProfile:
    """Change the given fields of `user`'s profile; omitted fields stay as they are.

    When the trades or the wilaya change, the memberships are synced in the
    same transaction: the rooms of the new profile are joined, the automatic
    memberships of the old one are left, rooms followed by hand are kept.
    """
    with transaction.atomic():
        profile = ArtisanProfile.objects.select_for_update().filter(user=user).first()
        if profile is None:
            profile = profile_ensure(user=user)
        fields: list[str] = []
        resync = False
        if display_name is not UNCHANGED:
            profile.display_name = _clean_display_name(display_name)
            fields.append("display_name")
        if wilaya_id is not UNCHANGED:
            wilaya = _clean_wilaya(wilaya_id)
            if profile.wilaya_id != (wilaya.pk if wilaya else None):
                profile.wilaya = wilaya
                fields.append("wilaya")
                resync = True
        if languages is not UNCHANGED:
            profile.languages = _clean_languages(languages)
            fields.append("languages")
        if bio is not UNCHANGED:
            profile.bio = _clean_bio(bio)
            fields.append("bio")
        if fields:
            profile.save(update_fields=fields)
        if trade_ids is not UNCHANGED:
            trades = _clean_trades(trade_ids)
            current = set(profile.trades.values_list("pk", flat=True))
            if current != {t.pk for t in trades}:
                profile.trades.set(trades)
                resync = True
        # The caller's `user.profile` may be an older copy; sync reads this one.
        user.profile = profile
        if resync:
            _profile_changed(user)
    return profile


def avatar_set(*, user: User, upload: Upload) -> ArtisanProfile:
    """Validate, re-encode and store `upload` as `user`'s avatar (at most 512 px a side).

    The previous avatar file is deleted once the change commits. Refuses with
    `invalid` (not a JPEG, PNG, WebP or GIF image) or `too_long` (bytes or pixels).
    """
    image = validate_and_resize_image(
        upload,
        max_bytes=settings.HIRFA_AVATAR_MAX_BYTES,
        max_pixels=settings.HIRFA_ATTACHMENT_MAX_PIXELS,
        max_side=AVATAR_SIDE,
        thumbnail_side=96,
    )
    name = f"{user.pk}-{secrets.token_hex(6)}.{image.extension}"
    with transaction.atomic():
        profile = profile_ensure(user=user)
        old = profile.avatar.name if profile.avatar else ""
        profile.avatar.save(name, ContentFile(image.data), save=False)
        profile.save(update_fields=["avatar"])
        user.profile = profile
        if old:
            storage = profile.avatar.storage
            transaction.on_commit(lambda: storage.delete(old))
    return profile


def avatar_clear(*, user: User) -> ArtisanProfile:
    """Remove `user`'s avatar; the file is deleted once the change commits."""
    with transaction.atomic():
        profile = profile_ensure(user=user)
        old, storage = profile.avatar.name, profile.avatar.storage
        if old:
            profile.avatar = ""  # type: ignore[assignment]
            profile.save(update_fields=["avatar"])
            transaction.on_commit(lambda: storage.delete(old))
    return profile


def moderator_scope_grant(
    *, user: User, trade_id: int | None = None, wilaya_id: int | None = None
) -> ModeratorScope:
    """Make `user` a moderator of a trade, a wilaya, or a trade within a wilaya (idempotent)."""
    if trade_id is None and wilaya_id is None:
        raise HirfaError(ErrorCode.INVALID, _("A moderator's scope names a trade or a wilaya."))
    # None means IS NULL in these lookups, which django-stubs does not model.
    scope, _created = ModeratorScope.objects.get_or_create(  # type: ignore[misc]
        user=user, trade_id=trade_id, wilaya_id=wilaya_id
    )
    return scope
