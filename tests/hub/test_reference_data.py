from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from hub.errors import ErrorCode, HirfaError
from hub.forms import SignupForm
from hub.models import Trade, TradeDomain, Wilaya
from hub.selectors import trades_by_domain, wilayas_in_force
from hub.services import artisan_register

pytestmark = pytest.mark.usefixtures("reference_data")


def test_the_58_wilayas_have_unique_codes_and_french_and_arabic_names():
    wilayas = list(Wilaya.objects.filter(parent__isnull=True, valid_from__isnull=True))
    assert sorted(w.code for w in wilayas) == list(range(1, 59))
    for wilaya in wilayas:
        assert wilaya.name_fr.strip(), wilaya.code
        assert wilaya.name_ar.strip(), wilaya.code
        # Arabic names are written in Arabic script.
        assert any("\u0600" <= ch <= "\u06ff" for ch in wilaya.name_ar), wilaya.code
    assert len({w.name_fr for w in wilayas}) == 58


@pytest.mark.parametrize(
    ("code", "fr", "ar"),
    [
        (1, "Adrar", "أدرار"),
        (13, "Tlemcen", "تلمسان"),
        (16, "Alger", "الجزائر"),
        (25, "Constantine", "قسنطينة"),
        (31, "Oran", "وهران"),
        (47, "Ghardaïa", "غرداية"),
        (48, "Relizane", "غليزان"),
        (49, "Timimoun", "تيميمون"),
        (53, "In Salah", "عين صالح"),
        (58, "El Meniaa", "المنيعة"),
    ],
)
def test_known_wilaya_names(code, fr, ar):
    wilaya = Wilaya.objects.get(code=code)
    assert (wilaya.name_fr, wilaya.name_ar) == (fr, ar)


def test_localized_name_follows_the_language():
    alger = Wilaya.objects.get(code=16)
    assert alger.localized_name("ar") == "الجزائر"
    assert alger.localized_name("en") == "Algiers"
    assert alger.localized_name("fr") == "Alger"


def test_neighbours_are_symmetric_and_cover_the_north():
    tlemcen = Wilaya.objects.get(code=13)
    assert {w.code for w in tlemcen.neighbours.all()} == {22, 45, 46}
    alger = Wilaya.objects.get(code=16)
    assert {w.code for w in alger.neighbours.all()} == {9, 35, 42}
    constantine = Wilaya.objects.get(code=25)
    assert {w.code for w in constantine.neighbours.all()} == {4, 21, 24, 43}
    # Symmetric: Tlemcen is a neighbour of Aïn Témouchent.
    assert Wilaya.objects.get(code=46).neighbours.filter(code=13).exists()
    # No wilaya is its own neighbour.
    for wilaya in Wilaya.objects.prefetch_related("neighbours"):
        assert wilaya not in wilaya.neighbours.all()
    # Every northern (pre-2019, code <= 48) wilaya has at least one neighbour.
    lonely = [w.code for w in Wilaya.objects.filter(code__lte=48) if not w.neighbours.exists()]
    assert lonely == []


def test_trades_fall_in_the_three_domains():
    assert set(TradeDomain.objects.values_list("code", flat=True)) >= {"art", "goods", "services"}
    official = Trade.objects.filter(domain__code__in=["art", "goods", "services"])
    assert official.count() >= 30
    for code in ("art", "goods", "services"):
        assert official.filter(domain__code=code).exists(), code
    for trade in official:
        assert trade.name_fr and trade.name_ar and trade.name_en, trade.slug
        assert trade.activity_code == "" or (len(trade.activity_code) == 7 and trade.activity_code.isdigit())
    for slug in ("pottery-ceramics", "carpets-weaving", "copperware", "silver-jewellery", "basketry", "glass"):
        assert official.filter(slug=slug, domain__code="art").exists(), slug
    assert official.filter(slug="plumbing", domain__code="services").exists()


def test_trades_by_domain_groups_every_trade_once():
    groups = trades_by_domain()
    seen = [t.pk for g in groups for t in g.trades]
    assert len(seen) == len(set(seen)) == Trade.objects.count()


def test_a_future_wilaya_is_a_row_not_in_force_until_its_date():
    """The wilayas announced in November 2025 can be added later with no code change."""
    adrar = Wilaya.objects.get(code=1)
    starts = timezone.localdate() + timedelta(days=200)
    new = Wilaya.objects.create(
        code=59, name_fr="Future wilaya", name_ar="ولاية مستقبلية", parent=adrar, valid_from=starts
    )
    assert not new.is_in_force()
    assert not new.is_in_force(starts - timedelta(days=1))
    assert new.is_in_force(starts)
    assert adrar.children.get() == new
    assert new not in wilayas_in_force()
    assert new in wilayas_in_force(day=starts)
    # Not offered at sign-up, and refused by the service.
    assert new.pk not in {w.pk for w in SignupForm().fields["wilaya"].queryset}
    with pytest.raises(HirfaError) as refused:
        artisan_register(
            username="early",
            email="early@example.org",
            password="a-long-test-passphrase",
            display_name="Early",
            wilaya_id=new.pk,
            trade_ids=[],
            languages=[],
        )
    assert refused.value.code == ErrorCode.INVALID


def test_the_data_loaders_are_idempotent():
    from django.apps import apps

    before = (Wilaya.objects.count(), Trade.objects.count(), Wilaya.neighbours.through.objects.count())
    for name in ("hub.migrations.0002_wilayas", "hub.migrations.0003_trades", "hub.migrations.0012_trade_icon"):
        importlib.import_module(name).load(apps, None)
    after = (Wilaya.objects.count(), Trade.objects.count(), Wilaya.neighbours.through.objects.count())
    assert before == after


@pytest.mark.django_db(transaction=True)
def test_the_data_migrations_reverse_and_apply_again():
    call_command("migrate", "hub", "0001", verbosity=0)
    assert not Wilaya.objects.exists()
    assert not Trade.objects.filter(slug="pottery-ceramics").exists()
    assert not TradeDomain.objects.filter(code="art").exists()
    call_command("migrate", verbosity=0)
    assert Wilaya.objects.filter(code__lte=58).count() == 58
    assert Trade.objects.filter(slug="pottery-ceramics", domain__code="art").exists()


@pytest.mark.django_db
def test_tamazight_names_in_latin_and_tifinagh():
    tizi = Wilaya.objects.get(code=15)
    assert tizi.localized_name("kab") == "Tizi Wezzu" and tizi.tifinagh == "ⵜⵉⵣⵉ ⵡⴻⵣⵣⵓ"
    assert Wilaya.objects.get(code=16).localized_name("kab") == "Dzayer"
    # A wilaya with no Tamazight name falls back to French in Kabyle.
    assert Wilaya.objects.get(code=1).localized_name("kab") == "Adrar"
    named = list(Wilaya.objects.exclude(name_tfng="")) + list(Trade.objects.exclude(name_tfng=""))
    assert len(named) >= 15
    for row in named:
        # Tifinagh letters (U+2D30–U+2D7F) and spaces only, and a Latin name beside.
        assert all(c == " " or "\u2d30" <= c <= "\u2d7f" for c in row.name_tfng), row.name_tfng
        assert row.name_ber


def test_every_trade_has_an_icon_the_sprite_draws():
    import re
    from pathlib import Path

    from hub.models import TRADE_ICON_DEFAULT, TRADE_ICONS

    sprite = (Path(__file__).resolve().parents[2] / "frontend/static/hirfa/icons.svg").read_text()
    symbols = set(re.findall(r'<symbol id="([^"]+)"', sprite))
    assert TRADE_ICONS <= symbols and TRADE_ICON_DEFAULT in TRADE_ICONS
    for trade in Trade.objects.all():
        assert trade.icon in TRADE_ICONS, trade.slug
    # Most trades have an icon of their own, not the default.
    assert Trade.objects.exclude(icon=TRADE_ICON_DEFAULT).count() >= Trade.objects.count() - 2


def test_the_reference_data_put_back_after_a_flush_is_whole():
    """What a transactional test's flush removed comes back with the Tifinagh names too."""
    from tests import reference_data

    Wilaya.objects.all().delete()
    Trade.objects.all().delete()
    reference_data.restore()
    tizi = Wilaya.objects.get(code=15)
    assert tizi.localized_name("kab") == "Tizi Wezzu" and tizi.tifinagh == "ⵜⵉⵣⵉ ⵡⴻⵣⵣⵓ"
    assert Trade.objects.exclude(name_tfng="").exists()
