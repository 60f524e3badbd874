"""One way to write a wilaya and one order of trades, on every page and in each language."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from hub import forms
from hub.selectors import name_sort_key, trades_by_domain, trades_sorted
from registry.search import sorted_by_name, wilaya_label
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Émaillage", "Ebénisterie", "écriture"], ["Ebénisterie", "écriture", "Émaillage"]),
        (["الفخار", "إصلاح", "أثاث", "النسيج"], ["أثاث", "إصلاح", "الفخار", "النسيج"]),
    ],
)
def test_names_sort_with_accents_and_letter_forms_folded(names, expected):
    assert sorted(names, key=name_sort_key) == expected


@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_trades_are_sorted_alike_on_the_sign_up_form_the_agenda_and_the_directory(language):
    ours = {
        factories.trade(slug, fr, ar).pk
        for slug, fr, ar in [("tissage-t", "Tissage", "النسيج"), ("ebenisterie-t", "Ébénisterie", "النجارة"),
                             ("poterie-t", "Poterie", "الفخار"), ("bijouterie-t", "Bijouterie", "الحلي")]
    }
    with translation.override(language):
        agenda = [t.name for t in trades_sorted() if t.pk in ours]
        directory = [t.name for t in sorted_by_name(trades_sorted()[::-1]) if t.pk in ours]
        signup = [t.name for group in trades_by_domain() for t in group.trades if t.pk in ours]
    assert agenda == directory == signup and len(agenda) == 4


def test_a_wilaya_is_written_one_way_on_the_form_the_agenda_and_the_directory():
    wilaya = factories.wilaya()
    user = factories.amina(tlemcen_=wilaya)
    with translation.override("fr"):
        field = forms.WilayaChoiceField(queryset=type(wilaya).objects.all())
        assert field.label_from_instance(wilaya) == wilaya.label == wilaya_label(wilaya) == f"{wilaya.code:02d} Tlemcen-test"
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = "fr"
    assert f">{wilaya.label}</option>" in client.get("/gatherings/").content.decode()
