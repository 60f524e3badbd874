"""Bidi controls never reach a display name; names put into sentences are isolated."""

from __future__ import annotations

import pytest

from hub import services
from hub.bidi import bidi_isolate, bidi_strip
from hub.models import ArtisanProfile
from tests.hub.test_services import register

pytestmark = pytest.mark.usefixtures("reference_data")

CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_every_bidi_control_is_stripped_and_nothing_else():
    assert bidi_strip(f"A{CONTROLS}mina أمينة") == "Amina أمينة"
    assert bidi_isolate("Amina\u202e") == "\u2068Amina\u2069"


def test_a_display_name_is_stored_without_bidi_controls():
    amina = register(display_name="Amina \u202eevil\u202c B.")
    assert amina.profile.display_name == "Amina evil B."
    services.profile_update(user=amina, display_name="\u2067كريم\u2069\u200f")
    amina.profile.refresh_from_db()
    assert amina.profile.display_name == "كريم"


def test_a_name_of_only_controls_is_empty():
    with pytest.raises(services.HirfaError) as caught:
        register(display_name="\u202e\u202e")
    assert caught.value.code.value == "empty"


def test_a_name_stored_before_is_read_without_controls():
    amina = register()
    ArtisanProfile.objects.filter(user=amina).update(display_name="Amina\u202egnp.exe")
    amina.profile.refresh_from_db()
    assert amina.display_name == "Aminagnp.exe"
