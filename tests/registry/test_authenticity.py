"""Authenticity tags: a verified artisan prints a QR code with a short public link; scanning
it shows the piece and the artisan's card status today; counterfeits reach the moderators."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from hub.errors import ErrorCode, HirfaError
from registry import selectors, services
from registry.models import Census, ProductReport, ProductStatus, VerificationStatus
from tests.registry.conftest import jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()


@pytest.fixture
def verified_amina(amina, karim):
    services.verification_submit(user=amina, card_number="13/0421-B", issuing_chamber="CAM Tlemcen", card_photo=jpeg())
    services.verification_review(moderator=karim, artisan_id=amina.pk, approve=True)
    return amina


@pytest.fixture
def jarre(verified_amina):
    return services.product_create(user=verified_amina, title="Jarre de Nedroma", photos=[jpeg()])


def test_a_verified_artisan_gets_one_short_code_per_piece(jarre, verified_amina):
    code = services.product_authenticity_code(user=verified_amina, product_id=jarre.pk)
    assert len(code) == 8 and not set(code) & set("01OI")
    assert services.product_authenticity_code(user=verified_amina, product_id=jarre.pk) == code


def test_no_tag_for_an_unverified_artisan_a_draft_or_someone_elses_piece(amina, yacine, jarre):
    unverified = services.product_create(user=yacine, title="Tajine")
    with pytest.raises(HirfaError) as refused:
        services.product_authenticity_code(user=yacine, product_id=unverified.pk)
    assert refused.value.code == ErrorCode.FORBIDDEN
    draft = services.product_create(user=amina, title="Brouillon", status=ProductStatus.DRAFT)
    with pytest.raises(HirfaError):
        services.product_authenticity_code(user=amina, product_id=draft.pk)
    with pytest.raises(HirfaError) as other:
        services.product_authenticity_code(user=yacine, product_id=jarre.pk)
    assert other.value.code == ErrorCode.NOT_FOUND


def test_the_tag_page_prints_a_qr_code_of_the_short_link(jarre, verified_amina):
    client = Client()
    client.force_login(verified_amina)
    html = client.get(reverse("registry_product_tag", args=[jarre.pk])).content.decode()
    code = jarre.__class__.objects.get(pk=jarre.pk).auth_code
    assert f"http://testserver/a/{code}" in html and '<svg xmlns="http://www.w3.org/2000/svg"' in html


def test_scanning_shows_the_piece_and_the_verified_artisan(jarre, verified_amina):
    code = services.product_authenticity_code(user=verified_amina, product_id=jarre.pk)
    html = Client().get(reverse("registry_authenticity", args=[code.lower()])).content.decode()
    assert "auth-ok" in html and "Amina Belkacem" in html and "Jarre de Nedroma" in html
    check = selectors.authenticity_check(code=code)
    assert check.verified and check.verified_on is not None


def test_a_card_no_longer_verified_shows_a_warning(jarre, verified_amina):
    code = services.product_authenticity_code(user=verified_amina, product_id=jarre.pk)
    Census.objects.filter(user=verified_amina).update(status=VerificationStatus.REJECTED)  # e.g. withdrawn
    assert "auth-warn" in Client().get(reverse("registry_authenticity", args=[code])).content.decode()


def test_unknown_codes_and_hidden_pieces_are_not_found(jarre, verified_amina):
    assert Client().get(reverse("registry_authenticity", args=["ZZZZZZZZ"])).status_code == 404
    code = services.product_authenticity_code(user=verified_amina, product_id=jarre.pk)
    jarre.__class__.objects.filter(pk=jarre.pk).update(status=ProductStatus.HIDDEN)
    assert Client().get(reverse("registry_authenticity", args=[code])).status_code == 404


def test_a_counterfeit_report_without_an_account_reaches_the_wilayas_moderators(jarre, verified_amina, karim):
    code = services.product_authenticity_code(user=verified_amina, product_id=jarre.pk)
    client = Client()
    url = reverse("registry_authenticity_report", args=[code])
    assert client.post(url, {"text": "Bought at a market in Oran, no stamp"}).status_code == 302
    (report,) = selectors.product_reports_open(moderator=karim)
    assert report.reason == ProductReport.Reason.COUNTERFEIT and report.reporter is None
    assert [client.post(url, {"text": f"again {i}"}).status_code for i in range(3)] == [302, 302, 429]
