"""Writes of the registry: census and verification, the showcase, the exchange, privacy.

Every function is keyword-only, validates its input (refusing with a
`HirfaError` whose message is for people), writes in one transaction, and
only then (on commit) notifies or deletes files.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub import notifications
from hub.bidi import bidi_strip
from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, validate_and_resize_image
from hub.models import User, Wilaya
from hub.protocol import CardOut
from hub.services import phone_normalise
from registry.hooks import ENQUIRY, EXCHANGE, NEW_PIECE
from registry.models import (
    Availability,
    Census,
    ContactChannel,
    Enquiry,
    ExchangeKind,
    ExchangePost,
    Favourite,
    Follow,
    Material,
    Product,
    ProductPhoto,
    ProductReport,
    ProductStatus,
    ProvenanceLabel,
    Unit,
    VerificationStatus,
    WorkshopKind,
)
from registry.selectors import can_review, price_text, product_card
from rooms.models import Room
from rooms.services import (
    direct_room_open,
    inbox_reply_post,
    inbox_room_open,
    message_post,
    notification_create,
)

CARD_PHOTO_SIDE = 1600
PRODUCT_PHOTO_SIDE = 1600
PRODUCT_THUMB_SIDE = 400
PRODUCT_MAX_PHOTOS = 8
CARD_NUMBER_RE = re.compile(r"^[0-9A-Za-z/\- ]{4,32}$")
EXCHANGE_MAX_DAYS = 180
# What one member may keep: plenty for a buyer, a bound on a script.
FAVOURITES_MAX = 1000
FOLLOWS_MAX = 1000


class _Unchanged:
    """Marks a keyword argument left out of an update."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


def _delete_on_commit(storage: Storage, *names: str | None) -> None:
    for name in names:
        if name:
            transaction.on_commit(functools.partial(storage.delete, name))


# --- census ------------------------------------------------------------------------------


def census_ensure(*, user: User) -> Census:
    """`user`'s census record, created empty when missing."""
    census, _created = Census.objects.get_or_create(user=user)
    return census


STORY_MAX = 2000
COVER_SIDE = 1600


def storefront_update(*, user: User, story: str = UNCHANGED, cover: Upload | None = None, cover_remove: bool = False) -> Census:
    """The storefront's cover photo (re-encoded, at most 1600 px wide) and the story of
    the workshop (at most 2000 characters). Refuses with `too_long` (field `story`) or an
    image error (field `cover`); the old cover's file goes when it is replaced or removed."""
    if story is not UNCHANGED:
        story = bidi_strip(story.replace("\r\n", "\n")).strip()
        if len(story) > STORY_MAX:
            raise HirfaError(ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": STORY_MAX}, field="story")
    image = None
    if cover is not None:
        try:
            image = validate_and_resize_image(
                cover, max_bytes=settings.HIRFA_ATTACHMENT_MAX_BYTES,
                max_pixels=settings.HIRFA_ATTACHMENT_MAX_PIXELS, max_side=COVER_SIDE,
            )
        except HirfaError as error:
            error.details.setdefault("field", "cover")
            raise
    with transaction.atomic():
        census = Census.objects.select_for_update().get(pk=census_ensure(user=user).pk)
        old = census.cover.name if census.cover and (image is not None or cover_remove) else ""
        if story is not UNCHANGED:
            census.story = story
        if image is not None:
            census.cover.save(f"{user.pk}-{secrets.token_hex(8)}.{image.extension}", ContentFile(image.data), save=False)
            census.cover_width, census.cover_height = image.width, image.height
        elif cover_remove:
            census.cover = ""
            census.cover_width = census.cover_height = 0
        census.save()
        _delete_on_commit(census.cover.storage, old)
    return census


def census_update(
    *,
    user: User,
    commune: str = UNCHANGED,
    workshop_kind: str = UNCHANGED,
    years_of_practice: int | None = UNCHANGED,
    phone: str = UNCHANGED,
    whatsapp: str = UNCHANGED,
    contact_email: str = UNCHANGED,
    public_channels: Sequence[str] = UNCHANGED,
) -> Census:
    """Change the given public census fields; omitted ones stay. Card data is `verification_submit`'s."""
    with transaction.atomic():
        census = census_ensure(user=user)
        census = Census.objects.select_for_update().get(pk=census.pk)
        if commune is not UNCHANGED:
            census.commune = _short(commune, 120, "commune")
        if workshop_kind is not UNCHANGED:
            if workshop_kind not in WorkshopKind.values:
                raise HirfaError(ErrorCode.INVALID, _("Unknown kind of workshop."), field="workshop_kind")
            census.workshop_kind = workshop_kind
        if years_of_practice is not UNCHANGED:
            if years_of_practice is not None and not 0 <= years_of_practice <= 90:
                raise HirfaError(
                    ErrorCode.INVALID, _("Years of practice: between 0 and 90."), field="years_of_practice"
                )
            census.years_of_practice = years_of_practice
        if phone is not UNCHANGED:
            census.phone = _phone(phone, "phone")
        if whatsapp is not UNCHANGED:
            census.whatsapp = _phone(whatsapp, "whatsapp")
        if contact_email is not UNCHANGED:
            census.contact_email = _short(contact_email, 254, "contact_email")
            if census.contact_email and "@" not in census.contact_email:
                raise HirfaError(ErrorCode.INVALID, _("Enter a valid e-mail address."), field="contact_email")
        if public_channels is not UNCHANGED:
            unknown = [c for c in public_channels if c not in ContactChannel.values]
            if unknown:
                raise HirfaError(ErrorCode.INVALID, _("Unknown contact channel."), field="public_channels")
            census.public_channels = list(dict.fromkeys(public_channels))
        census.save()
    return census


def _short(value: str, limit: int, field: str) -> str:
    value = " ".join(value.split())
    if len(value) > limit:
        raise HirfaError(
            ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": limit}, field=field, max=limit
        )
    return value


def _phone(value: str, field: str) -> str:
    value = value.strip()
    if value and not re.fullmatch(r"\+?[0-9 ]{6,20}", value):
        raise HirfaError(ErrorCode.INVALID, _("Enter a phone number (digits, an optional +)."), field=field)
    return value


def verification_submit(
    *, user: User, card_number: str, issuing_chamber: str, card_photo: Upload
) -> Census:
    """Submit the artisan card for review: the status becomes `pending`.

    The photo is validated and re-encoded (`hub.images`); refusals are
    `invalid` / `too_long` with a message for people, and leave the record as
    it was. A verified artisan who resubmits goes back to `pending`.
    """
    card_number = " ".join(card_number.split())
    if not card_number:
        raise HirfaError(ErrorCode.EMPTY, _("Enter the number of your artisan card."), field="card_number")
    if not CARD_NUMBER_RE.match(card_number):
        raise HirfaError(
            ErrorCode.INVALID, _("A card number holds 4 to 32 letters, digits, / or -."), field="card_number"
        )
    issuing_chamber = _short(issuing_chamber, 120, "issuing_chamber")
    try:
        image = validate_and_resize_image(
            card_photo,
            max_bytes=settings.HIRFA_ATTACHMENT_MAX_BYTES,
            max_pixels=settings.HIRFA_ATTACHMENT_MAX_PIXELS,
            max_side=CARD_PHOTO_SIDE,
        )
    except HirfaError as error:
        error.details.setdefault("field", "card_photo")
        raise
    with transaction.atomic():
        census = Census.objects.select_for_update().get(pk=census_ensure(user=user).pk)
        old = census.card_photo.name if census.card_photo else ""
        census.card_photo.save(
            f"{user.pk}-{secrets.token_hex(8)}.{image.extension}", ContentFile(image.data), save=False
        )
        census.card_number = card_number
        census.issuing_chamber = issuing_chamber
        census.status = VerificationStatus.PENDING
        census.rejection_reason = ""
        census.submitted_at = timezone.now()
        census.reviewed_at = None
        census.reviewed_by = None
        census.save()
        _delete_on_commit(census.card_photo.storage, old)
    return census


def verification_review(*, moderator: User, artisan_id: int, approve: bool, reason: str = "") -> Census:
    """Approve or reject a pending card. Only a moderator of the artisan's wilaya, or an admin.

    Anyone else gets `not_found`, as for an artisan who does not exist. A
    rejection needs a reason. The artisan is notified (kind `system`).
    """
    with transaction.atomic():
        census = (
            Census.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(user_id=artisan_id)
            .first()
        )
        if census is None or not can_review(moderator=moderator, census=census):
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such artisan."))
        if census.status != VerificationStatus.PENDING:
            raise HirfaError(ErrorCode.CONFLICT, _("This card is not waiting for a review."))
        reason = " ".join(reason.split())
        if not approve and not reason:
            raise HirfaError(ErrorCode.EMPTY, _("Say why the card is rejected."), field="reason")
        census.status = VerificationStatus.VERIFIED if approve else VerificationStatus.REJECTED
        census.rejection_reason = "" if approve else reason[:500]
        census.reviewed_at = timezone.now()
        census.reviewed_by = moderator
        census.save()
        notification_create(
            user=census.user,
            kind=notifications.SYSTEM,
            data={"event": "verification", "status": census.status, "reason": census.rejection_reason},
        )
    return census


# --- showcase ----------------------------------------------------------------------------


PRODUCT_MAX_MAKING_DAYS = 365


def _clean_product_fields(
    *, title: str, description: str, price_dzd: int | None, materials: str,
    availability: str, labels: Sequence[str], status: str, making_days: int | None = None,
) -> dict[str, Any]:
    title = " ".join(title.split())
    if not title:
        raise HirfaError(ErrorCode.EMPTY, _("A product needs a title."), field="title")
    if len(title) > 140:
        raise HirfaError(ErrorCode.TOO_LONG, _("A title holds at most 140 characters."), field="title")
    description = description.strip()
    if len(description) > 4000:
        raise HirfaError(ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": 4000}, field="description")
    if price_dzd is not None and not 0 < price_dzd <= 1_000_000_000:
        raise HirfaError(ErrorCode.INVALID, _("A price is a positive amount of dinars."), field="price_dzd")
    if availability not in Availability.values:
        raise HirfaError(ErrorCode.INVALID, _("Unknown availability."), field="availability")
    unknown = [lb for lb in labels if lb not in ProvenanceLabel.values]
    if unknown:
        raise HirfaError(ErrorCode.INVALID, _("Unknown provenance label."), field="labels")
    if status not in (ProductStatus.DRAFT, ProductStatus.PUBLISHED, ProductStatus.SOLD_OUT):
        raise HirfaError(ErrorCode.INVALID, _("Unknown status."), field="status")
    if making_days is not None and not 0 < making_days <= PRODUCT_MAX_MAKING_DAYS:
        raise HirfaError(
            ErrorCode.INVALID, _("A making time is 1 to %(n)d days.") % {"n": PRODUCT_MAX_MAKING_DAYS},
            field="making_days",
        )
    return {
        "making_days": making_days,
        "title": title,
        "description": description,
        "price_dzd": price_dzd,
        "materials": _short(materials, 300, "materials"),
        "availability": availability,
        "labels": list(dict.fromkeys(labels)),
        "status": status,
    }


def product_create(
    *,
    user: User,
    title: str,
    description: str = "",
    price_dzd: int | None = None,
    materials: str = "",
    availability: str = Availability.IN_STOCK,
    labels: Sequence[str] = (),
    status: str = ProductStatus.PUBLISHED,
    making_days: int | None = None,
    photos: Sequence[Upload] = (),
) -> Product:
    """Create a product of `user`'s showcase, with its photos (validated first: all or nothing).

    `price_dzd` None means "price on request".
    """
    fields = _clean_product_fields(
        title=title, description=description, price_dzd=price_dzd, materials=materials,
        availability=availability, labels=labels, status=status, making_days=making_days,
    )
    processed = [_product_image(p) for p in photos[: PRODUCT_MAX_PHOTOS + 1]]
    if len(processed) > PRODUCT_MAX_PHOTOS:
        raise HirfaError(
            ErrorCode.TOO_LONG, _("At most %(n)d photos.") % {"n": PRODUCT_MAX_PHOTOS}, field="photos"
        )
    with transaction.atomic():
        product = Product.objects.create(artisan=user, **fields)
        for position, image in enumerate(processed):
            _photo_store(product, image, position)
        if product.status == ProductStatus.PUBLISHED:
            _followers_tell_later(product)
    return product


# Enqueues the job that runs `new_piece_followers_tell`: registered by `RegistryConfig.ready()`
# (registry/tasks.py imports this module; this module does not import it).
_new_piece_job: list[Callable[[int], object]] = []


def new_piece_job_register(enqueue: Callable[[int], object]) -> None:
    _new_piece_job[:] = [enqueue]


def _followers_tell_later(product: Product) -> None:
    """The job that tells the artisan's followers, written in this transaction: it exists
    if and only if the piece does, and the worker runs it after the commit."""
    for enqueue in _new_piece_job:
        enqueue(product.pk)


def new_piece_followers_tell(*, product_id: int) -> int:
    """Notify the active followers of a published product's artisan (the notification centre,
    pushes, digests), once per product whatever the number of runs; answers how many were
    told. A piece no longer published (a draft again, deleted, hidden) tells no one, and is
    told of when published again."""
    with transaction.atomic():
        product = Product.objects.select_for_update().select_related("artisan").filter(pk=product_id).first()
        if (
            product is None or product.followers_told_at is not None
            or product.status != ProductStatus.PUBLISHED or not product.artisan.is_active
        ):
            return 0
        product.followers_told_at = timezone.now()
        product.save(update_fields=["followers_told_at"])
        artisan = product.artisan
        data: dict[str, object] = {"product": product.pk, "title": product.title, "by": artisan.display_name}
        told = 0
        for follower in User.objects.filter(following__artisan=artisan, is_active=True).exclude(pk=artisan.pk):
            notification_create(user=follower, kind=NEW_PIECE, data=data)
            told += 1
    return told


def _product_image(upload: Upload) -> Any:
    try:
        return validate_and_resize_image(
            upload,
            max_bytes=settings.HIRFA_ATTACHMENT_MAX_BYTES,
            max_pixels=settings.HIRFA_ATTACHMENT_MAX_PIXELS,
            max_side=PRODUCT_PHOTO_SIDE,
            thumbnail_side=PRODUCT_THUMB_SIDE,
        )
    except HirfaError as error:
        error.details.setdefault("field", "photos")
        raise


def _photo_store(product: Product, image: Any, position: int) -> ProductPhoto:
    stem = f"{product.pk}-{secrets.token_hex(6)}"
    photo = ProductPhoto(
        product=product, width=image.width, height=image.height, position=position
    )
    photo.image.save(f"{stem}.{image.extension}", ContentFile(image.data), save=False)
    photo.thumbnail.save(f"{stem}-t.{image.extension}", ContentFile(image.thumbnail), save=False)
    photo.save()
    return photo


def _own_product(user: User, product_id: int) -> Product:
    product = Product.objects.select_for_update().filter(pk=product_id, artisan=user).first()
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    return product


def product_update(*, user: User, product_id: int, **changes: Any) -> Product:
    """Change the given fields of one of `user`'s products (others: `not_found`).

    A product hidden by the moderators stays hidden whatever the status asked.
    """
    with transaction.atomic():
        product = _own_product(user, product_id)
        current = {
            "title": product.title, "description": product.description,
            "price_dzd": product.price_dzd, "materials": product.materials,
            "availability": product.availability, "labels": product.labels,
            "making_days": product.making_days,
            "status": ProductStatus.PUBLISHED if product.status == ProductStatus.HIDDEN else product.status,
        }
        unknown = set(changes) - set(current)
        if unknown:
            raise HirfaError(ErrorCode.INVALID, _("Unknown field."), field=min(unknown))
        current.update(changes)
        fields = _clean_product_fields(**current)
        if product.status == ProductStatus.HIDDEN:
            fields["status"] = ProductStatus.HIDDEN
        for name, value in fields.items():
            setattr(product, name, value)
        product.updated_at = timezone.now()
        product.save()
        if product.status == ProductStatus.PUBLISHED and product.followers_told_at is None:
            _followers_tell_later(product)
    return product


def product_photo_add(*, user: User, product_id: int, upload: Upload) -> ProductPhoto:
    """Add a photo to one of `user`'s products (validated, resized, thumbnailed)."""
    image = _product_image(upload)
    with transaction.atomic():
        product = _own_product(user, product_id)
        count = product.photos.count()
        if count >= PRODUCT_MAX_PHOTOS:
            raise HirfaError(
                ErrorCode.TOO_LONG, _("At most %(n)d photos.") % {"n": PRODUCT_MAX_PHOTOS}, field="photos"
            )
        return _photo_store(product, image, count)


def product_photos_arrange(
    *, user: User, product_id: int, order: Sequence[int], alt_texts: dict[int, str] | None = None,
    remove: Sequence[int] = (),
) -> list[ProductPhoto]:
    """Reorder, describe and remove the photos of one of `user`'s products.

    `order` lists photo ids, first shown first (photos left out keep their order after
    them); `alt_texts` describes photos (≤ 200 characters); `remove` deletes photos and,
    once committed, their files. Ids of other products' photos: `not_found`.
    """
    alt_texts = alt_texts or {}
    with transaction.atomic():
        product = _own_product(user, product_id)
        photos = {p.pk: p for p in product.photos.all()}
        unknown = (set(order) | set(alt_texts) | set(remove)) - set(photos)
        if unknown:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such photo."), field="photos")
        gone = [photos.pop(pk) for pk in dict.fromkeys(remove)]
        if gone:
            _delete_on_commit(gone[0].image.storage, *_photo_files(gone))
            ProductPhoto.objects.filter(pk__in=[p.pk for p in gone]).delete()
        ranked = [pk for pk in dict.fromkeys(order) if pk in photos]
        ranked += [pk for pk in sorted(photos, key=lambda pk: (photos[pk].position, pk)) if pk not in ranked]
        for position, pk in enumerate(ranked):
            photo = photos[pk]
            photo.position = position
            if pk in alt_texts:
                photo.alt_text = _short(alt_texts[pk], 200, "alt_text")
            photo.save(update_fields=["position", "alt_text"])
        return [photos[pk] for pk in ranked]


def _photo_files(photos: Sequence[ProductPhoto]) -> list[str]:
    return [n for p in photos for n in (p.image.name, p.thumbnail.name) if n]


def product_delete(*, user: User, product_id: int) -> None:
    """Delete one of `user`'s products and, once committed, its photo files."""
    with transaction.atomic():
        product = _own_product(user, product_id)
        photos = list(product.photos.all())
        if photos:
            _delete_on_commit(photos[0].image.storage, *_photo_files(photos))
        product.delete()


def product_report(*, user: User, product_id: int, reason: str, text: str = "") -> ProductReport:
    """Report a published product (counterfeit, abuse, other) to the moderators' queue.

    One open report per member and product (a repeat returns the same one);
    one cannot report one's own product.
    """
    product = Product.objects.filter(pk=product_id, status__in=_PUBLIC).first()
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    if product.artisan_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("You cannot report your own product."))
    if reason not in ProductReport.Reason.values:
        raise HirfaError(ErrorCode.INVALID, _("Choose a reason."), field="reason")
    report, _created = ProductReport.objects.get_or_create(
        product=product, reporter=user, status=ProductReport.Status.OPEN,
        defaults={"reason": reason, "text": _short(text, 500, "text")},
    )
    return report


_PUBLIC = (ProductStatus.PUBLISHED, ProductStatus.SOLD_OUT)


def product_report_resolve(*, moderator: User, report_id: int, hide: bool) -> ProductReport:
    """Dismiss a report, or hide the product. Moderators of the artisan's wilaya and admins.

    Resolving one report resolves every open report of the same product.
    Anyone else: `not_found`.
    """
    from registry.selectors import moderated_wilaya_ids

    with transaction.atomic():
        report = (
            ProductReport.objects.select_related("product__artisan__profile")
            .filter(pk=report_id).first()
        )
        if report is None:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such report."))
        profile = getattr(report.product.artisan, "profile", None)
        wilayas = moderated_wilaya_ids(user=moderator)
        if not (wilayas is None or (profile is not None and profile.wilaya_id in wilayas)):
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such report."))
        status = ProductReport.Status.ACTIONED if hide else ProductReport.Status.DISMISSED
        if hide:
            Product.objects.filter(pk=report.product_id).update(status=ProductStatus.HIDDEN)
        ProductReport.objects.filter(product=report.product, status=ProductReport.Status.OPEN).update(
            status=status, handled_by=moderator, handled_at=timezone.now()
        )
        report.refresh_from_db()
    return report


AUTH_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read off a printed tag
AUTH_CODE_LENGTH = 8


def product_authenticity_code(*, user: User, product_id: int) -> str:
    """The short public code of the authenticity tag of one of `user`'s products, made on
    the first call and kept (a printed tag stays valid).

    Only a verified artisan's published (or sold-out) product has one: `forbidden`
    otherwise; someone else's product: `not_found`.
    """
    with transaction.atomic():
        product = _own_product(user, product_id)
        census = Census.objects.filter(user=user).first()
        if census is None or not census.is_verified:
            raise HirfaError(ErrorCode.FORBIDDEN, _("Authenticity tags are for verified artisans."))
        if product.status not in _PUBLIC:
            raise HirfaError(ErrorCode.FORBIDDEN, _("Publish the product first."))
        if not product.auth_code:
            while True:
                code = "".join(secrets.choice(AUTH_CODE_ALPHABET) for _ in range(AUTH_CODE_LENGTH))
                if not Product.objects.filter(auth_code=code).exists():
                    break
            product.auth_code = code
            product.save(update_fields=["auth_code"])
    return product.auth_code


def counterfeit_report(*, code: str, text: str, reporter: User | None = None) -> ProductReport:
    """Someone (with or without an account) reports that a piece carrying the tag `code` is
    not what it says: a `counterfeit` report in the moderators' queue of the artisan's wilaya.
    Callers throttle anonymous reports."""
    product = Product.objects.filter(auth_code=code.strip().upper()).first()
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such tag."))
    text = " ".join(text.split())
    if not text:
        raise HirfaError(ErrorCode.EMPTY, _("Say what looks wrong."), field="text")
    if reporter is not None and reporter.is_authenticated:
        return product_report(user=reporter, product_id=product.pk, reason=ProductReport.Reason.COUNTERFEIT, text=text)
    return ProductReport.objects.create(
        product=product, reporter=None, reason=ProductReport.Reason.COUNTERFEIT, text=_short(text, 500, "text")
    )


def artisan_contact(*, user: User, artisan_id: int) -> Room:
    """The direct room between `user` and an artisan (created when missing)."""
    return direct_room_open(user=user, other_id=artisan_id)


def product_favourite(*, user: User, product_id: int, keep: bool = True) -> bool:
    """Keep (or, with `keep=False`, let go of) a published product among `user`'s favourites.

    Idempotent; returns whether the product is now a favourite. `not_found` for a product
    others cannot see (letting go of one always works), `invalid` for one's own piece,
    `limit_reached` past `FAVOURITES_MAX`.
    """
    if not keep:
        Favourite.objects.filter(user=user, product_id=product_id).delete()
        return False
    product = Product.objects.filter(pk=product_id, status__in=_PUBLIC, artisan__is_active=True).first()
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    if product.artisan_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("This is your own product."))
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one count at a time per member
        if Favourite.objects.filter(user=user, product=product).exists():
            return True
        if Favourite.objects.filter(user=user).count() >= FAVOURITES_MAX:
            raise HirfaError(
                ErrorCode.LIMIT_REACHED,
                _("You keep at most %(max)d favourites: remove some first.") % {"max": FAVOURITES_MAX},
            )
        Favourite.objects.create(user=user, product=product)
    return True


def artisan_follow(*, user: User, artisan_id: int, follow: bool = True) -> bool:
    """Follow (or, with `follow=False`, stop following) an active artisan.

    Idempotent; returns whether `user` now follows him. `not_found` when there is no such
    artisan (stopping always works), `invalid` for oneself, `limit_reached` past `FOLLOWS_MAX`.
    """
    if not follow:
        Follow.objects.filter(follower=user, artisan_id=artisan_id).delete()
        return False
    artisan = User.objects.filter(pk=artisan_id, is_active=True, profile__isnull=False).first()
    if artisan is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such artisan."))
    if artisan.pk == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("You cannot follow yourself."))
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if Follow.objects.filter(follower=user, artisan=artisan).exists():
            return True
        if Follow.objects.filter(follower=user).count() >= FOLLOWS_MAX:
            raise HirfaError(
                ErrorCode.LIMIT_REACHED,
                _("You follow at most %(max)d artisans: stop following some first.") % {"max": FOLLOWS_MAX},
            )
        Follow.objects.create(follower=user, artisan=artisan)
    return True


def order_request(*, user: User, product_id: int, note: str = "") -> Room:
    """Open the direct room with the product's artisan; the first message carries the product's card.

    Idempotent per member and product: asking twice posts the card once.
    """
    product = (
        Product.objects.filter(pk=product_id, status__in=_PUBLIC, artisan__is_active=True)
        .select_related("artisan__profile__wilaya").prefetch_related("photos").first()
    )
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    if product.artisan_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("This is your own product."))
    room = direct_room_open(user=user, other_id=product.artisan_id)
    text = note.strip()[:1000] or _("Hello, I am interested in this piece.")
    message_post(
        user=user, room_id=room.pk, client_id=f"order-{product.pk}", text=text, card=product_card(product)
    )
    return room


def exchange_reply(*, user: User, post_id: int) -> Room:
    """Open the direct room with a post's author; the first message carries the post's card
    (material, quantity, price, wilaya and how far it is from `user`'s). Once per member and post."""
    from registry.selectors import exchange_distance, exchange_post_open

    post = exchange_post_open(post_id=post_id)
    if post is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such post."))
    if post.author_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("This is your own post."))
    room = direct_room_open(user=user, other_id=post.author_id)
    kind = ExchangeKind(post.kind).label
    material = post.detail if post.material == Material.OTHER else Material(post.material).label
    card = CardOut(
        kind="exchange_post",
        title=f"{kind}: {material} — {post.quantity.normalize():f} {Unit(post.unit).label}",
        url=reverse("registry_exchange") + f"#post-{post.pk}",
        price="" if post.price_dzd is None else price_text(post.price_dzd),
        detail=" · ".join(
            part for part in (f"{post.wilaya.code:02d} {post.wilaya.name}", exchange_distance(post=post, viewer=user)) if part
        ),
    )
    message_post(
        user=user, room_id=room.pk, client_id=f"exchange-{post.pk}",
        text=_("Hello, about your post on the exchange."), card=card,
    )
    return room


ENQUIRY_NAME_MAX = 80
ENQUIRY_TEXT_MAX = 1000
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def enquiry_send(
    *, product_id: int, name: str, contact: str, text: str, honeypot: str = "", client_key: str = "",
    language: str = "ar", site: str = "",
) -> Enquiry | None:
    """A buyer without an account asks about a product; it arrives as a conversation for the
    artisan: a private room of his, the product's card and the buyer's name and e-mail or
    phone first, then the question.

    `contact` is an e-mail address or a phone number (`invalid` otherwise). A filled
    `honeypot` (a field people never see) is a robot's: nothing is stored and None is
    returned, as if it had worked. The caller throttles (per address and per product).
    Idempotent on `client_key` (the form's one-time token). The `Enquiry` answered keeps
    how to reach the buyer: `language` and `site` (scheme and host) for his e-mails.
    """
    product = (
        Product.objects.filter(pk=product_id, status__in=_PUBLIC, artisan__is_active=True)
        .select_related("artisan__profile__wilaya").prefetch_related("photos").first()
    )
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    name = " ".join(bidi_strip(name).split())
    if not name:
        raise HirfaError(ErrorCode.EMPTY, _("Say your name."), field="name")
    if len(name) > ENQUIRY_NAME_MAX:
        raise HirfaError(ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": ENQUIRY_NAME_MAX}, field="name")
    contact = contact.strip()
    if EMAIL_RE.match(contact) and len(contact) <= 254:
        how = contact
    elif phone_normalise(contact):
        how = f"+{phone_normalise(contact)}"
    else:
        raise HirfaError(ErrorCode.INVALID, _("An e-mail address or a phone number."), field="contact")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise HirfaError(ErrorCode.EMPTY, _("Write your question."), field="text")
    if len(text) > ENQUIRY_TEXT_MAX:
        raise HirfaError(ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": ENQUIRY_TEXT_MAX}, field="text")
    if honeypot.strip():
        return None
    detail = (
        _("From %(name)s, %(contact)s. Your answers here are e-mailed to them.")
        if "@" in how else _("From %(name)s, %(contact)s. They read your answers at their link; or call them.")
    )
    card = product_card(product).model_copy(update={"kind": "enquiry", "detail": detail % {"name": name, "contact": how}})
    key = client_key[:40] or secrets.token_hex(8)
    with transaction.atomic():
        room = inbox_room_open(
            user=product.artisan,
            title=_("Enquiry: %(name)s — %(title)s") % {"name": name, "title": product.title},
            text=text, card=card, client_id=f"enquiry-{key}",
        )
        enquiry, created = Enquiry.objects.get_or_create(
            room=room,
            defaults={
                "product": product, "name": name, "email": how if "@" in how else "",
                "phone": "" if "@" in how else how, "language": language[:8], "site": site[:200],
                "mailed_seq": room.last_seq,
            },
        )
        if created:
            notification_create(
                user=product.artisan, kind=ENQUIRY,
                data={"room": room.pk, "room_title": room.title, "product": product.pk, "title": product.title, "by": name,
                      "excerpt": text[:140]},
            )
    return enquiry


def enquiry_answer(*, enquiry: Enquiry, text: str, client_key: str) -> None:
    """The buyer writes again in his conversation (from his link): a message of his in the
    artisan's room, live, with a notification for the artisan. Idempotent on `client_key`.

    Refuses with `empty` or `too_long`.
    """
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise HirfaError(ErrorCode.EMPTY, _("Write your question."), field="text")
    if len(text) > ENQUIRY_TEXT_MAX:
        raise HirfaError(ErrorCode.TOO_LONG, _("At most %(n)d characters.") % {"n": ENQUIRY_TEXT_MAX}, field="text")
    with transaction.atomic():
        posted = inbox_reply_post(
            room_id=enquiry.room_id, client_id=f"enquiry-{client_key[:40] or secrets.token_hex(8)}", text=text
        )
        room = enquiry.room
        owner = room.created_by
        if posted.created and owner is not None:
            notification_create(
                user=owner, kind=ENQUIRY,
                data={"room": room.pk, "room_title": room.title, "product": enquiry.product_id, "by": enquiry.name,
                      "excerpt": text[:140]},
            )


#: The artisan's answers are e-mailed once he has been quiet this long (one e-mail, not one per line).
ENQUIRY_MAIL_QUIET = timedelta(minutes=2)


def enquiry_replies_mail(*, now: datetime | None = None) -> int:
    """E-mail each buyer what the artisan wrote in his conversation since the last e-mail,
    with the link to read and answer it; answers how many e-mails were sent.

    At most once per message: the enquiry's row is locked and its `mailed_seq` moved in the
    transaction that sends. Waits until the artisan's newest answer is `ENQUIRY_MAIL_QUIET`
    old, so several lines make one e-mail. Deleted messages are not sent.
    """
    from django.core.mail import send_mail
    from django.db.models import F
    from django.utils import translation

    from registry.selectors import enquiry_link
    from rooms.models import Message

    now = now or timezone.now()
    sent = 0
    waiting = Enquiry.objects.exclude(email="").filter(room__last_seq__gt=F("mailed_seq")).values_list("pk", flat=True)
    for pk in list(waiting[:200]):
        with transaction.atomic():
            enquiry = (
                Enquiry.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("room", "product", "room__created_by").filter(pk=pk).first()
            )
            if enquiry is None:
                continue
            new = list(
                Message.objects.filter(room=enquiry.room, seq__gt=enquiry.mailed_seq, author__isnull=False)
                .select_related("author").order_by("seq")
            )
            shown = [m for m in new if m.deleted_at is None]
            if shown and shown[-1].created_at > now - ENQUIRY_MAIL_QUIET:
                continue
            enquiry.mailed_seq = enquiry.room.last_seq
            enquiry.save(update_fields=["mailed_seq"])
            if not shown:
                continue
            artisan = shown[-1].author
            who = artisan.display_name if artisan is not None else _("The artisan")
            with translation.override(enquiry.language):
                product = enquiry.product.title if enquiry.product is not None else enquiry.room.title
                subject = _("%(artisan)s answered your question about %(product)s") % {"artisan": who, "product": product}
                lines = [_("Hello %(name)s,") % {"name": enquiry.name}, "",
                         _("%(artisan)s answered you on Hirfa:") % {"artisan": who}, ""]
                lines += [m.text or _("(an attachment: open the conversation to see it)") for m in shown]
                lines += ["", _("Read the conversation and answer: %(url)s") % {"url": enquiry.site + enquiry_link(enquiry)}]
                send_mail(subject, "\n".join(lines), None, [enquiry.email])
            sent += 1
    return sent


# --- raw-materials exchange --------------------------------------------------------------


def exchange_post(
    *,
    user: User,
    kind: str,
    material: str,
    quantity: Decimal | float | str,
    unit: str,
    wilaya_id: int,
    detail: str = "",
    price_dzd: int | None = None,
    barter: bool = False,
    expires_at: datetime | None = None,
) -> ExchangePost:
    """Publish an offer or a need, then notify the matching counterparts.

    Matching: open posts of the other kind, same material, in the same wilaya
    or a neighbouring one (`Wilaya.neighbours`), not expired, by someone else.
    Each of their authors gets one `exchange` notification on commit.
    """
    if kind not in ExchangeKind.values:
        raise HirfaError(ErrorCode.INVALID, _("An offer or a need."), field="kind")
    if material not in Material.values:
        raise HirfaError(ErrorCode.INVALID, _("Choose a material from the list."), field="material")
    if material == Material.OTHER and not detail.strip():
        raise HirfaError(ErrorCode.EMPTY, _("Say which material."), field="detail")
    if unit not in Unit.values:
        raise HirfaError(ErrorCode.INVALID, _("Choose a unit."), field="unit")
    try:
        qty = Decimal(str(quantity))
    except InvalidOperation as exc:
        raise HirfaError(ErrorCode.INVALID, _("A quantity is a number."), field="quantity") from exc
    if not qty.is_finite() or qty <= 0 or qty >= Decimal("1e10"):
        raise HirfaError(ErrorCode.INVALID, _("A quantity is a positive number."), field="quantity")
    wilaya = Wilaya.objects.filter(pk=wilaya_id).first()
    if wilaya is None:
        raise HirfaError(ErrorCode.INVALID, _("Choose a wilaya from the list."), field="wilaya")
    if price_dzd is not None and price_dzd <= 0:
        raise HirfaError(ErrorCode.INVALID, _("A price is a positive amount of dinars."), field="price_dzd")
    now = timezone.now()
    expires_at = expires_at or now + timedelta(days=30)
    if not now < expires_at <= now + timedelta(days=EXCHANGE_MAX_DAYS):
        raise HirfaError(
            ErrorCode.INVALID,
            _("The expiry is in the future, at most %(n)d days ahead.") % {"n": EXCHANGE_MAX_DAYS},
            field="expires_at",
        )
    with transaction.atomic():
        post = ExchangePost.objects.create(
            author=user, kind=kind, material=material, detail=_short(detail, 300, "detail"),
            quantity=qty.quantize(Decimal("0.01")), unit=unit, wilaya=wilaya, price_dzd=price_dzd,
            barter=barter, expires_at=expires_at,
        )
        for author in _matching_authors(post):
            notification_create(
                user=author,
                kind=EXCHANGE,
                data={
                    "event": "match", "post": post.pk, "kind": post.kind, "material": post.material,
                    "wilaya": wilaya.code, "author": user.pk, "author_name": user.display_name,
                },
            )
    return post


def _matching_authors(post: ExchangePost) -> list[User]:
    from registry.selectors import exchange_matches

    seen: dict[int, User] = {}
    for match in exchange_matches(post=post):
        seen.setdefault(match.author_id, match.author)
    return list(seen.values())


def exchange_close(*, user: User, post_id: int) -> ExchangePost:
    """Close one of `user`'s posts (others: `not_found`)."""
    post = ExchangePost.objects.filter(pk=post_id, author=user).first()
    if post is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such post."))
    post.closed = True
    post.save(update_fields=["closed"])
    return post
