"""Reads of the registry: who may see card data, the directory cards, storefronts,
the exchange board and its matching, the moderators' queues and the census figures.

Card data (number, chamber, photo) is read only through `card_visible`:
the artisan himself, a moderator of his wilaya (a `ModeratorScope` on that
wilaya, for any trade or one of his) and admins. Everyone else gets the
public face only; the moderators' queues use the same rule (`can_review`).

The directory's search lives in `registry.search`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import ArtisanProfile, ModeratorScope, Trade, User, Wilaya
from hub.protocol import CardOut
from hub.services import phone_normalise
from registry.census_map import REFORM_PARENTS, MapWilaya, render_svg
from registry.models import (
    Census,
    Enquiry,
    ExchangeKind,
    ExchangePost,
    Favourite,
    Follow,
    Product,
    ProductReport,
    ProductStatus,
    VerificationStatus,
)

PAGE_SIZE = 20
STORE_PAGE_SIZE = 24
QUERY_MAX_CHARS = 200

PUBLIC_STATUSES = (ProductStatus.PUBLISHED, ProductStatus.SOLD_OUT)


# --- who may see what --------------------------------------------------------------------


def census_of(*, user: User) -> Census | None:
    return Census.objects.filter(user=user).first()


def moderated_wilaya_ids(*, user: User) -> set[int] | None:
    """The wilayas whose census `user` reviews: None for admins (all), else a set (maybe empty)."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser or user.is_staff:
        return None
    return set(
        ModeratorScope.objects.filter(user=user, wilaya__isnull=False).values_list("wilaya_id", flat=True)
    )


def _review_scope_q(moderator: User, prefix: str = "") -> Q | None:
    """A filter on ArtisanProfile (under `prefix`) for the artisans `moderator` reviews; None: all."""
    if moderator.is_superuser or moderator.is_staff:
        return None
    q = Q(pk__in=[])
    for scope in ModeratorScope.objects.filter(user=moderator, wilaya__isnull=False):
        part = Q(**{f"{prefix}wilaya_id": scope.wilaya_id})
        if scope.trade_id is not None:
            part &= Q(**{f"{prefix}trades": scope.trade_id})
        q |= part
    return q


def can_review(*, moderator: User, census: Census) -> bool:
    """Whether `moderator` moderates the census of `census.user` (his wilaya, or admin)."""
    if not moderator.is_authenticated:
        return False
    if moderator.is_superuser or moderator.is_staff:
        return True
    profile = ArtisanProfile.objects.filter(user_id=census.user_id).first()
    if profile is None or profile.wilaya_id is None:
        return False
    scope_q = _review_scope_q(moderator)
    assert scope_q is not None
    return ArtisanProfile.objects.filter(pk=profile.pk).filter(scope_q).exists()


def card_visible(*, viewer: User | None, census: Census) -> bool:
    """Whether `viewer` may see the card number, chamber and photo of `census`."""
    if viewer is None or not viewer.is_authenticated:
        return False
    return viewer.pk == census.user_id or can_review(moderator=viewer, census=census)


def user_reviews_any(*, user: User) -> bool:
    ids = moderated_wilaya_ids(user=user)
    return ids is None or bool(ids)


# --- directory ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtisanCard:
    """An artisan as the directory shows him: public data only."""

    user_id: int
    username: str
    display_name: str
    wilaya: str
    wilaya_code: int | None
    trades: tuple[str, ...]
    languages: tuple[str, ...]
    verified: bool
    avatar_url: str
    bio: str


@dataclass(frozen=True)
class Page:
    items: list[ArtisanCard]
    page: int
    has_next: bool
    has_previous: bool = field(default=False)


def _census_or_none(user: User) -> Census | None:
    try:
        return user.census  # type: ignore[attr-defined,no-any-return]
    except Census.DoesNotExist:
        return None


def _card(profile: ArtisanProfile) -> ArtisanCard:
    census = _census_or_none(profile.user)
    return ArtisanCard(
        user_id=profile.user_id,
        username=profile.user.username,
        display_name=profile.display_name or profile.user.username,
        wilaya=profile.wilaya.name if profile.wilaya else "",
        wilaya_code=profile.wilaya.code if profile.wilaya else None,
        trades=tuple(t.name for t in profile.trades.all()),
        languages=tuple(profile.languages or ()),
        verified=bool(census and census.is_verified),
        avatar_url=profile.avatar.url if profile.avatar else "",
        bio=profile.bio,
    )


# --- storefront and products -------------------------------------------------------------


@dataclass(frozen=True)
class Storefront:
    """An artisan's public page: his card, public contacts and one page of products."""

    artisan: ArtisanCard
    census: Census | None
    contacts: dict[str, str]
    products: list[Product]
    page: int
    has_next: bool


@dataclass(frozen=True)
class ContactLink:
    """One public way to reach an artisan: what to show and the link that opens it in one tap."""

    channel: str
    label: str
    href: str


def contact_links(census: Census | None) -> list[ContactLink]:
    """tel:, https://wa.me/ and mailto: links for the channels the artisan made public."""
    links = []
    for channel, value in public_contacts(census).items():
        if channel == "phone" and phone_normalise(value):
            links.append(ContactLink(channel, value, f"tel:+{phone_normalise(value)}"))
        elif channel == "whatsapp" and phone_normalise(value):
            links.append(ContactLink(channel, value, f"https://wa.me/{phone_normalise(value)}"))
        elif channel == "email":
            links.append(ContactLink(channel, value, f"mailto:{value}"))
    return links


def price_text(price_dzd: int | None) -> str:
    if price_dzd is None:
        return _("Price on request")
    return _("%(amount)s DA") % {"amount": f"{price_dzd:,}".replace(",", "\u202f")}


def product_card(product: Product) -> CardOut:
    """A product as a message's card: title, first photo, price, artisan and wilaya."""
    photo = next(iter(product.photos.all()), None)
    profile = getattr(product.artisan, "profile", None)
    wilaya = profile.wilaya if profile is not None else None
    detail = " · ".join(
        part for part in (
            profile.display_name if profile is not None else product.artisan.username,
            f"{wilaya.code:02d} {wilaya.name}" if wilaya is not None else "",
        ) if part
    )
    return CardOut(
        kind="product", title=product.title, url=reverse("registry_product", args=[product.pk]),
        image=photo.thumbnail.url if photo is not None else "", price=price_text(product.price_dzd), detail=detail,
    )


def public_contacts(census: Census | None) -> dict[str, str]:
    """Only the channels the artisan made public, and only when filled."""
    if census is None:
        return {}
    values = {"phone": census.phone, "whatsapp": census.whatsapp, "email": census.contact_email}
    return {c: values[c] for c in census.public_channels if values.get(c)}


def storefront(*, username: str, page: int = 1, include_unpublished: bool = False) -> Storefront:
    """The storefront of an active artisan; `not_found` when there is none.

    Drafts are listed only with `include_unpublished` (the artisan's own view);
    products hidden by the moderators never are.
    """
    profile = (
        ArtisanProfile.objects.select_related("wilaya", "user", "user__census")
        .prefetch_related("trades")
        .filter(user__username=username, user__is_active=True)
        .first()
    )
    if profile is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such artisan."))
    page = max(1, min(page, 1000))
    statuses = list(PUBLIC_STATUSES) + ([ProductStatus.DRAFT] if include_unpublished else [])
    start = (page - 1) * STORE_PAGE_SIZE
    products = list(
        Product.objects.filter(artisan_id=profile.user_id, status__in=statuses)
        .prefetch_related("photos")
        .order_by("-id")[start : start + STORE_PAGE_SIZE + 1]
    )
    census = _census_or_none(profile.user)
    return Storefront(
        artisan=_card(profile),
        census=census,
        contacts=public_contacts(census),
        products=products[:STORE_PAGE_SIZE],
        page=page,
        has_next=len(products) > STORE_PAGE_SIZE,
    )


def product_public(*, product_id: int, viewer: User | None = None) -> Product:
    """A published (or sold-out) product of an active artisan; its owner also sees drafts.

    Anything else — missing, draft of someone else, hidden — is `not_found`.
    """
    product = (
        Product.objects.select_related("artisan", "artisan__profile", "artisan__profile__wilaya")
        .prefetch_related("photos")
        .filter(pk=product_id, artisan__is_active=True)
        .first()
    )
    if product is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    own = viewer is not None and viewer.is_authenticated and viewer.pk == product.artisan_id
    if product.status in PUBLIC_STATUSES or (own and product.status != ProductStatus.HIDDEN):
        return product
    raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))


# --- favourites and followers ------------------------------------------------------------


@dataclass(frozen=True)
class Following:
    """How many members keep a product (or follow an artisan), and whether the viewer does."""

    count: int
    mine: bool


def product_following(*, product_id: int, viewer: User | None) -> Following:
    """How many members keep the product among their favourites; whether `viewer` does."""
    rows = Favourite.objects.filter(product_id=product_id, user__is_active=True)
    mine = viewer is not None and viewer.is_authenticated and rows.filter(user=viewer).exists()
    return Following(count=rows.count(), mine=mine)


def artisan_following(*, artisan_id: int, viewer: User | None) -> Following:
    """How many members follow the artisan; whether `viewer` does."""
    rows = Follow.objects.filter(artisan_id=artisan_id, follower__is_active=True)
    mine = viewer is not None and viewer.is_authenticated and rows.filter(follower=viewer).exists()
    return Following(count=rows.count(), mine=mine)


@dataclass(frozen=True)
class MyFavourites:
    products: list[Product]
    artisans: list[ArtisanCard]


def favourites_of(*, user: User) -> MyFavourites:
    """The products `user` keeps that others can still see, and the active artisans he
    follows, the latest first (a piece taken down or an artisan gone drops out at once)."""
    products = list(
        Product.objects.filter(
            favourites__user=user, status__in=PUBLIC_STATUSES, artisan__is_active=True
        )
        .select_related("artisan", "artisan__profile", "artisan__profile__wilaya")
        .prefetch_related("photos")
        .order_by("-favourites__id")[:1000]
    )
    profiles = (
        ArtisanProfile.objects.filter(user__followers__follower=user, user__is_active=True)
        .select_related("wilaya", "user", "user__census")
        .prefetch_related("trades")
        .order_by("-user__followers__id")[:1000]
    )
    return MyFavourites(products=products, artisans=[_card(p) for p in profiles])


@dataclass(frozen=True)
class AuthenticityCheck:
    """What scanning a tag shows: the piece, its artisan, and whether his card is verified now."""

    product: Product
    artisan: ArtisanCard
    verified: bool
    verified_on: date | None


def authenticity_check(*, code: str) -> AuthenticityCheck:
    """The piece whose tag carries `code` and its artisan's card status today; `not_found`
    for an unknown code or a piece withdrawn (hidden by moderators, deleted artisan)."""
    product = (
        Product.objects.select_related("artisan", "artisan__profile", "artisan__profile__wilaya", "artisan__census")
        .prefetch_related("photos", "artisan__profile__trades")
        .filter(auth_code=code.strip().upper(), artisan__is_active=True).first()
    )
    profile = getattr(product.artisan, "profile", None) if product is not None else None
    if product is None or profile is None or product.status == ProductStatus.HIDDEN:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such tag."))
    census = _census_or_none(product.artisan)
    verified = census is not None and census.is_verified
    return AuthenticityCheck(
        product=product, artisan=_card(profile), verified=verified,
        verified_on=census.reviewed_at.date() if verified and census is not None and census.reviewed_at else None,
    )


# --- the home page ------------------------------------------------------------------------


def featured_products(*, limit: int = 8) -> list[Product]:
    """The newest published pieces with a photo, by verified artisans, one per artisan."""
    rows = (
        Product.objects.filter(status=ProductStatus.PUBLISHED, artisan__is_active=True,
                               artisan__census__status=VerificationStatus.VERIFIED, photos__isnull=False)
        .select_related("artisan", "artisan__profile", "artisan__profile__wilaya")
        .prefetch_related("photos").order_by("-id").distinct()[: limit * 4]
    )
    seen: set[int] = set()
    found = []
    for product in rows:
        if product.artisan_id not in seen:
            seen.add(product.artisan_id)
            found.append(product)
    return found[:limit]


def featured_artisans(*, limit: int = 6) -> list[ArtisanCard]:
    """Verified artisans who sell something, newest first."""
    profiles = (
        ArtisanProfile.objects.filter(
            user__is_active=True, user__census__status=VerificationStatus.VERIFIED,
            user__products__status=ProductStatus.PUBLISHED,
        )
        .select_related("wilaya", "user", "user__census").prefetch_related("trades")
        .distinct().order_by("-id")[:limit]
    )
    return [_card(p) for p in profiles]


# --- moderators' queues ------------------------------------------------------------------


def verification_queue(*, moderator: User, limit: int = 200) -> list[Census]:
    """Pending cards of artisans `moderator` reviews, oldest submission first."""
    qs = Census.objects.filter(status=VerificationStatus.PENDING).select_related(
        "user", "user__profile", "user__profile__wilaya"
    )
    scope_q = _review_scope_q(moderator, prefix="user__profile__")
    if scope_q is not None:
        qs = qs.filter(scope_q)
    return list(qs.distinct().order_by("submitted_at", "id")[:limit])


def product_reports_open(*, moderator: User, limit: int = 200) -> list[ProductReport]:
    """Open product reports in the wilayas `moderator` reviews (all for admins), oldest first."""
    qs = ProductReport.objects.filter(status=ProductReport.Status.OPEN).select_related(
        "product", "product__artisan", "product__artisan__profile", "reporter"
    )
    wilayas = moderated_wilaya_ids(user=moderator)
    if wilayas is not None:
        qs = qs.filter(product__artisan__profile__wilaya_id__in=wilayas)
    return list(qs.order_by("id")[:limit])


# --- exchange ----------------------------------------------------------------------------


def _open_posts() -> QuerySet[ExchangePost]:
    return ExchangePost.objects.filter(closed=False, expires_at__gt=timezone.now(), author__is_active=True)


def exchange_board(
    *, kind: str | None = None, material: str | None = None, wilaya_id: int | None = None,
    page: int = 1, page_size: int = 30,
) -> tuple[list[ExchangePost], bool]:
    """Open posts (not closed, not expired), newest first, with the filters given; and has_next."""
    qs = _open_posts().select_related("wilaya", "author", "author__profile")
    if kind:
        qs = qs.filter(kind=kind)
    if material:
        qs = qs.filter(material=material)
    if wilaya_id:
        qs = qs.filter(wilaya_id=wilaya_id)
    page = max(1, page)
    start = (page - 1) * page_size
    rows = list(qs.order_by("-id")[start : start + page_size + 1])
    return rows[:page_size], len(rows) > page_size


def exchange_post_open(*, post_id: int) -> ExchangePost | None:
    """An open post (not closed, not expired, by an active member), or None."""
    return _open_posts().filter(pk=post_id).first()


def exchange_distance(*, post: ExchangePost, viewer: User | None) -> str:
    """How far a post is from the viewer, by wilaya: his own, a neighbour, or farther ("" unknown)."""
    if viewer is None or not viewer.is_authenticated:
        return ""
    profile = ArtisanProfile.objects.filter(user_id=viewer.pk).only("wilaya_id").first()
    if profile is None or profile.wilaya_id is None:
        return ""
    if profile.wilaya_id == post.wilaya_id:
        return _("In your wilaya")
    if Wilaya.neighbours.through.objects.filter(from_wilaya_id=profile.wilaya_id, to_wilaya_id=post.wilaya_id).exists():
        return _("Neighbouring wilaya")
    return _("Farther away")


def exchange_matches(*, post: ExchangePost) -> list[ExchangePost]:
    """Open posts of the other kind, same material, same or neighbouring wilaya, by others."""
    other = ExchangeKind.NEED if post.kind == ExchangeKind.OFFER else ExchangeKind.OFFER
    wilayas = {post.wilaya_id} | set(
        Wilaya.neighbours.through.objects.filter(from_wilaya_id=post.wilaya_id).values_list(
            "to_wilaya_id", flat=True
        )
    )
    return list(
        _open_posts()
        .filter(kind=other, material=post.material, wilaya_id__in=wilayas)
        .exclude(author_id=post.author_id)
        .select_related("author", "wilaya")
        .order_by("-id")
    )


# --- census figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class CensusRow:
    key: int
    code: str
    name: str
    total: int
    verified: int


@dataclass(frozen=True)
class CensusStats:
    total: int
    verified: int
    by_wilaya: list[CensusRow]
    by_trade: list[CensusRow]
    by_month: list[tuple[date, int]]


def census_stats() -> CensusStats:
    """Counts of active artisans (those with a profile) by wilaya, trade and month of sign-up.

    Only aggregates: no name, no card data. Every wilaya in force is listed,
    with zero when it has no artisan yet.
    """
    profiles = ArtisanProfile.objects.filter(user__is_active=True)
    verified_q = Q(user__census__status=VerificationStatus.VERIFIED)
    totals = profiles.aggregate(total=Count("pk"), verified=Count("pk", filter=verified_q))
    per_wilaya = {
        row["wilaya_id"]: row
        for row in profiles.values("wilaya_id").annotate(total=Count("pk"), verified=Count("pk", filter=verified_q))
    }
    by_wilaya = []
    today = timezone.localdate()
    for w in Wilaya.objects.order_by("code"):
        row = per_wilaya.get(w.pk, {"total": 0, "verified": 0})
        if not w.is_in_force(today) and not row["total"]:
            continue
        by_wilaya.append(CensusRow(w.pk, f"{w.code:02d}", w.name, row["total"], row["verified"]))
    trade_verified = Q(artisans__user__census__status=VerificationStatus.VERIFIED)
    by_trade = [
        CensusRow(t.pk, t.activity_code or t.slug, t.name, t.total, t.verified)
        for t in Trade.objects.annotate(
            total=Count("artisans", filter=Q(artisans__user__is_active=True)),
            verified=Count("artisans", filter=trade_verified & Q(artisans__user__is_active=True)),
        ).order_by("-total", "name_fr")
    ]
    months: Counter[date] = Counter()
    for joined in (
        profiles.annotate(month=TruncMonth("user__date_joined"))
        .values("month")
        .annotate(n=Count("pk"))
        .order_by("month")
    ):
        month = joined["month"]
        if month is not None:
            months[month.date() if hasattr(month, "date") else month] += joined["n"]
    return CensusStats(
        total=totals["total"],
        verified=totals["verified"],
        by_wilaya=by_wilaya,
        by_trade=by_trade,
        by_month=sorted(months.items()),
    )


@dataclass(frozen=True)
class CensusMap:
    """The census map for a page: the SVG without its legend, and the legend as text."""

    svg: str
    legend: list[tuple[str, str]]


def census_map_page() -> CensusMap:
    """The census map as a page shows it (legend and attribution beside it, in text)."""
    from registry.census_map import legend_rows

    return CensusMap(
        svg=census_map_markup(legend=False),
        legend=legend_rows(max(counts_by_wilaya_code().values(), default=0), _("none yet")),
    )


def census_map_markup(*, legend: bool = True) -> str:
    """The census map of the active language: every wilaya in force, coloured by its artisans."""
    wilayas = {w.code: MapWilaya(w.code, w.name) for w in Wilaya.objects.all() if w.is_in_force()}
    parents = dict(REFORM_PARENTS)
    for w in Wilaya.objects.filter(parent__isnull=False).select_related("parent"):
        if not w.is_in_force():
            parents[w.code] = w.parent.code  # type: ignore[union-attr]
    return render_svg(
        counts=counts_by_wilaya_code(),
        wilayas=wilayas,
        parents=parents,
        title=_("Artisans registered by wilaya"),
        legend_title=_("Artisans"),
        none_label=_("none yet"),
        attribution=_("Boundaries © OpenStreetMap contributors (ODbL)"),
        count_label=_("%(name)s: %(n)d artisans"),
        legend=legend,
    )


def counts_by_wilaya_code() -> dict[int, int]:
    """Active artisans per wilaya code (only wilayas that have some)."""
    return {
        code: n
        for code, n in ArtisanProfile.objects.filter(user__is_active=True, wilaya__isnull=False)
        .values_list("wilaya__code")
        .annotate(n=Count("pk"))
        .values_list("wilaya__code", "n")
    }





# --- a buyer's enquiry, read from his link ----------------------------------------------

_ENQUIRY_SALT = "hirfa.registry.enquiry"


def enquiry_link(enquiry: Enquiry) -> str:
    """The path at which the buyer reads and answers his conversation: signed with the
    server's secret (nothing to store), the same in every e-mail."""
    from django.core import signing

    return reverse("registry_enquiry", args=[signing.Signer(salt=_ENQUIRY_SALT).sign(str(enquiry.pk))])


def enquiry_by_token(*, token: str) -> Enquiry | None:
    """The enquiry a link names, or None for a forged or altered link (or one whose
    conversation the artisan no longer has)."""
    from django.core import signing

    try:
        pk = int(signing.Signer(salt=_ENQUIRY_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return (
        Enquiry.objects.filter(pk=pk, room__memberships__active=True)
        .select_related("room", "room__created_by", "product").first()
    )


@dataclass(frozen=True)
class EnquiryLine:
    """One message of a buyer's conversation as he sees it: his own or the artisan's."""

    mine: bool
    who: str
    text: str
    created_at: datetime
    attachment: bool


def enquiry_conversation(*, enquiry: Enquiry, limit: int = 100) -> list[EnquiryLine]:
    """The last `limit` messages of the conversation, oldest first, deleted ones left out;
    photos and voice messages are named, not shown (they are private to the room's members)."""
    from rooms.models import Message

    messages = (
        Message.objects.filter(room_id=enquiry.room_id, deleted_at__isnull=True)
        .select_related("author").prefetch_related("attachments").order_by("-seq")[:limit]
    )
    return [
        EnquiryLine(
            mine=m.author_id is None,
            who=enquiry.name if m.author is None else m.author.display_name,
            text=m.text,
            created_at=m.created_at,
            attachment=bool(m.attachments.all()),
        )
        for m in reversed(list(messages))
    ]
