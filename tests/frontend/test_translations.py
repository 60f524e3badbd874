"""The catalogues: each compiles, the .mo files are up to date, and every string
the web client shows has its Arabic and French translation."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import polib
import pytest
from django.urls import reverse
from django.utils.translation.template import templatize

from frontend.i18n import JS_STRINGS

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "hub" / "locale"
TEMPLATES = ROOT / "frontend" / "templates"


def _compile_messages():
    spec = importlib.util.spec_from_file_location("compile_messages", ROOT / "scripts" / "compile_messages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def template_msgids() -> set[str]:
    """Every msgid of the frontend templates, as makemessages would extract it."""
    found: set[str] = set()
    call = re.compile(r"\b(?:gettext|ngettext|pgettext)\((u?'(?:[^'\\]|\\.)*')")
    for path in TEMPLATES.rglob("*.html"):
        source = templatize(path.read_text(encoding="utf-8"), origin=str(path))
        for literal in call.findall(source):
            found.add(eval(literal.lstrip("u")))
    return found


def python_msgids() -> set[str]:
    """The msgids of frontend/views.py and of the JavaScript strings (frontend/i18n.py)."""
    found: set[str] = set()
    for name in ("views.py", "i18n.py"):
        text = (ROOT / "frontend" / name).read_text(encoding="utf-8")
        found |= set(re.findall(r'\b_\(\s*"((?:[^"\\]|\\.)*)"', text))
    return found


def test_the_frontend_strings_are_found():
    ids = template_msgids()
    assert {"Your rooms", "Load older messages", "Open reports"} <= ids
    assert "%(counter)s member in all." in ids
    assert "You follow this room now." in python_msgids()
    assert len([m for m in python_msgids() if m in {"Connecting…", "Retry"}]) == 2
    assert len(JS_STRINGS) <= len(python_msgids())


@pytest.mark.parametrize("language", ["ar", "fr", "en", "kab"])
def test_every_catalogue_compiles(language, tmp_path):
    compile_messages = _compile_messages()
    po_path = LOCALE / language / "LC_MESSAGES" / "django.po"
    assert po_path.exists()
    assert compile_messages.problems(polib.pofile(str(po_path))) == []
    mo = compile_messages.compile_one(po_path, tmp_path / "django.mo")
    assert polib.mofile(str(mo)).percent_translated() >= 0


def test_the_compiled_catalogues_are_up_to_date():
    assert _compile_messages().main(["--check"]) == 0


def test_a_placeholder_mismatch_is_refused(tmp_path):
    po = polib.POFile()
    po.append(polib.POEntry(msgid="Hello %(name)s", msgstr="Bonjour %(nom)s"))
    assert _compile_messages().problems(po)


@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_no_frontend_string_is_left_untranslated(language):
    po = polib.pofile(str(LOCALE / language / "LC_MESSAGES" / "django.po"))
    entries = {e.msgid: e for e in po if not e.obsolete}
    wanted = template_msgids() | python_msgids()
    missing = sorted(m for m in wanted if m not in entries)
    assert not missing, f"not in the {language} catalogue (run makemessages): {missing}"
    empty = sorted(
        m
        for m in wanted
        if "fuzzy" in entries[m].flags
        or (entries[m].msgid_plural and not all(entries[m].msgstr_plural.values()))
        or (not entries[m].msgid_plural and not entries[m].msgstr)
    )
    assert not empty, f"untranslated in {language}: {empty}"


def untranslated(po: polib.POFile) -> list[str]:
    """The msgids of `po` with no translation (fuzzy ones count as none)."""
    return sorted(
        e.msgid
        for e in po
        if not e.obsolete
        and e.msgid
        and (
            "fuzzy" in e.flags
            or (e.msgid_plural and not all(e.msgstr_plural.values()))
            or (not e.msgid_plural and not e.msgstr)
        )
    )


def test_the_kabyle_catalogue_is_complete():
    """Every msgid, not only the web pages': a string added anywhere needs its Kabyle."""
    po = polib.pofile(str(LOCALE / "kab" / "LC_MESSAGES" / "django.po"))
    assert po.metadata["Language"] == "kab"
    assert po.metadata["Plural-Forms"] == "nplurals=2; plural=(n > 1);"
    missing = untranslated(po)
    assert not missing, f"untranslated in kab (add them to hub/locale/kab/LC_MESSAGES/django.po): {missing}"
    # Same catalogue as French: makemessages ran for kab too.
    french = {e.msgid for e in polib.pofile(str(LOCALE / "fr" / "LC_MESSAGES" / "django.po")) if not e.obsolete}
    assert french == {e.msgid for e in po if not e.obsolete}


def test_an_untranslated_kabyle_msgid_is_found():
    po = polib.POFile()
    po.append(polib.POEntry(msgid="Voice message", msgstr="Izen s taɣect"))
    po.append(polib.POEntry(msgid="Recording", msgstr=""))
    po.append(polib.POEntry(msgid="Pause", msgstr="Serreḥ", flags=["fuzzy"]))
    assert untranslated(po) == ["Pause", "Recording"]


@pytest.mark.django_db
def test_the_kabyle_page_is_translated_with_its_formats(client, amina):
    from django.utils import formats, translation

    client.force_login(amina)
    client.cookies["django_language"] = "kab"
    body = client.get(reverse("rooms")).content.decode()
    assert '<html lang="kab" dir="ltr">' in body
    assert "Tixxamin-ik·im" in body  # "Your rooms"
    assert 'value="kab"' in body  # the language switch offers it
    blob = re.search(r'<script id="i18n" type="application/json">(.*?)</script>', body).group(1)
    assert json.loads(blob)["connecting"] == "Tuqqna…"
    with translation.override("kab"):
        assert formats.get_format("DECIMAL_SEPARATOR") == ","
        assert formats.get_format("TIME_FORMAT") == "H:i"


@pytest.mark.django_db
def test_the_arabic_page_is_right_to_left_and_translated(client, amina):
    client.force_login(amina)
    client.cookies["django_language"] = "ar"
    body = client.get(reverse("rooms")).content.decode()
    assert '<html lang="ar" dir="rtl">' in body
    assert "غرفك" in body  # "Your rooms"
    blob = re.search(r'<script id="i18n" type="application/json">(.*?)</script>', body).group(1)
    assert json.loads(blob)["connecting"] == "جارٍ الاتصال…"

    client.cookies["django_language"] = "fr"
    body = client.get(reverse("rooms")).content.decode()
    assert '<html lang="fr" dir="ltr">' in body
    assert "Vos salons" in body


@pytest.mark.django_db
def test_the_language_switch_sets_the_language(client, amina):
    client.force_login(amina)
    page = client.get(reverse("rooms")).content.decode()
    assert 'action="/i18n/setlang/"' in page
    response = client.post("/i18n/setlang/", {"language": "ar", "next": "/rooms/"})
    assert response["Location"] == "/rooms/"
    assert '<html lang="ar" dir="rtl">' in client.get("/rooms/").content.decode()


def test_arabic_dates_read_day_month_year_with_algeria_s_24_hour_clock():
    """Django's Arabic has no DATETIME_FORMAT: a replay's date came out in English order,
    "نوفمبر 30, 2026, 10:18 ص". Algeria writes the day first and the 24-hour clock."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from django.template import Context, Template
    from django.utils import translation

    when = datetime(2026, 11, 30, 15, 18, tzinfo=ZoneInfo("Africa/Algiers"))
    template = Template('{{ when|date:"DATETIME_FORMAT" }}|{{ when|date:"DATE_FORMAT" }}|{{ when|time }}')
    with translation.override("ar"):
        full, day, hour = template.render(Context({"when": when})).split("|")
    assert full == "30 نوفمبر 2026 15:18", full
    assert day == "30 نوفمبر 2026", day
    assert hour == "15:18", hour
