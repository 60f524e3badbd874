"""The registry's services and selectors, with no transport: verification and who
sees card data, products and reports, order requests, the exchange and its matching."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from hub import personal_data
from hub.errors import ErrorCode, HirfaError
from hub.models import Notification
from registry import search, selectors, services
from registry.models import Census, ProductReport, ProductStatus, VerificationStatus
from rooms.models import Message, Room
from tests.factories import artisan
from tests.registry.conftest import jpeg, png_claiming, wilaya


def submit(user, number="13/0421-B"):
    return services.verification_submit(
        user=user, card_number=number, issuing_chamber="CAM Tlemcen", card_photo=jpeg()
    )


# --- verification ------------------------------------------------------------------------


def test_a_submitted_card_is_pending_with_a_reencoded_photo(amina):
    census = submit(amina)
    assert census.status == VerificationStatus.PENDING
    assert census.card_number == "13/0421-B"
    assert census.card_photo.name.endswith(".jpg")
    assert census.submitted_at is not None


def test_the_card_photo_is_stored_outside_the_public_media_root(amina, settings):
    census = submit(amina)
    stored = Path(census.card_photo.path).resolve()
    assert stored.is_file()
    assert stored.is_relative_to(Path(settings.PRIVATE_MEDIA_ROOT).resolve())
    assert not stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    stored.unlink()


def test_the_wilayas_moderator_approves_and_the_artisan_is_told(amina, karim):
    submit(amina)
    assert [c.user for c in selectors.verification_queue(moderator=karim)] == [amina]
    census = services.verification_review(moderator=karim, artisan_id=amina.pk, approve=True)
    assert census.is_verified and census.reviewed_by == karim
    note = Notification.objects.get(user=amina)
    assert note.data["event"] == "verification" and note.data["status"] == "verified"
    assert selectors.verification_queue(moderator=karim) == []


def test_a_rejection_needs_a_reason_and_keeps_it(amina, karim):
    submit(amina)
    with pytest.raises(HirfaError) as info:
        services.verification_review(moderator=karim, artisan_id=amina.pk, approve=False, reason="  ")
    assert info.value.code == ErrorCode.EMPTY
    census = services.verification_review(
        moderator=karim, artisan_id=amina.pk, approve=False, reason="Photo illisible"
    )
    assert census.status == VerificationStatus.REJECTED
    assert census.rejection_reason == "Photo illisible"


def test_a_moderator_of_another_wilaya_cannot_review_nor_see_the_queue(amina, omar, yacine):
    submit(amina)
    assert selectors.verification_queue(moderator=omar) == []
    for who in (omar, yacine):
        with pytest.raises(HirfaError) as info:
            services.verification_review(moderator=who, artisan_id=amina.pk, approve=True)
        assert info.value.code == ErrorCode.NOT_FOUND
    assert Census.objects.get(user=amina).status == VerificationStatus.PENDING


def test_the_admin_reviews_everywhere(amina, leila):
    submit(amina)
    assert len(selectors.verification_queue(moderator=leila)) == 1
    services.verification_review(moderator=leila, artisan_id=amina.pk, approve=True)


def test_only_pending_cards_are_reviewed(amina, karim):
    services.census_ensure(user=amina)
    with pytest.raises(HirfaError) as info:
        services.verification_review(moderator=karim, artisan_id=amina.pk, approve=True)
    assert info.value.code == ErrorCode.CONFLICT


def test_card_data_is_visible_to_the_artisan_his_moderators_and_admins_only(
    amina, karim, omar, yacine, leila
):
    census = submit(amina)
    seen = {u.username: selectors.card_visible(viewer=u, census=census) for u in (amina, karim, omar, yacine, leila)}
    assert seen == {"amina": True, "karim": True, "omar": False, "yacine": False, "leila": True}
    assert selectors.card_visible(viewer=None, census=census) is False


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"%PDF-1.4 not an image", ErrorCode.INVALID),
        (png_claiming(100_000, 100_000), ErrorCode.TOO_LONG),
        (b"\xff\xd8" + b"0" * (6 * 1024 * 1024), ErrorCode.TOO_LONG),
    ],
    ids=["not-an-image", "decompression-bomb", "too-large"],
)
def test_bad_card_photos_are_refused_with_a_clear_error(amina, payload, code):
    with pytest.raises(HirfaError) as info:
        services.verification_submit(
            user=amina, card_number="13/0421-B", issuing_chamber="", card_photo=payload
        )
    assert info.value.code == code
    assert info.value.details["field"] == "card_photo"
    assert info.value.message and info.value.message != code.value
    assert not Census.objects.filter(user=amina, status=VerificationStatus.PENDING).exists()


def test_a_card_number_is_checked(amina):
    with pytest.raises(HirfaError) as info:
        services.verification_submit(user=amina, card_number="<script>", issuing_chamber="", card_photo=jpeg())
    assert info.value.code == ErrorCode.INVALID


def test_public_contacts_show_only_chosen_channels(amina):
    census = services.census_update(
        user=amina, phone="+213 555 12 34 56", whatsapp="0555123456",
        contact_email="amina@example.org", public_channels=["whatsapp"],
    )
    assert selectors.public_contacts(census) == {"whatsapp": "0555123456"}
    with pytest.raises(HirfaError):
        services.census_update(user=amina, public_channels=["fax"])


# --- directory ---------------------------------------------------------------------------


@pytest.fixture
def directory(amina, yacine, sofia, karim, poterie, tissage):
    submit(amina)
    services.verification_review(moderator=karim, artisan_id=amina.pk, approve=True)
    return {"amina": amina, "yacine": yacine, "sofia": sofia}


def names(page):
    return sorted(c.username for c in page.items)


def test_search_by_name(directory):
    assert names(search.artisan_search(query="Amina")) == ["amina"]
    assert names(search.artisan_search(query="Haddad")) == ["yacine"]


def test_search_in_arabic(directory):
    assert names(search.artisan_search(query="صوفيا")) == ["sofia"]


def test_filters_trade_wilaya_language_verification(directory, poterie, tissage):
    assert names(search.artisan_search(trade_id=poterie.pk)) == ["amina", "karim", "yacine"]
    assert names(search.artisan_search(trade_id=tissage.pk)) == ["sofia"]
    assert names(search.artisan_search(wilaya_id=wilaya(31).pk)) == ["yacine"]
    assert names(search.artisan_search(language="ber")) == ["sofia"]
    assert names(search.artisan_search(language="ar", trade_id=poterie.pk)) == ["amina"]
    assert names(search.artisan_search(verified=True)) == ["amina"]
    assert "amina" not in names(search.artisan_search(verified=False))
    assert names(search.artisan_search(query="Amina", wilaya_id=wilaya(31).pk)) == []


def test_search_pages(directory):
    first = search.artisan_search(page_size=2)
    second = search.artisan_search(page_size=2, page=2)
    assert first.has_next and not first.has_previous and second.has_previous
    assert not set(names(first)) & set(names(second))


def test_search_cards_never_carry_card_data(directory):
    card = search.artisan_search(query="Amina").items[0]
    assert card.verified
    assert "13/0421-B" not in repr(card)


def test_contact_opens_the_direct_room(directory):
    room = services.artisan_contact(user=directory["yacine"], artisan_id=directory["amina"].pk)
    assert room.kind == "direct"
    assert set(room.memberships.values_list("user__username", flat=True)) == {"amina", "yacine"}


# --- showcase ----------------------------------------------------------------------------


def test_a_product_with_photos_and_labels(amina):
    product = services.product_create(
        user=amina, title="Jarre kabyle", price_dzd=4500, materials="argile",
        labels=["artisanat_algerie"], photos=[jpeg(2400, 1800), jpeg()],
    )
    photos = list(product.photos.all())
    assert len(photos) == 2
    assert max(photos[0].width, photos[0].height) == services.PRODUCT_PHOTO_SIDE
    assert photos[0].thumbnail.name
    on_request = services.product_create(user=amina, title="Plat", price_dzd=None)
    assert on_request.price_on_request


def test_a_product_with_a_bad_photo_is_not_created(amina):
    with pytest.raises(HirfaError) as info:
        services.product_create(user=amina, title="Jarre", photos=[jpeg(), b"GIF89a nonsense"])
    assert info.value.details["field"] == "photos"
    assert not amina.products.exists()


def test_unknown_labels_are_refused(amina):
    with pytest.raises(HirfaError):
        services.product_create(user=amina, title="Jarre", labels=["made-up-label"])


def test_drafts_show_only_to_their_artisan(amina, yacine):
    draft = services.product_create(user=amina, title="Brouillon", status="draft")
    assert selectors.product_public(product_id=draft.pk, viewer=amina) == draft
    with pytest.raises(HirfaError):
        selectors.product_public(product_id=draft.pk, viewer=yacine)
    assert selectors.storefront(username="amina").products == []
    assert selectors.storefront(username="amina", include_unpublished=True).products == [draft]


def test_order_request_posts_the_product_card_first(amina, yacine):
    product = services.product_create(user=amina, title="Jarre kabyle", price_dzd=4500)
    room = services.order_request(user=yacine, product_id=product.pk)
    again = services.order_request(user=yacine, product_id=product.pk)
    assert room == again
    messages = list(Message.objects.filter(room=room).order_by("seq"))
    assert len(messages) == 1 and messages[0].author == yacine
    card = messages[0].card
    assert card["kind"] == "product" and card["title"] == "Jarre kabyle"
    assert card["url"] == f"/products/{product.pk}/" and "4" in card["price"] and "13 Tlemcen" in card["detail"]


def test_report_goes_to_the_wilayas_moderators_who_may_hide(amina, yacine, karim, omar):
    product = services.product_create(user=amina, title="Faux cuivre", labels=["cuivre_constantine"])
    report = services.product_report(user=yacine, product_id=product.pk, reason="counterfeit", text="Pas de Constantine")
    assert services.product_report(user=yacine, product_id=product.pk, reason="counterfeit") == report
    assert selectors.product_reports_open(moderator=karim) == [report]
    assert selectors.product_reports_open(moderator=omar) == []
    with pytest.raises(HirfaError):
        services.product_report_resolve(moderator=omar, report_id=report.pk, hide=True)
    services.product_report_resolve(moderator=karim, report_id=report.pk, hide=True)
    product.refresh_from_db()
    assert product.status == ProductStatus.HIDDEN
    assert ProductReport.objects.get(pk=report.pk).status == ProductReport.Status.ACTIONED
    with pytest.raises(HirfaError):
        selectors.product_public(product_id=product.pk, viewer=amina)
    with pytest.raises(HirfaError):
        services.product_report(user=amina, product_id=product.pk, reason="abuse")


# --- exchange ----------------------------------------------------------------------------


def post(user, kind, code, material="clay", **kw):
    return services.exchange_post(
        user=user, kind=kind, material=material, quantity="50", unit="kg", wilaya_id=wilaya(code).pk, **kw
    )


def exchange_notes(user):
    return list(Notification.objects.filter(user=user, kind="exchange"))


def test_a_need_notifies_offers_in_the_same_or_a_neighbouring_wilaya(reference_data, amina, yacine, sofia):
    bel_abbes = artisan("bel", wilaya_=wilaya(22))
    post(yacine, "offer", 31)  # Oran: not a neighbour of Tlemcen
    post(sofia, "offer", 16)  # Alger: far
    post(bel_abbes, "offer", 22)  # Sidi Bel Abbès: a neighbour of Tlemcen
    post(bel_abbes, "offer", 22, material="wool")  # another material
    need = post(amina, "need", 13)
    assert [n.data["post"] for n in exchange_notes(bel_abbes)] == [need.pk]
    assert exchange_notes(yacine) == [] and exchange_notes(sofia) == []


def test_a_new_offer_notifies_those_who_need_it(reference_data, amina, yacine):
    post(amina, "need", 13)
    neighbour = artisan("temouchent", wilaya_=wilaya(46))
    offer = post(neighbour, "offer", 46)
    notes = exchange_notes(amina)
    assert len(notes) == 1 and notes[0].data["post"] == offer.pk and notes[0].data["kind"] == "offer"


def test_expired_and_closed_posts_do_not_match(reference_data, amina):
    other = artisan("bel", wilaya_=wilaya(22))
    old = post(other, "offer", 22)
    type(old).objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    closed = post(other, "offer", 22)
    services.exchange_close(user=other, post_id=closed.pk)
    post(amina, "need", 13)
    assert exchange_notes(other) == []


def test_exchange_input_is_checked(reference_data, amina):
    for bad in ({"material": "unobtainium"}, {"quantity": "-3"}, {"unit": "furlong"},
                {"expires_at": timezone.now() - timedelta(hours=1)}, {"material": "other"}):
        args = {"kind": "offer", "material": "clay", "quantity": "5", "unit": "kg", "wilaya_id": wilaya(13).pk}
        args.update(bad)
        with pytest.raises(HirfaError):
            services.exchange_post(user=amina, **args)


def test_the_board_filters_by_material_and_wilaya(reference_data, amina, yacine):
    a = post(amina, "offer", 13)
    post(yacine, "offer", 31, material="wool")
    rows, _ = selectors.exchange_board(material="clay")
    assert rows == [a]
    rows, _ = selectors.exchange_board(wilaya_id=wilaya(31).pk)
    assert [r.author for r in rows] == [yacine]


# --- census figures ----------------------------------------------------------------------


def test_census_stats_count_by_wilaya_trade_and_month(directory, poterie):
    stats = selectors.census_stats()
    by_code = {r.code: r for r in stats.by_wilaya}
    assert by_code["13"].total == 2 and by_code["13"].verified == 1  # amina and karim
    assert by_code["31"].total == 1 and by_code["01"].total == 0
    assert len(stats.by_wilaya) == 58
    pottery = next(r for r in stats.by_trade if r.key == poterie.pk)
    assert (pottery.total, pottery.verified) == (3, 1)  # amina, karim and yacine
    assert sum(n for _m, n in stats.by_month) == stats.total == 4
    assert stats.verified == 1


# --- privacy -----------------------------------------------------------------------------


def test_export_holds_my_data_and_card(amina, yacine):
    submit(amina)
    services.product_create(user=amina, title="Jarre", price_dzd=100)
    room = services.artisan_contact(user=amina, artisan_id=yacine.pk)
    from rooms.services import message_post

    message_post(user=amina, room_id=room.pk, client_id="c1", text="Salam Yacine")
    data = personal_data.account_export(user=amina)
    assert data["account"]["username"] == "amina"
    assert data["census"]["card_number"] == "13/0421-B"
    assert [p["title"] for p in data["products"]] == ["Jarre"]
    assert [m["text"] for m in data["messages"]] == ["Salam Yacine"]
    assert data["profile"]["display_name"] == "Amina Belkacem"


def test_deletion_keeps_messages_without_author_and_removes_products(
    amina, yacine, media_root, django_capture_on_commit_callbacks
):
    submit(amina)
    product = services.product_create(user=amina, title="Jarre", photos=[jpeg()])
    photo_path = media_root / product.photos.get().image.name
    room = services.artisan_contact(user=yacine, artisan_id=amina.pk)
    from rooms.services import message_post

    message_post(user=amina, room_id=room.pk, client_id="c1", text="Je garde ce message")
    with pytest.raises(HirfaError):
        personal_data.account_delete(user=amina, password="wrong")
    assert photo_path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        personal_data.account_delete(user=amina, password="a-long-test-passphrase")
    assert not photo_path.exists()
    assert not type(amina).objects.filter(username="amina").exists()
    message = Message.objects.get(room=room)
    assert message.author is None and message.text == "Je garde ce message"
    assert Room.objects.filter(pk=room.pk).exists()
    assert not product.__class__.objects.filter(pk=product.pk).exists()
    assert not Census.objects.filter(user_id=amina.pk).exists()
