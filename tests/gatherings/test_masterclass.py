"""A gathering held as a masterclass: its one or two presenters, set in the gathering's
form, and the part each member gets in its meeting (signaling's join ticket)."""

from __future__ import annotations

import pytest

from gatherings import selectors, services
from gatherings.models import Gathering
from hub.errors import ErrorCode, HirfaError
from signaling import selectors as signaling_selectors
from tests.gatherings.test_views import client_for, fields_of


def _refused(**kw) -> HirfaError:
    with pytest.raises(HirfaError) as err:
        services.gathering_schedule(**kw)
    return err.value


def test_a_masterclass_has_one_or_two_presenters(schedule, amina, lina, yacine, karim, tlemcen_room, future):
    g = schedule(masterclass=True, presenter_ids=[amina.pk, lina.pk])
    assert g.masterclass and set(g.presenters.all()) == {amina, lina}
    base = {"user": karim, "room_id": tlemcen_room.pk, "title": "X", "start": future, "duration": g.duration}
    for kw in (
        {"masterclass": True},
        {"masterclass": True, "presenter_ids": [amina.pk, lina.pk, yacine.pk]},
        {"masterclass": False, "presenter_ids": [amina.pk]},
        {"masterclass": True, "presenter_ids": [999_999]},
    ):
        err = _refused(**base, **kw)
        assert err.code == ErrorCode.INVALID and err.details["field"] == "presenters", kw
    assert Gathering.objects.count() == 1


def test_update_changes_the_presenters_and_turning_it_off_drops_them(schedule, karim, amina, lina):
    g = schedule(masterclass=True, presenter_ids=[amina.pk])
    services.gathering_update(user=karim, gathering_id=g.pk, presenter_ids=[lina.pk])
    assert list(Gathering.objects.get(pk=g.pk).presenters.all()) == [lina]
    with pytest.raises(HirfaError):
        services.gathering_update(user=karim, gathering_id=g.pk, presenter_ids=[])
    services.gathering_update(user=karim, gathering_id=g.pk, masterclass=False)
    g = Gathering.objects.get(pk=g.pk)
    assert not g.masterclass and not g.presenters.exists()


def test_in_its_meeting_presenters_present_and_the_others_listen_hosts_aside(schedule, karim, amina, lina):
    g = schedule(masterclass=True, presenter_ids=[lina.pk])
    occ = selectors.gathering_occurrences(gathering=g)[0]
    meeting_id = services.occurrence_meeting_open(
        user=amina, gathering_id=g.pk, original_start=occ.original_start, now=occ.start
    ).meeting_id
    lina_t = signaling_selectors.meeting_join_ticket(user=lina, meeting_id=meeting_id)
    amina_t = signaling_selectors.meeting_join_ticket(user=amina, meeting_id=meeting_id)
    karim_t = signaling_selectors.meeting_join_ticket(user=karim, meeting_id=meeting_id)
    assert (lina_t.presenter, lina_t.listener) == (True, False)
    assert (amina_t.presenter, amina_t.listener) == (False, True)
    assert (karim_t.host, karim_t.presenter, karim_t.listener) == (True, False, False)


def test_an_ordinary_gatherings_meeting_has_no_listeners(schedule, amina):
    g = schedule()
    occ = selectors.gathering_occurrences(gathering=g)[0]
    meeting_id = services.occurrence_meeting_open(
        user=amina, gathering_id=g.pk, original_start=occ.original_start, now=occ.start
    ).meeting_id
    ticket = signaling_selectors.meeting_join_ticket(user=amina, meeting_id=meeting_id)
    assert (ticket.presenter, ticket.listener) == (False, False)


@pytest.mark.parametrize("lang", ["ar", "fr", "kab"])
def test_the_form_sets_a_masterclass_and_the_page_names_its_presenters(schedule, karim, amina, lina, lang):
    g = schedule()
    mod = client_for(karim, lang)
    form = mod.get(f"/gatherings/{g.pk}/edit").content.decode()
    assert 'name="masterclass"' in form and 'name="presenters"' in form
    bad = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, masterclass="on", presenters="nobody-here"))
    assert bad.status_code == 200 and "nobody-here" in bad.content.decode()
    none = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, masterclass="on", presenters=""))
    assert none.status_code == 200 and not Gathering.objects.get(pk=g.pk).masterclass
    ok = mod.post(f"/gatherings/{g.pk}/edit", fields_of(g, masterclass="on", presenters=f"{lina.username}"))
    assert ok.status_code == 302, ok.content.decode()[:2000]
    g = Gathering.objects.get(pk=g.pk)
    assert g.masterclass and list(g.presenters.all()) == [lina]
    page = client_for(amina, lang).get(f"/gatherings/{g.pk}/").content.decode()
    assert "data-masterclass" in page and lina.display_name in page
    again = mod.get(f"/gatherings/{g.pk}/edit").content.decode()
    assert f'value="{lina.username}"' in again
