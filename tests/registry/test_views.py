"""The registry's pages and REST endpoints through Django's test client: who sees card
data, search filters, contact and order redirects, Open Graph tags, the census map
and CSV, export and deletion, refused uploads."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import Census, Product
from rooms.models import Message, Room
from tests.registry.conftest import jpeg, png_claiming

CARD = "13/0421-B"


def client_for(user=None, language="fr") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def verified_amina(amina, karim):
    services.verification_submit(user=amina, card_number=CARD, issuing_chamber="CAM Tlemcen", card_photo=jpeg())
    return amina


class Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.props: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and "property" in a:
            self.props[a["property"]] = a.get("content", "")


def og(html: str) -> dict[str, str]:
    parser = Meta()
    parser.feed(html)
    return parser.props


# --- card data visibility ----------------------------------------------------------------


def test_behind_nginx_the_card_photo_is_sent_by_an_internal_redirect(verified_amina, karim, settings):
    settings.HIRFA_ACCEL_REDIRECT = True
    photo = client_for(karim).get(reverse("registry_card_photo", args=[verified_amina.pk]))
    assert photo.status_code == 200 and photo.content == b""
    assert photo["X-Accel-Redirect"].startswith("/_private/cards/")
    assert photo["Cache-Control"] == "private, no-store"
    assert client_for(None).get(reverse("registry_card_photo", args=[verified_amina.pk])).status_code == 302


@pytest.mark.parametrize(
    ("who", "sees"),
    [("amina", True), ("karim", True), ("leila", True), ("omar", False), ("yacine", False), (None, False)],
)
def test_who_sees_card_data_in_pages_and_api(request, verified_amina, who, sees):
    viewer = request.getfixturevalue(who) if who else None
    client = client_for(viewer)
    store = client.get(reverse("registry_storefront", args=["amina"]))
    assert store.status_code == 200
    assert CARD not in store.content.decode()  # the storefront never shows it
    api = client.get("/api/registry/artisans/amina").json()
    assert (api["card"] is not None) == sees
    if sees:
        assert api["card"]["card_number"] == CARD
    else:
        assert CARD not in json.dumps(api)
    photo = client.get(reverse("registry_card_photo", args=[verified_amina.pk]))
    assert photo.status_code == (200 if sees else 404 if viewer else 302)
    if sees:
        assert photo["Cache-Control"] == "private, no-store" and photo["Content-Type"] == "image/jpeg"
    review = client.get(reverse("registry_review"))
    if who in ("karim", "leila"):
        assert CARD in review.content.decode()
    else:
        assert CARD not in review.content.decode()


def test_the_artisan_submits_his_card_and_karim_approves_through_the_pages(amina, karim):
    me = client_for(amina)
    response = me.post(
        reverse("registry_me"),
        {"action": "card", "card_number": CARD, "issuing_chamber": "CAM",
         "card_photo": SimpleUploadedFile("card.jpg", jpeg(), "image/jpeg")},
    )
    assert response.status_code == 302
    assert Census.objects.get(user=amina).status == "pending"
    mod = client_for(karim)
    assert mod.post(reverse("registry_review_card", args=[amina.pk]), {"decision": "approve"}).status_code == 302
    assert Census.objects.get(user=amina).status == "verified"
    page = client_for().get(reverse("registry_directory"), {"verified": "1"}).content.decode()
    assert 'data-username="amina"' in page and "verified-badge" in page


def test_omar_cannot_review_amina_through_the_api(verified_amina, omar):
    client = client_for(omar)
    assert client.get("/api/registry/verifications").json() == []
    response = client.post(
        f"/api/registry/verifications/{verified_amina.pk}", {"approve": True}, content_type="application/json"
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [(b"not an image at all", 400, "invalid"), (png_claiming(50_000, 50_000), 413, "too_long"),
     (b"\x89PNG" + b"0" * (6 * 1024 * 1024), 413, "too_long")],
    ids=["not-an-image", "bomb", "too-large"],
)
def test_bad_uploads_are_refused_with_a_clear_error(amina, payload, status, code):
    client = client_for(amina)
    response = client.post(
        "/api/registry/census/me/card",
        {"card_number": CARD, "photo": SimpleUploadedFile("card.png", payload, "image/png")},
    )
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["field"] == "card_photo" and body["message"]
    page = client.post(
        reverse("registry_me"),
        {"action": "card", "card_number": CARD, "card_photo": SimpleUploadedFile("card.png", payload, "image/png")},
        follow=True,
    )
    assert "flash-error" in page.content.decode() or "error" in page.content.decode()
    assert not Census.objects.filter(user=amina, status="pending").exists()


# --- directory ---------------------------------------------------------------------------


def test_directory_filters_in_the_page_and_api(verified_amina, yacine, sofia, poterie):
    client = client_for()
    page = client.get(reverse("registry_directory"), {"trade": poterie.pk}).content.decode()
    assert 'data-username="amina"' in page and 'data-username="yacine"' in page
    assert 'data-username="sofia"' not in page
    api = client.get("/api/registry/artisans", {"q": "Haddad"}).json()
    assert [a["username"] for a in api["items"]] == ["yacine"]
    api = client.get("/api/registry/artisans", {"language": "ber"}).json()
    assert [a["username"] for a in api["items"]] == ["sofia"]


def test_contact_opens_a_direct_room_and_redirects_there(verified_amina, yacine):
    response = client_for(yacine).post(reverse("registry_contact", args=["amina"]))
    room = Room.objects.get(kind="direct")
    assert response.status_code == 302 and response["Location"] == reverse("room", args=[room.pk])


# --- showcase ----------------------------------------------------------------------------


@pytest.fixture
def jarre(amina):
    return services.product_create(
        user=amina, title="Jarre de Nedroma", description="Argile rouge, cuite au bois.",
        price_dzd=4500, labels=["artisanat_algerie"], photos=[jpeg(800, 600)],
    )


def test_product_page_has_open_graph_tags_with_absolute_image_and_price(jarre, settings):
    settings.ALLOWED_HOSTS = ["hirfa.example"]
    response = client_for().get(reverse("registry_product", args=[jarre.pk]), HTTP_HOST="hirfa.example")
    assert response.status_code == 200
    tags = og(response.content.decode())
    assert tags["og:title"] == "Jarre de Nedroma"
    assert tags["og:type"] == "product"
    assert tags["og:description"] == "Argile rouge, cuite au bois."
    assert re.fullmatch(r"http://hirfa\.example/media/registry/products/.+\.jpg", tags["og:image"])
    assert tags["og:url"] == f"http://hirfa.example/products/{jarre.pk}/"
    assert tags["product:price:amount"] == "4500"
    assert tags["product:price:currency"] == "DZD"
    assert "Artisanat d" in response.content.decode()


def test_price_on_request_has_no_price_tags(amina):
    product = services.product_create(user=amina, title="Plat")
    tags = og(client_for().get(reverse("registry_product", args=[product.pk])).content.decode())
    assert "product:price:amount" not in tags and "og:image" not in tags


def test_storefront_lists_products_and_has_og_tags(jarre):
    response = client_for(language="ar").get(reverse("registry_storefront", args=["amina"]))
    html = response.content.decode()
    assert 'dir="rtl"' in html and "Jarre de Nedroma" in html
    assert og(html)["og:image"].startswith("http://testserver/media/")


def test_order_request_redirects_to_the_room_with_the_card_first(jarre, yacine):
    response = client_for(yacine).post(reverse("registry_product_order", args=[jarre.pk]))
    room = Room.objects.get(kind="direct")
    assert response["Location"] == reverse("room", args=[room.pk])
    first = Message.objects.filter(room=room).order_by("seq").first()
    assert first.card["url"] == f"/products/{jarre.pk}/"


def test_product_form_creates_with_photos_and_refuses_a_bad_one(amina):
    client = client_for(amina)
    response = client.post(
        reverse("registry_product_new"),
        {"title": "Tajine", "price_dzd": "", "availability": "made_to_order", "status": "published",
         "photos": [SimpleUploadedFile("a.jpg", jpeg(), "image/jpeg")]},
    )
    product = Product.objects.get(title="Tajine")
    assert response.status_code == 302 and product.price_on_request and product.photos.count() == 1
    bad = client.post(
        reverse("registry_product_new"),
        {"title": "Tajine 2", "availability": "in_stock", "status": "published",
         "photos": [SimpleUploadedFile("a.jpg", b"MZ\x90 not a photo", "image/jpeg")]},
    )
    assert bad.status_code == 400 and not Product.objects.filter(title="Tajine 2").exists()


def test_report_reaches_the_moderators_queue(jarre, yacine, karim):
    client_for(yacine).post(reverse("registry_product_report", args=[jarre.pk]), {"reason": "counterfeit"})
    assert "Jarre de Nedroma" in client_for(karim).get(reverse("registry_review")).content.decode()


# --- exchange ----------------------------------------------------------------------------


def test_exchange_board_and_api(amina, yacine):
    client = client_for(amina)
    wilaya_id = amina.profile.wilaya_id
    response = client.post(
        reverse("registry_exchange"),
        {"kind": "need", "material": "clay", "quantity": "20", "unit": "kg", "wilaya": wilaya_id, "days": "10"},
    )
    assert response.status_code == 302
    api = client_for(yacine).get("/api/registry/exchange", {"material": "clay"}).json()
    assert len(api) == 1 and api[0]["kind"] == "need" and api[0]["author"] == "amina"
    reply = client_for(yacine).post(reverse("registry_exchange_reply", args=[api[0]["id"]]))
    assert reply.status_code == 302 and reply["Location"].startswith("/rooms/")


# --- census ------------------------------------------------------------------------------


def test_census_map_is_svg_with_titles_labels_and_legend(verified_amina, yacine):
    response = client_for().get(reverse("registry_census_map"))
    assert response["Content-Type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(response.content)
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//s:g[@class='wilaya']", ns)
    assert len(groups) == 69  # every shape of the package, new wilayas drawn with their parent
    tlemcen = [g for g in groups if g.get("data-code") == "13"]
    assert tlemcen and tlemcen[0].get("data-count") == "2"
    assert "Tlemcen" in tlemcen[0].find("s:title", ns).text
    assert root.find(".//s:g[@class='legend']", ns) is not None
    assert b"http" not in response.content.replace(b"http://www.w3.org/2000/svg", b"")


def test_census_page_in_arabic_and_french(verified_amina):
    for lang, word in (("ar", 'dir="rtl"'), ("fr", 'dir="ltr"')):
        html = client_for(language=lang).get(reverse("registry_census")).content.decode()
        assert word in html and "<svg" in html and CARD not in html


def test_census_csv(verified_amina, yacine):
    response = client_for().get(reverse("registry_census_csv"))
    rows = response.content.decode().splitlines()
    assert rows[0] == "dimension,code,name,artisans,verified"
    assert any(r.startswith("wilaya,13,") and r.endswith(",2,0") for r in rows)


def test_dashboard_is_for_moderators(verified_amina, karim, yacine):
    assert client_for(yacine).get(reverse("registry_census_dashboard")).status_code == 404
    html = client_for(karim).get(reverse("registry_census_dashboard")).content.decode()
    assert "1" in html and reverse("registry_review") in html


# --- privacy -----------------------------------------------------------------------------


def test_export_and_delete_through_the_pages(verified_amina, jarre, yacine):
    client = client_for(verified_amina)
    data = json.loads(client.get(reverse("registry_export")).content)
    assert data["census"]["card_number"] == CARD and data["products"][0]["title"] == "Jarre de Nedroma"
    room = services.artisan_contact(user=yacine, artisan_id=verified_amina.pk)
    from rooms.services import message_post

    message_post(user=verified_amina, room_id=room.pk, client_id="x", text="Bonjour")
    assert client.post(reverse("registry_delete"), {"password": "nope"}).status_code == 200
    response = client.post(reverse("registry_delete"), {"password": "a-long-test-passphrase"})
    assert response.status_code == 302
    assert not Product.objects.exists()
    assert Message.objects.get(room=room, text="Bonjour").author is None
    assert client_for().get(reverse("registry_product", args=[jarre.pk])).status_code == 404
    assert client_for().get(reverse("registry_storefront", args=["amina"])).status_code == 404


def test_api_export_and_delete(amina):
    client = client_for(amina)
    assert client.get("/api/registry/me/export").json()["account"]["username"] == "amina"
    assert client.post("/api/registry/me/delete", {"password": "x"}, content_type="application/json").status_code == 403
    assert client.post(
        "/api/registry/me/delete", {"password": "a-long-test-passphrase"}, content_type="application/json"
    ).status_code == 204


def test_registry_endpoints_are_in_the_openapi_schema():
    paths = Client().get("/api/openapi.json").json()["paths"]
    for path in ("/api/registry/artisans", "/api/registry/census/me/card", "/api/registry/products/{product_id}",
                 "/api/registry/exchange", "/api/registry/census/stats", "/api/registry/me/export"):
        assert path in paths


# --- the rest of the REST surface ---------------------------------------------------------


def test_api_product_update_delete_and_the_report_queue(amina, yacine, karim):
    owner = client_for(amina)
    created = owner.post(
        "/api/registry/products", {"title": "Tajine", "price_dzd": 2500}, content_type="application/json"
    ).json()
    url = f"/api/registry/products/{created['id']}"
    changed = owner.patch(url, {"price_dzd": None, "title": "Tajine de Nedroma"}, content_type="application/json")
    assert changed.status_code == 200
    assert (changed.json()["title"], changed.json()["price_on_request"]) == ("Tajine de Nedroma", True)
    assert owner.patch(url, {"title": None}, content_type="application/json").status_code == 400
    assert client_for(yacine).patch(url, {"title": "x"}, content_type="application/json").status_code == 404

    report = client_for(yacine).post(f"{url}/report", {"reason": "counterfeit"}, content_type="application/json")
    assert report.status_code == 200
    assert client_for(yacine).get("/api/registry/product-reports").json() == []
    queue = client_for(karim).get("/api/registry/product-reports").json()
    assert [r["product_id"] for r in queue] == [created["id"]]
    hidden = client_for(karim).post(
        f"/api/registry/product-reports/{queue[0]['id']}", {"action": "hide"}, content_type="application/json"
    )
    assert hidden.status_code == 200 and hidden.json()["status"] == "actioned"
    assert client_for(yacine).get(url).status_code == 404

    assert client_for(yacine).delete(url).status_code == 404
    assert owner.delete(url).status_code == 204
    assert owner.get(url).status_code == 404


def test_api_exchange_close_is_for_the_author(amina, yacine):
    post = client_for(amina).post(
        "/api/registry/exchange",
        {"kind": "offer", "material": "clay", "quantity": "5", "unit": "kg",
         "wilaya_id": amina.profile.wilaya_id, "days": 10},
        content_type="application/json",
    )
    assert post.status_code == 201, post.json()
    post_id = post.json()["id"]
    assert client_for(yacine).post(f"/api/registry/exchange/{post_id}/close").status_code == 404
    assert client_for(amina).post(f"/api/registry/exchange/{post_id}/close").status_code == 200
    assert client_for(yacine).get("/api/registry/exchange", {"material": "clay"}).json() == []


def test_the_storefront_shows_the_workshops_cover_and_story(amina, django_capture_on_commit_callbacks):
    me = client_for(amina)
    census_form = {"action": "census", "commune": "Mansourah", "workshop_kind": "individual", "public_channels": []}
    story = "Notre atelier de Nedroma tourne l'argile rouge depuis trois générations.\nفخار ندرومة منذ ثلاثة أجيال."
    response = me.post(reverse("registry_me"), {**census_form, "story": story,
                                                "cover": SimpleUploadedFile("atelier.jpg", jpeg(2400, 800), "image/jpeg")})
    assert response.status_code == 302
    census = Census.objects.get(user=amina)
    assert census.cover and (census.cover_width, census.cover_height) == (1600, 533)  # re-encoded, at most 1600 px
    page = client_for().get(reverse("registry_storefront", args=["amina"])).content.decode()
    assert 'class="store-cover"' in page and census.cover.url in page and 'width="1600"' in page
    assert "trois générations." in page and "فخار ندرومة" in page
    assert f'property="og:image" content="http://testserver{census.cover.url}"' in page
    # Saving the form without a new photo keeps it; ticking "remove" takes it away, file and all.
    me.post(reverse("registry_me"), {**census_form, "story": story})
    assert Census.objects.get(user=amina).cover.name == census.cover.name
    storage, name = census.cover.storage, census.cover.name
    with django_capture_on_commit_callbacks(execute=True):
        me.post(reverse("registry_me"), {**census_form, "story": "", "cover_remove": "on"})
    census.refresh_from_db()
    assert not census.cover and not census.story and not storage.exists(name)
    assert 'class="store-cover"' not in client_for().get(reverse("registry_storefront", args=["amina"])).content.decode()


def test_a_story_too_long_or_a_cover_that_is_no_image_is_refused(amina):
    me = client_for(amina)
    base = {"action": "census", "workshop_kind": "individual"}
    me.post(reverse("registry_me"), {**base, "story": "x" * 2001})
    me.post(reverse("registry_me"), {**base, "cover": SimpleUploadedFile("c.jpg", b"not an image", "image/jpeg")})
    census = Census.objects.get(user=amina)
    assert not census.story and not census.cover
