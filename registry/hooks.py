"""What the registry plugs into the foundation, registered by `RegistryConfig.ready()`:
its notification kind and its part of a member's data (census, products, exchange)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from hub import notifications, personal_data
from hub.models import User

EXCHANGE = "exchange"
ENQUIRY = "enquiry"
NEW_PIECE = "new_piece"


def _export(user: User) -> dict[str, Any]:
    from registry.models import ExchangePost, Favourite, Follow, Product
    from registry.selectors import census_of

    census = census_of(user=user)
    return {
        # Card data included: it is his.
        "census": None
        if census is None
        else {
            "commune": census.commune,
            "workshop_kind": census.workshop_kind,
            "years_of_practice": census.years_of_practice,
            "phone": census.phone,
            "whatsapp": census.whatsapp,
            "contact_email": census.contact_email,
            "public_channels": census.public_channels,
            "story": census.story,
            "card_number": census.card_number,
            "issuing_chamber": census.issuing_chamber,
            "card_photo": census.card_photo.name if census.card_photo else "",
            "status": census.status,
            "rejection_reason": census.rejection_reason,
            "submitted_at": census.submitted_at,
            "reviewed_at": census.reviewed_at,
        },
        "products": [
            {
                "id": product.pk,
                "title": product.title,
                "description": product.description,
                "price_dzd": product.price_dzd,
                "materials": product.materials,
                "availability": product.availability,
                "labels": product.labels,
                "making_days": product.making_days,
                "auth_code": product.auth_code,
                "status": product.status,
                "created_at": product.created_at,
                "photos": [{"file": p.image.name, "alt_text": p.alt_text} for p in product.photos.all()],
            }
            for product in Product.objects.filter(artisan=user).prefetch_related("photos").order_by("id")
        ],
        "exchange_posts": [
            {
                "id": post.pk,
                "kind": post.kind,
                "material": post.material,
                "detail": post.detail,
                "quantity": str(post.quantity),
                "unit": post.unit,
                "wilaya": post.wilaya.code,
                "price_dzd": post.price_dzd,
                "barter": post.barter,
                "expires_at": post.expires_at,
                "closed": post.closed,
                "created_at": post.created_at,
            }
            for post in ExchangePost.objects.filter(author=user).select_related("wilaya").order_by("id")
        ],
        "favourites": [
            {"product": fav.product_id, "created_at": fav.created_at}
            for fav in Favourite.objects.filter(user=user).order_by("id")
        ],
        "following": [
            {"artisan": follow.artisan.username, "created_at": follow.created_at}
            for follow in Follow.objects.filter(follower=user).select_related("artisan").order_by("id")
        ],
    }


def _files(user: User) -> list[personal_data.StoredFile]:
    from registry.models import Census, ProductPhoto

    files: list[personal_data.StoredFile] = []
    census = Census.objects.filter(user=user).first()
    if census is not None and census.card_photo:
        files.append((census.card_photo.storage, census.card_photo.name))
    if census is not None and census.cover:
        files.append((census.cover.storage, census.cover.name))
    for photo in ProductPhoto.objects.filter(product__artisan=user):
        files += [(photo.image.storage, photo.image.name), (photo.thumbnail.storage, photo.thumbnail.name)]
    return files


def _erase(user: User) -> None:
    from registry.models import ProductReport

    # His reports about others' products go with him (the field would only be nulled).
    ProductReport.objects.filter(reporter=user).delete()


def _signup_map() -> str:
    from registry.selectors import census_map_markup

    return census_map_markup(legend=False)


def register() -> None:
    from hub.views import signup_map_register

    signup_map_register(_signup_map)
    notifications.kind_register(EXCHANGE, _("exchange"))
    notifications.kind_register(ENQUIRY, _("enquiry about a product"))
    notifications.kind_register(NEW_PIECE, _("new piece by an artisan you follow"))
    personal_data.part_register(
        personal_data.PersonalDataPart(
            app="registry",
            export=_export,
            files=_files,
            erase=_erase,
            exported=(
                "registry.Census.user", "registry.Product.artisan", "registry.ExchangePost.author",
                "registry.Favourite.user", "registry.Follow.follower",
            ),
            left_out={
                "registry.Follow.artisan": "who follows him is his followers' data (he sees their count)",
                "registry.Census.reviewed_by": "a moderator's act on someone's census",
                "registry.ProductReport.reporter": "a report about someone else's product; removed with him",
                "registry.ProductReport.handled_by": "a moderator's act",
            },
        )
    )
