"""The gatherings' CSV exports, read as a spreadsheet would."""

from __future__ import annotations

import csv
import io

import pytest

from gatherings import selectors, services
from tests.gatherings.test_views import client_for


@pytest.mark.django_db
def test_the_attendees_export_neutralises_a_hostile_name(schedule, karim, amina):
    amina.profile.display_name = '=HYPERLINK("http://evil.example","Amina")'
    amina.profile.save()
    g = schedule()
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    key = selectors.gathering_occurrences(gathering=g)[0].key
    body = client_for(karim).get(f"/gatherings/{g.pk}/occurrences/{key}/attendees.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1][0] == "'=HYPERLINK(\"http://evil.example\",\"Amina\")"


@pytest.mark.django_db
def test_a_title_in_a_notification_sentence_is_isolated(schedule, karim, amina, monkeypatch):
    from types import SimpleNamespace

    from django.db import transaction

    from gatherings import notify, tasks

    sent = []
    monkeypatch.setattr(tasks, "email_send", SimpleNamespace(enqueue=lambda **kw: sent.append(kw)))
    g = schedule(title="Atelier \u202eevil")
    with transaction.atomic():
        notify.member_notify(user=amina, gathering=g, event="cancelled", original_start=None, start=None)
    assert "\u2068Atelier evil\u2069" in sent[0]["subject"]
