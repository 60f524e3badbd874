"""Pages of the registry. Views only translate: read the request, call one service or
selector, render. A refused action shows the service's message (translated when it
was raised) and changes nothing; what one may not see is a 404.

Storefronts, product pages, the directory and the public census are readable
without an account (links shared on social networks must show their preview);
everything that writes, and card data, needs one.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hub import personal_data
from hub.auth import member_of, viewer_of
from hub.csv_export import SafeCsvWriter
from hub.errors import ErrorCode, HirfaError, http_status
from hub.models import ArtisanProfile, User, Wilaya
from hub.protected_files import protected_file_response
from hub.replica import stale_reads_ok
from hub.throttle import client_ip, throttle_hit, too_many
from registry import search, selectors, services
from registry.authenticity import qr_svg
from registry.models import (
    Availability,
    Census,
    ContactChannel,
    ExchangeKind,
    Material,
    ProductReport,
    ProductStatus,
    ProvenanceLabel,
    Unit,
    VerificationStatus,
    WorkshopKind,
)
from registry.search import sorted_by_name


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _refused(request: HttpRequest, error: HirfaError) -> None:
    """The refusal as a message; when it names a field, the page marks and focuses that
    field (frontend/_flash.html, pwa.js)."""
    field = error.details.get("field")
    messages.error(request, error.message, extra_tags=f"field:{field}" if isinstance(field, str) else "")


def _not_found(error: HirfaError) -> Http404:
    return Http404(error.message)


# --- census and verification -------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def census_me(request: HttpRequest) -> HttpResponse:
    """The artisan's census record (public part) and his card's verification."""
    user = member_of(request)
    if request.method == "POST":
        action = request.POST.get("action", "census")
        try:
            if action == "card":
                upload = request.FILES.get("card_photo")
                if upload is None:
                    raise HirfaError(ErrorCode.EMPTY, _("Attach a photo of your card."), field="card_photo")
                services.verification_submit(
                    user=user,
                    card_number=request.POST.get("card_number", ""),
                    issuing_chamber=request.POST.get("issuing_chamber", ""),
                    card_photo=upload,
                )
                messages.success(request, _("Your card is sent; a moderator of your wilaya will review it."))
            else:
                services.census_update(
                    user=user,
                    commune=request.POST.get("commune", ""),
                    workshop_kind=request.POST.get("workshop_kind", WorkshopKind.INDIVIDUAL),
                    years_of_practice=_int(request.POST.get("years_of_practice")),
                    phone=request.POST.get("phone", ""),
                    whatsapp=request.POST.get("whatsapp", ""),
                    contact_email=request.POST.get("contact_email", ""),
                    public_channels=request.POST.getlist("public_channels"),
                )
                services.storefront_update(
                    user=user, story=request.POST.get("story", ""), cover=request.FILES.get("cover"),
                    cover_remove=request.POST.get("cover_remove") == "on",
                )
                messages.success(request, _("Your census record is saved."))
        except HirfaError as error:
            _refused(request, error)
        else:
            return redirect("registry_me")
    census = services.census_ensure(user=user)
    return render(
        request,
        "registry/census_me.html",
        {
            "census": census,
            "workshop_kinds": WorkshopKind.choices,
            "channels": ContactChannel.choices,
            "statuses": VerificationStatus,
            "form": request.POST if request.method == "POST" else None,
        },
    )


@login_required
@require_GET
def card_photo(request: HttpRequest, user_id: int) -> HttpResponse | FileResponse:
    """The photo of an artisan's card, for him and the moderators who review him only."""
    census = Census.objects.filter(user_id=user_id).first()
    if census is None or not census.card_photo or not selectors.card_visible(viewer=member_of(request), census=census):
        raise Http404(_("Not found."))
    return protected_file_response(
        census.card_photo,
        internal_prefix=settings.HIRFA_ACCEL_PRIVATE_PREFIX,
        content_type=mimetypes.guess_type(census.card_photo.name or "")[0] or "application/octet-stream",
        cache_control="private, no-store",
    )


@login_required
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    """The moderators' queue: cards to review and reported products of their wilayas."""
    user = member_of(request)
    if not selectors.user_reviews_any(user=user):
        raise Http404(_("Not found."))
    return render(
        request,
        "registry/review.html",
        {
            "cards": selectors.verification_queue(moderator=user),
            "reports": selectors.product_reports_open(moderator=user),
        },
    )


@login_required
@require_POST
def review_card(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        services.verification_review(
            moderator=member_of(request), artisan_id=user_id,
            approve=request.POST.get("decision") == "approve", reason=request.POST.get("reason", ""),
        )
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
    else:
        messages.success(request, _("Review saved."))
    return redirect("registry_review")


@login_required
@require_POST
def review_report(request: HttpRequest, report_id: int) -> HttpResponse:
    try:
        services.product_report_resolve(
            moderator=member_of(request), report_id=report_id, hide=request.POST.get("action") == "hide"
        )
    except HirfaError as error:
        raise _not_found(error) from error
    messages.success(request, _("Report handled."))
    return redirect("registry_review")


# --- directory ---------------------------------------------------------------------------


def _search_args(params: Any) -> dict[str, Any]:
    verified = params.get("verified")
    has_products = params.get("products")
    return {
        "query": params.get("q", "")[: selectors.QUERY_MAX_CHARS],
        "trade_id": _int(params.get("trade")),
        "wilaya_id": _int(params.get("wilaya")),
        "language": params.get("language") or None,
        "verified": True if verified == "1" else False if verified == "0" else None,
        "has_products": True if has_products == "1" else None,
        "page": _int(params.get("page")) or 1,
    }


def _with(query: Any, **changes: Any) -> str:
    copy = query.copy()
    for key, value in changes.items():
        copy.pop(key, None)
        if value is not None:
            copy[key] = str(value)
    return str(copy.urlencode())


def _options(items: Iterable[search.Named], selected: int | None) -> SafeString:
    """The `<option>`s of a filter (trades, wilayas), built here rather than by a template
    loop: a hundred of them on every search page."""
    tifinagh = get_language() == "kab"
    return format_html_join(
        "",
        "<option value=\"{}\"{}>{}{}</option>",
        (
            (item.pk, mark_safe(" selected") if item.pk == selected else "", item.label,
             f" · {item.tifinagh}" if tifinagh and item.tifinagh else "")
            for item in items
        ),
    )


@require_GET
@stale_reads_ok
def directory(request: HttpRequest) -> HttpResponse:
    """One search over artisans and their products, results first, then facets and filters."""
    args = _search_args(request.GET)
    result = search.artisan_search(**args, viewer=viewer_of(request))
    trades, wilayas = search.reference_keys()
    query = request.GET.copy()
    query.pop("page", None)
    facets = result.facets
    return render(
        request,
        "registry/directory.html",
        {
            "result": result,
            "args": args,
            "trade_options": _options(sorted_by_name(trades), args["trade_id"]),
            "wilaya_options": _options([w for w in wilayas if w.current], args["wilaya_id"]),
            "languages": ArtisanProfile.Language.choices,
            "base_query": query.urlencode(),
            "trade_facets": [(f, _with(query, trade=f.key)) for f in facets.trades] if facets else [],
            "wilaya_facets": [(f, _with(query, wilaya=f.key)) for f in facets.wilayas] if facets else [],
            "verified_link": _with(query, verified=1),
            "products_link": _with(query, products=1),
            "filtered": any(args[k] is not None for k in ("trade_id", "wilaya_id", "language", "verified", "has_products")),
            "clear_link": _with(query, trade=None, wilaya=None, language=None, verified=None, products=None),
        },
    )


@require_GET
@stale_reads_ok
def directory_suggest(request: HttpRequest) -> JsonResponse:
    """Suggestions as one types (public): trades, wilayas and artisans the words may mean."""
    found = search.search_suggestions(query=request.GET.get("q", ""))
    items = []
    for s in found:
        if s.kind == "artisan":
            url = reverse("registry_storefront", args=[s.value])
        else:
            url = reverse("registry_directory") + "?" + urlencode({s.kind: s.value})
        items.append({"kind": s.kind, "label": s.label, "url": url})
    response = JsonResponse({"items": items})
    response["Cache-Control"] = "public, max-age=60"
    return response


@login_required
@require_POST
def contact(request: HttpRequest, username: str) -> HttpResponse:
    """Open the direct room with an artisan and go there."""
    other = User.objects.filter(username=username, is_active=True).first()
    if other is None:
        raise Http404(_("No such artisan."))
    try:
        room = services.artisan_contact(user=member_of(request), artisan_id=other.pk)
    except HirfaError as error:
        _refused(request, error)
        return redirect("registry_storefront", username=username)
    return redirect("room", room_id=room.pk)


# --- storefront and products -------------------------------------------------------------


@require_GET
@stale_reads_ok
def storefront(request: HttpRequest, username: str) -> HttpResponse:
    """An artisan's public page and his products; his own drafts when he looks himself."""
    own = request.user.is_authenticated and request.user.get_username() == username
    try:
        store = selectors.storefront(
            username=username, page=_int(request.GET.get("page")) or 1, include_unpublished=own
        )
    except HirfaError as error:
        raise _not_found(error) from error
    first_photo = next((p.photos.all()[0] for p in store.products if p.photos.all()), None)
    # Link previews show the workshop's cover, else its first piece.
    preview = store.census.cover if store.census and store.census.cover else first_photo.image if first_photo else None
    return render(
        request,
        "registry/storefront.html",
        {
            "store": store,
            "contacts": selectors.contact_links(store.census),
            "own": own,
            "following": selectors.artisan_following(artisan_id=store.artisan.user_id, viewer=viewer_of(request)),
            "og_image": request.build_absolute_uri(preview.url) if preview else "",
            "canonical": request.build_absolute_uri(reverse("registry_storefront", args=[username])),
        },
    )


@require_GET
@stale_reads_ok
def product_page(request: HttpRequest, product_id: int) -> HttpResponse:
    """A product's page with its Open Graph tags (photo, price) for shared links."""
    viewer = viewer_of(request)
    try:
        product = selectors.product_public(product_id=product_id, viewer=viewer)
    except HirfaError as error:
        raise _not_found(error) from error
    photos = list(product.photos.all())
    labels = dict(ProvenanceLabel.choices)
    census = selectors.census_of(user=product.artisan)
    profile = getattr(product.artisan, "profile", None)
    canonical = request.build_absolute_uri(reverse("registry_product", args=[product.pk]))
    return render(
        request,
        "registry/product.html",
        {
            "product": product,
            "photos": photos,
            "verified": census is not None and census.is_verified,
            "wilaya_label": search.wilaya_label(profile.wilaya) if profile and profile.wilaya else "",
            "contacts": selectors.contact_links(census),
            "whatsapp_text": urlencode({"text": f"{product.title} {canonical}"}),
            "enquiry_key": secrets.token_hex(8),
            "labels": [labels.get(code, code) for code in product.labels],
            "own": viewer is not None and viewer.pk == product.artisan_id,
            "following": selectors.product_following(product_id=product.pk, viewer=viewer),
            "og_image": request.build_absolute_uri(photos[0].image.url) if photos else "",
            "canonical": canonical,
            "report_reasons": ProductReport.Reason.choices,
        },
    )


def _product_fields(request: HttpRequest) -> dict[str, Any]:
    price = request.POST.get("price_dzd", "").strip()
    on_request = request.POST.get("price_on_request") == "1" or not price
    price_value = None
    if not on_request:
        price_value = _int(price)
        if price_value is None:
            raise HirfaError(ErrorCode.INVALID, _("A price is a positive amount of dinars."), field="price_dzd")
    return {
        "title": request.POST.get("title", ""),
        "description": request.POST.get("description", ""),
        "price_dzd": price_value,
        "materials": request.POST.get("materials", ""),
        "availability": request.POST.get("availability", Availability.IN_STOCK),
        "labels": request.POST.getlist("labels"),
        "status": request.POST.get("status", ProductStatus.PUBLISHED),
        "making_days": _int(request.POST.get("making_days")),
    }


def _photo_arrangement(request: HttpRequest) -> dict[str, Any]:
    """The edit form's photo rows: `position_<id>`, `alt_<id>` and `remove_<id>` fields."""
    positions: dict[int, int] = {}
    alt_texts: dict[int, str] = {}
    remove: list[int] = []
    for key in request.POST:
        value = request.POST.get(key, "")
        name, _sep, raw_id = key.rpartition("_")
        photo_id = _int(raw_id)
        if photo_id is None:
            continue
        if name == "position":
            positions[photo_id] = _int(value) or 0
        elif name == "alt":
            alt_texts[photo_id] = value
        elif name == "remove" and value == "1":
            remove.append(photo_id)
    order = sorted(positions, key=lambda pk: (positions[pk], pk))
    return {"order": order, "alt_texts": alt_texts, "remove": remove}


def _product_form(request: HttpRequest, product: Any = None, status: int = 200) -> HttpResponse:
    return render(
        request,
        "registry/product_form.html",
        {
            "product": product,
            "form": request.POST if request.method == "POST" else None,
            "availabilities": Availability.choices,
            "label_choices": ProvenanceLabel.choices,
            "statuses": [(s, lbl) for s, lbl in ProductStatus.choices if s != ProductStatus.HIDDEN],
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def product_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            product = services.product_create(
                user=member_of(request), photos=request.FILES.getlist("photos"), **_product_fields(request)
            )
        except HirfaError as error:
            _refused(request, error)
            return _product_form(request, status=400)
        return redirect("registry_product", product_id=product.pk)
    return _product_form(request)


@login_required
@require_http_methods(["GET", "POST"])
def product_edit(request: HttpRequest, product_id: int) -> HttpResponse:
    user = member_of(request)
    try:
        product = selectors.product_public(product_id=product_id, viewer=user)
        if product.artisan_id != user.pk:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such product."))
    except HirfaError as error:
        raise _not_found(error) from error
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                services.product_delete(user=user, product_id=product.pk)
                messages.success(request, _("Product deleted."))
                return redirect("registry_storefront", username=user.username)
            services.product_update(user=user, product_id=product.pk, **_product_fields(request))
            services.product_photos_arrange(user=user, product_id=product.pk, **_photo_arrangement(request))
            for upload in request.FILES.getlist("photos"):
                services.product_photo_add(user=user, product_id=product.pk, upload=upload)
        except HirfaError as error:
            _refused(request, error)
            return _product_form(request, product, status=400)
        return redirect("registry_product", product_id=product.pk)
    return _product_form(request, product)


@login_required
@require_POST
def product_order(request: HttpRequest, product_id: int) -> HttpResponse:
    """An order request: the direct room with the artisan, the product's link posted first."""
    try:
        room = services.order_request(
            user=member_of(request), product_id=product_id, note=request.POST.get("note", "")
        )
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
        return redirect("registry_product", product_id=product_id)
    return redirect("room", room_id=room.pk)


def _wants_json(request: HttpRequest) -> bool:
    """The page's script asks (registry/static/registry/toggle.js); a plain form does not."""
    return request.headers.get("Accept", "").startswith("application/json")


def _toggle_answer(following: selectors.Following, label: str, count_text: str) -> JsonResponse:
    return JsonResponse({"mine": following.mine, "count": following.count, "label": label, "count_text": count_text})


@login_required
@require_POST
def product_favourite(request: HttpRequest, product_id: int) -> HttpResponse:
    """Keep a piece among one's favourites (`keep=0`: let it go); back to where one was, or,
    asked by the page's script, the new state as JSON (a refusal as a typed error)."""
    keep = request.POST.get("keep", "1") != "0"
    member = member_of(request)
    try:
        services.product_favourite(user=member, product_id=product_id, keep=keep)
    except HirfaError as error:
        if _wants_json(request):
            return JsonResponse(error.as_dict(), status=http_status(error.code))
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
    if _wants_json(request):
        now = selectors.product_following(product_id=product_id, viewer=member)
        return _toggle_answer(
            now, _("In my favourites") if now.mine else _("Add to favourites"),
            ngettext("Kept by %(n)s member", "Kept by %(n)s members", now.count) % {"n": now.count},
        )
    return redirect(_back(request, reverse("registry_product", args=[product_id])))


@login_required
@require_POST
def artisan_follow(request: HttpRequest, username: str) -> HttpResponse:
    """Follow an artisan (`follow=0`: stop); back to where one was, or, asked by the page's
    script, the new state as JSON (a refusal as a typed error)."""
    artisan = User.objects.filter(username=username, is_active=True).first()
    if artisan is None:
        error = HirfaError(ErrorCode.NOT_FOUND, _("No such artisan."))
        if _wants_json(request):
            return JsonResponse(error.as_dict(), status=http_status(error.code))
        raise Http404(error.message)
    member = member_of(request)
    try:
        services.artisan_follow(user=member, artisan_id=artisan.pk, follow=request.POST.get("follow", "1") != "0")
    except HirfaError as error:
        if _wants_json(request):
            return JsonResponse(error.as_dict(), status=http_status(error.code))
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
    if _wants_json(request):
        now = selectors.artisan_following(artisan_id=artisan.pk, viewer=member)
        return _toggle_answer(
            now, _("Following") if now.mine else _("Follow"),
            ngettext("%(n)s follower", "%(n)s followers", now.count) % {"n": now.count},
        )
    return redirect(_back(request, reverse("registry_storefront", args=[username])))


def _back(request: HttpRequest, default: str) -> str:
    """The page a form came from (`next`, a path on this site only), else `default`."""
    target = request.POST.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@login_required
@require_GET
def favourites(request: HttpRequest) -> HttpResponse:
    """The pieces one keeps and the artisans one follows."""
    return render(request, "registry/favourites.html", {"mine": selectors.favourites_of(user=member_of(request))})


@login_required
@require_POST
def product_report(request: HttpRequest, product_id: int) -> HttpResponse:
    try:
        services.product_report(
            user=member_of(request), product_id=product_id,
            reason=request.POST.get("reason", ""), text=request.POST.get("text", ""),
        )
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
    else:
        messages.success(request, _("Thank you: the moderators will look at it."))
    return redirect("registry_product", product_id=product_id)


# --- authenticity ------------------------------------------------------------------------


@login_required
@require_GET
def product_tag(request: HttpRequest, product_id: int) -> HttpResponse:
    """A verified artisan's printable authenticity tag for one of his pieces: QR code and short link."""
    user = member_of(request)
    try:
        code = services.product_authenticity_code(user=user, product_id=product_id)
        product = selectors.product_public(product_id=product_id, viewer=user)
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
        return redirect("registry_product", product_id=product_id)
    url = request.build_absolute_uri(reverse("registry_authenticity", args=[code]))
    return render(
        request, "registry/tag.html",
        {"product": product, "code": code, "url": url, "qr": qr_svg(url, title=product.title)},
    )


@require_GET
@stale_reads_ok
def authenticity(request: HttpRequest, code: str) -> HttpResponse:
    """What scanning a tag shows (public): the piece, its artisan, his card's status today."""
    try:
        check = selectors.authenticity_check(code=code)
    except HirfaError as error:
        raise _not_found(error) from error
    return render(request, "registry/authenticity.html", {"check": check, "code": code.upper()})


COUNTERFEIT_PER_ADDRESS = 3


@require_POST
def authenticity_report(request: HttpRequest, code: str) -> HttpResponse:
    """Report a counterfeit from a tag's page, with or without an account (throttled per address)."""
    if throttle_hit("counterfeit", client_ip(request) or "unknown", limit=COUNTERFEIT_PER_ADDRESS,
                    window=ENQUIRY_WINDOW):
        return too_many(request, _("Too many reports sent from here; try again in an hour."))
    try:
        services.counterfeit_report(code=code, text=request.POST.get("text", ""), reporter=viewer_of(request))
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
    else:
        messages.success(request, _("Thank you: the moderators will look at it."))
    return redirect("registry_authenticity", code=code)


# --- exchange ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def exchange(request: HttpRequest) -> HttpResponse:
    """The raw-materials board: browse offers and needs, publish one."""
    user = member_of(request)
    if request.method == "POST":
        try:
            days = _int(request.POST.get("days")) or 30
            services.exchange_post(
                user=user,
                kind=request.POST.get("kind", ""),
                material=request.POST.get("material", ""),
                detail=request.POST.get("detail", ""),
                quantity=request.POST.get("quantity", "") or "0",
                unit=request.POST.get("unit", ""),
                wilaya_id=_int(request.POST.get("wilaya")) or 0,
                price_dzd=_int(request.POST.get("price_dzd")),
                barter=request.POST.get("barter") == "1",
                expires_at=timezone.now() + timedelta(days=days),
            )
        except HirfaError as error:
            _refused(request, error)
        else:
            messages.success(request, _("Published. Matching artisans nearby are told."))
            return redirect("registry_exchange")
    kind = request.GET.get("kind") or None
    material = request.GET.get("material") or None
    wilaya_id = _int(request.GET.get("wilaya"))
    page = _int(request.GET.get("page")) or 1
    rows, has_next = selectors.exchange_board(kind=kind, material=material, wilaya_id=wilaya_id, page=page)
    profile = getattr(user, "profile", None)
    return render(
        request,
        "registry/exchange.html",
        {
            "rows": rows, "has_next": has_next, "page": page,
            "kind": kind, "material": material, "wilaya_id": wilaya_id,
            "kinds": ExchangeKind.choices, "materials": Material.choices, "units": Unit.choices,
            "wilayas": Wilaya.objects.filter(parent__isnull=True).order_by("code"),
            "my_wilaya": profile.wilaya_id if profile else None,
        },
    )


@login_required
@require_POST
def exchange_close(request: HttpRequest, post_id: int) -> HttpResponse:
    try:
        services.exchange_close(user=member_of(request), post_id=post_id)
    except HirfaError as error:
        raise _not_found(error) from error
    return redirect("registry_exchange")


@login_required
@require_POST
def exchange_reply(request: HttpRequest, post_id: int) -> HttpResponse:
    """Reply to a post: the direct room with its author, the post's card as the first message."""
    try:
        room = services.exchange_reply(user=member_of(request), post_id=post_id)
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
        return redirect("registry_exchange")
    return redirect("room", room_id=room.pk)


ENQUIRY_PER_ADDRESS = 5
ENQUIRY_PER_PRODUCT = 30
ENQUIRY_WINDOW = timedelta(hours=1)


@require_POST
def product_enquiry(request: HttpRequest, product_id: int) -> HttpResponse:
    """A buyer without an account asks about a product (name, e-mail or phone, question).

    Throttled per address and per product; a robot that fills the hidden field is
    thanked like anyone and nothing is stored.
    """
    address = client_ip(request) or "unknown"
    if throttle_hit("enquiry", address, limit=ENQUIRY_PER_ADDRESS, window=ENQUIRY_WINDOW) or throttle_hit(
        "enquiry-product", str(product_id), limit=ENQUIRY_PER_PRODUCT, window=ENQUIRY_WINDOW
    ):
        return too_many(request, _("Too many questions sent from here; try again in an hour."))
    try:
        enquiry = services.enquiry_send(
            product_id=product_id, name=request.POST.get("name", ""), contact=request.POST.get("contact", ""),
            text=request.POST.get("text", ""), honeypot=request.POST.get("website", ""),
            client_key=request.POST.get("key", ""), language=request.LANGUAGE_CODE,
            site=f"{request.scheme}://{request.get_host()}",
        )
    except HirfaError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise _not_found(error) from error
        _refused(request, error)
        return redirect(reverse("registry_product", args=[product_id]) + "#enquiry")
    if enquiry is None:  # a robot's: thanked like anyone
        messages.success(request, _("Sent. The artisan will answer you by e-mail or phone."))
        return redirect("registry_product", product_id=product_id)
    messages.success(request, _("Sent. Keep this page: the artisan's answers appear here."))
    return redirect(selectors.enquiry_link(enquiry))


ENQUIRY_ANSWERS_PER_ADDRESS = 30


@require_http_methods(["GET", "POST"])
def enquiry_page(request: HttpRequest, link: str) -> HttpResponse:
    """A buyer's conversation with an artisan, at the signed link he was sent to (and
    e-mailed): the product, what each wrote, and a form to write again. No account."""
    enquiry = selectors.enquiry_by_token(token=link)
    if enquiry is None:
        raise Http404(_("No such conversation."))
    if request.method == "POST":
        address = client_ip(request) or "unknown"
        if throttle_hit("enquiry-answer", address, limit=ENQUIRY_ANSWERS_PER_ADDRESS, window=ENQUIRY_WINDOW):
            return too_many(request, _("Too many questions sent from here; try again in an hour."))
        try:
            services.enquiry_answer(enquiry=enquiry, text=request.POST.get("text", ""),
                                    client_key=request.POST.get("key", ""))
        except HirfaError as error:
            _refused(request, error)
        return redirect(request.path + "#answer")
    product = enquiry.product
    artisan = enquiry.room.created_by
    response = render(
        request,
        "registry/enquiry.html",
        {
            "enquiry": enquiry,
            "product": product,
            "photo": product.photos.first() if product is not None else None,
            "artisan": artisan,
            "lines": selectors.enquiry_conversation(enquiry=enquiry),
            "key": secrets.token_hex(8),
        },
    )
    # A private link: neither kept by shared caches nor sent on to other sites.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- census figures and map --------------------------------------------------------------


@require_GET
@stale_reads_ok
def census_public(request: HttpRequest) -> HttpResponse:
    """The aggregated census: counts and the map; no names, no card data."""
    stats = selectors.census_stats()
    return render(
        request,
        "registry/census.html",
        {"stats": stats, "census_map": selectors.census_map_page(), "dashboard": False,
         "max_month": max((n for _m, n in stats.by_month), default=0)},
    )


@login_required
@require_GET
def census_dashboard(request: HttpRequest) -> HttpResponse:
    """The moderators' dashboard: the public figures plus the queue's size and their artisans."""
    user = member_of(request)
    if not selectors.user_reviews_any(user=user):
        raise Http404(_("Not found."))
    stats = selectors.census_stats()
    return render(
        request,
        "registry/census.html",
        {
            "stats": stats, "census_map": selectors.census_map_page(), "dashboard": True,
            "pending": len(selectors.verification_queue(moderator=user)),
            "max_month": max((n for _m, n in stats.by_month), default=0),
        },
    )


@require_GET
@cache_control(max_age=300)
@stale_reads_ok
def census_map_svg(request: HttpRequest) -> HttpResponse:
    return HttpResponse(selectors.census_map_markup(), content_type="image/svg+xml; charset=utf-8")


@require_GET
@stale_reads_ok
def census_csv(request: HttpRequest) -> HttpResponse:
    """The aggregated counts as CSV: one row per wilaya and per trade."""
    stats = selectors.census_stats()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="hirfa-census.csv"'
    writer = SafeCsvWriter(response)
    writer.writerow(["dimension", "code", "name", "artisans", "verified"])
    for row in stats.by_wilaya:
        writer.writerow(["wilaya", row.code, row.name, row.total, row.verified])
    for row in stats.by_trade:
        writer.writerow(["trade", row.code, row.name, row.total, row.verified])
    for month, n in stats.by_month:
        writer.writerow(["month", month.strftime("%Y-%m"), "", n, ""])
    return response


# --- privacy -----------------------------------------------------------------------------


@login_required
@require_GET
def export_my_data(request: HttpRequest) -> HttpResponse:
    data = personal_data.account_export(user=member_of(request))
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Content-Disposition"] = f'attachment; filename="hirfa-{request.user.get_username()}.json"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_my_account(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            personal_data.account_delete(user=member_of(request), password=request.POST.get("password", ""))
        except HirfaError as error:
            _refused(request, error)
        else:
            logout(request)
            messages.success(request, _("Your account is deleted."))
            return redirect("home")
    return render(request, "registry/delete.html", {})

