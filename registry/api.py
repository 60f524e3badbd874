"""REST endpoints of the registry (mounted at ``/api/``, tag ``registry``).

They only translate: decode, call one service or selector, shape the answer.
Refusals are `HirfaError`s, turned into JSON by `hub.api`. The directory, a
storefront, a product and the census figures are public (no session);
the rest needs one. Card data (`card` in an artisan's answer) is present only
for the artisan himself and the moderators of his wilaya (and admins).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from hub import personal_data
from hub.auth import member_of, viewer_of
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from registry import search, selectors, services
from registry.models import Census, ExchangePost, Product

router = Router(tags=["registry"])


class ErrorBody(Schema):
    code: str
    message: str


ERRORS: dict[int, type[Schema]] = {
    401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 422: ErrorBody,
}


class ArtisanOut(Schema):
    user_id: int
    username: str
    display_name: str
    wilaya: str
    wilaya_code: int | None
    trades: list[str]
    languages: list[str]
    verified: bool
    avatar_url: str
    storefront_url: str


class ArtisanPageOut(Schema):
    items: list[ArtisanOut]
    page: int
    has_next: bool


class CardOut(Schema):
    card_number: str
    issuing_chamber: str
    photo_url: str
    status: str
    rejection_reason: str
    submitted_at: datetime | None


class CensusOut(Schema):
    commune: str
    workshop_kind: str
    years_of_practice: int | None
    phone: str
    whatsapp: str
    contact_email: str
    public_channels: list[str]
    status: str
    rejection_reason: str


class ArtisanDetailOut(ArtisanOut):
    bio: str
    commune: str
    workshop_kind: str
    years_of_practice: int | None
    contacts: dict[str, str]
    card: CardOut | None


def _artisan(card: selectors.ArtisanCard) -> dict[str, Any]:
    return {
        **{k: getattr(card, k) for k in ("user_id", "username", "display_name", "wilaya", "wilaya_code", "verified", "avatar_url")},
        "trades": list(card.trades),
        "languages": list(card.languages),
        "storefront_url": reverse("registry_storefront", args=[card.username]),
    }


def _card(census: Census) -> dict[str, Any]:
    return {
        "card_number": census.card_number,
        "issuing_chamber": census.issuing_chamber,
        "photo_url": reverse("registry_card_photo", args=[census.user_id]) if census.card_photo else "",
        "status": census.status,
        "rejection_reason": census.rejection_reason,
        "submitted_at": census.submitted_at,
    }


@router.get("/registry/artisans", response={200: ArtisanPageOut, **ERRORS}, auth=None)
def artisans_search(
    request: HttpRequest,
    q: str = "",
    trade: int | None = None,
    wilaya: int | None = None,
    language: str | None = None,
    verified: bool | None = None,
    page: int = 1,
) -> Any:
    """Search the directory (public): every filter given must match."""
    result = search.artisan_search(
        query=q, trade_id=trade, wilaya_id=wilaya, language=language, verified=verified, page=page
    )
    return {"items": [_artisan(c) for c in result.items], "page": result.page, "has_next": result.has_next}


@router.get("/registry/artisans/{username}", response={200: ArtisanDetailOut, **ERRORS}, auth=None)
def artisan_detail(request: HttpRequest, username: str) -> Any:
    """An artisan's public face; `card` only for himself and his wilaya's moderators."""
    store = selectors.storefront(username=username, page=1)
    census = store.census
    visible = census is not None and selectors.card_visible(viewer=viewer_of(request), census=census)
    return {
        **_artisan(store.artisan),
        "bio": store.artisan.bio,
        "commune": census.commune if census else "",
        "workshop_kind": census.workshop_kind if census else "",
        "years_of_practice": census.years_of_practice if census else None,
        "contacts": store.contacts,
        "card": _card(census) if visible and census is not None else None,
    }


def _census(census: Census) -> dict[str, Any]:
    return {
        k: getattr(census, k)
        for k in ("commune", "workshop_kind", "years_of_practice", "phone", "whatsapp",
                  "contact_email", "public_channels", "status", "rejection_reason")
    }


class CensusIn(Schema):
    commune: str | None = None
    workshop_kind: str | None = None
    years_of_practice: int | None = None
    phone: str | None = None
    whatsapp: str | None = None
    contact_email: str | None = None
    public_channels: list[str] | None = None


@router.get("/registry/census/me", response={200: CensusOut, **ERRORS})
def census_me(request: HttpRequest) -> Any:
    return _census(services.census_ensure(user=member_of(request)))


@router.patch("/registry/census/me", response={200: CensusOut, **ERRORS})
def census_me_update(request: HttpRequest, body: CensusIn) -> Any:
    """Change the fields given (public census data; card data is submitted separately)."""
    changes = body.model_dump(exclude_unset=True)
    return _census(services.census_update(user=member_of(request), **changes))


@router.post("/registry/census/me/card", response={200: CardOut, **ERRORS})
def card_submit(
    request: HttpRequest,
    card_number: Form[str],
    photo: File[UploadedFile],
    issuing_chamber: Form[str] = "",
) -> Any:
    """Submit the artisan card (multipart): status becomes `pending`."""
    census = services.verification_submit(
        user=member_of(request), card_number=card_number, issuing_chamber=issuing_chamber, card_photo=photo
    )
    return _card(census)


class PendingOut(Schema):
    user_id: int
    username: str
    display_name: str
    wilaya: str
    card: CardOut


class ReviewIn(Schema):
    approve: bool
    reason: str = Field(default="", max_length=500)


@router.get("/registry/verifications", response={200: list[PendingOut], **ERRORS})
def verifications(request: HttpRequest) -> Any:
    """Cards waiting for the caller's review (empty for someone who reviews nothing)."""
    return [
        {
            "user_id": c.user_id, "username": c.user.username, "display_name": c.user.display_name,
            "wilaya": str(c.user.profile.wilaya or ""), "card": _card(c),
        }
        for c in selectors.verification_queue(moderator=member_of(request))
    ]


@router.post("/registry/verifications/{user_id}", response={200: CardOut, **ERRORS})
def verification_review(request: HttpRequest, user_id: int, body: ReviewIn) -> Any:
    census = services.verification_review(
        moderator=member_of(request), artisan_id=user_id, approve=body.approve, reason=body.reason
    )
    return _card(census)


class ProductOut(Schema):
    id: int
    artisan: str
    title: str
    description: str
    price_dzd: int | None
    price_on_request: bool
    currency: str = "DZD"
    materials: str
    availability: str
    labels: list[str]
    status: str
    photos: list[dict[str, str]]
    url: str


def _product(request: HttpRequest, product: Product) -> dict[str, Any]:
    return {
        "id": product.pk, "artisan": product.artisan.username, "title": product.title,
        "description": product.description, "price_dzd": product.price_dzd,
        "price_on_request": product.price_on_request, "materials": product.materials,
        "availability": product.availability, "labels": product.labels, "status": product.status,
        "photos": [
            {"image": request.build_absolute_uri(p.image.url), "thumbnail": request.build_absolute_uri(p.thumbnail.url)}
            for p in product.photos.all()
        ],
        "url": request.build_absolute_uri(reverse("registry_product", args=[product.pk])),
    }


class ProductIn(Schema):
    title: str = Field(max_length=140)
    description: str = Field(default="", max_length=4000)
    price_dzd: int | None = None
    materials: str = Field(default="", max_length=300)
    availability: str = "in_stock"
    labels: list[str] = []
    status: str = "published"


@router.get("/registry/artisans/{username}/products", response={200: list[ProductOut], **ERRORS}, auth=None)
def storefront_products(request: HttpRequest, username: str, page: int = 1) -> Any:
    store = selectors.storefront(username=username, page=page)
    return [_product(request, p) for p in store.products]


@router.get("/registry/products/{product_id}", response={200: ProductOut, **ERRORS}, auth=None)
def product_get(request: HttpRequest, product_id: int) -> Any:
    return _product(request, selectors.product_public(product_id=product_id, viewer=viewer_of(request)))


@router.post("/registry/products", response={201: ProductOut, **ERRORS})
def product_create(request: HttpRequest, body: ProductIn) -> Any:
    product = services.product_create(user=member_of(request), **body.model_dump())
    return Status(201, _product(request, product))


@router.post("/registry/products/{product_id}/photos", response={201: ProductOut, **ERRORS})
def product_photo(request: HttpRequest, product_id: int, photo: File[UploadedFile]) -> Any:
    """Add a photo (multipart); validated, resized and thumbnailed."""
    services.product_photo_add(user=member_of(request), product_id=product_id, upload=photo)
    return Status(201, _product(request, selectors.product_public(product_id=product_id, viewer=member_of(request))))


class ProductPatch(Schema):
    """Only the fields given change."""

    title: str | None = Field(default=None, max_length=140)
    description: str | None = Field(default=None, max_length=4000)
    price_dzd: int | None = None
    materials: str | None = Field(default=None, max_length=300)
    availability: str | None = None
    labels: list[str] | None = None
    status: str | None = None


@router.patch("/registry/products/{product_id}", response={200: ProductOut, **ERRORS})
def product_update(request: HttpRequest, product_id: int, body: ProductPatch) -> Any:
    """Change one of the user's products (`price_dzd: null` means "price on request")."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("title", "description", "materials", "availability", "labels", "status"):
        if name in changes and changes[name] is None:
            raise HirfaError(ErrorCode.INVALID, _("This field cannot be empty."), field=name)
    product = services.product_update(user=member_of(request), product_id=product_id, **changes)
    return _product(request, product)


@router.delete("/registry/products/{product_id}", response={204: None, **ERRORS})
def product_delete(request: HttpRequest, product_id: int) -> Any:
    """Delete one of the user's products and its photos."""
    services.product_delete(user=member_of(request), product_id=product_id)
    return Status(204, None)


class RoomOut(Schema):
    room_id: int
    url: str


class OrderIn(Schema):
    note: str = Field(default="", max_length=1000)


@router.post("/registry/products/{product_id}/order", response={200: RoomOut, **ERRORS})
def product_order(request: HttpRequest, product_id: int, body: OrderIn) -> Any:
    """Open the direct room with the artisan; the first message carries the product's card."""
    room = services.order_request(user=member_of(request), product_id=product_id, note=body.note)
    return {"room_id": room.pk, "url": reverse("room", args=[room.pk])}


class ReportIn(Schema):
    reason: str
    text: str = Field(default="", max_length=500)


class ReportOut(Schema):
    id: int
    status: str


@router.post("/registry/products/{product_id}/report", response={200: ReportOut, **ERRORS})
def product_report(request: HttpRequest, product_id: int, body: ReportIn) -> Any:
    report = services.product_report(user=member_of(request), product_id=product_id, reason=body.reason, text=body.text)
    return {"id": report.pk, "status": report.status}


class ProductReportOut(Schema):
    id: int
    product_id: int
    product_title: str
    artisan: str
    reason: str
    text: str
    status: str


class ProductReportActionIn(Schema):
    action: Literal["hide", "dismiss"]


def _product_report(report: Any) -> dict[str, Any]:
    return {
        "id": report.pk, "product_id": report.product_id, "product_title": report.product.title,
        "artisan": report.product.artisan.username, "reason": report.reason, "text": report.text,
        "status": report.status,
    }


@router.get("/registry/product-reports", response={200: list[ProductReportOut], **ERRORS})
def product_reports(request: HttpRequest) -> Any:
    """Moderators: open product reports in the wilayas they review (all for admins)."""
    return [_product_report(r) for r in selectors.product_reports_open(moderator=member_of(request))]


@router.post("/registry/product-reports/{report_id}", response={200: ProductReportOut, **ERRORS})
def product_report_resolve(request: HttpRequest, report_id: int, body: ProductReportActionIn) -> Any:
    """Moderators: `hide` the product (every open report of it is closed) or `dismiss`."""
    report = services.product_report_resolve(
        moderator=member_of(request), report_id=report_id, hide=body.action == "hide"
    )
    return _product_report(report)


@router.post("/registry/artisans/{username}/contact", response={200: RoomOut, **ERRORS})
def artisan_contact(request: HttpRequest, username: str) -> Any:
    other = User.objects.filter(username=username, is_active=True).first()
    if other is None:
        raise HirfaError(ErrorCode.NOT_FOUND, "No such artisan.")
    room = services.artisan_contact(user=member_of(request), artisan_id=other.pk)
    return {"room_id": room.pk, "url": reverse("room", args=[room.pk])}


class ExchangeOut(Schema):
    id: int
    kind: str
    material: str
    detail: str
    quantity: str
    unit: str
    wilaya_code: int
    price_dzd: int | None
    barter: bool
    expires_at: datetime
    author: str


class ExchangeIn(Schema):
    kind: str
    material: str
    detail: str = Field(default="", max_length=300)
    quantity: str
    unit: str
    wilaya_id: int
    price_dzd: int | None = None
    barter: bool = False
    expires_at: datetime | None = None


def _post(post: ExchangePost) -> dict[str, Any]:
    return {
        "id": post.pk, "kind": post.kind, "material": post.material, "detail": post.detail,
        "quantity": str(post.quantity), "unit": post.unit, "wilaya_code": post.wilaya.code,
        "price_dzd": post.price_dzd, "barter": post.barter, "expires_at": post.expires_at,
        "author": post.author.username,
    }


@router.get("/registry/exchange", response={200: list[ExchangeOut], **ERRORS})
def exchange_list(
    request: HttpRequest, kind: str | None = None, material: str | None = None,
    wilaya: int | None = None, page: int = 1,
) -> Any:
    rows, _more = selectors.exchange_board(kind=kind, material=material, wilaya_id=wilaya, page=page)
    return [_post(p) for p in rows]


@router.post("/registry/exchange", response={201: ExchangeOut, **ERRORS})
def exchange_create(request: HttpRequest, body: ExchangeIn) -> Any:
    """Publish an offer or a need; matching artisans nearby get an `exchange` notification."""
    post = services.exchange_post(user=member_of(request), **body.model_dump())
    return Status(201, _post(post))


class CountRow(Schema):
    code: str
    name: str
    total: int
    verified: int


class StatsOut(Schema):
    total: int
    verified: int
    by_wilaya: list[CountRow]
    by_trade: list[CountRow]
    by_month: list[tuple[str, int]]


@router.post("/registry/exchange/{post_id}/close", response={200: ExchangeOut, **ERRORS})
def exchange_close(request: HttpRequest, post_id: int) -> Any:
    """Close one of the user's own offers or needs."""
    return _post(services.exchange_close(user=member_of(request), post_id=post_id))


@router.get("/registry/census/stats", response={200: StatsOut, **ERRORS}, auth=None)
def census_stats(request: HttpRequest) -> Any:
    """Aggregated counts only: no names, no card data."""
    stats = selectors.census_stats()
    rows = lambda items: [{"code": r.code, "name": r.name, "total": r.total, "verified": r.verified} for r in items]
    return {
        "total": stats.total, "verified": stats.verified,
        "by_wilaya": rows(stats.by_wilaya), "by_trade": rows(stats.by_trade),
        "by_month": [(m.strftime("%Y-%m"), n) for m, n in stats.by_month],
    }


@router.get("/registry/me/export", response={200: dict[str, Any], **ERRORS})
def export_me(request: HttpRequest) -> Any:
    """Everything the hub holds that is the caller's (see `hub.personal_data.account_export`)."""
    return personal_data.account_export(user=member_of(request))


class DeleteIn(Schema):
    password: str


@router.post("/registry/me/delete", response={204: None, **ERRORS})
def delete_me(request: HttpRequest, body: DeleteIn) -> Any:
    """Delete the caller's account for good (messages stay, without author)."""
    personal_data.account_delete(user=member_of(request), password=body.password)
    return Status(204, None)
