"""The directory's search (`registry.search`): trades and wilayas by any of their names,
both scripts, typos, ranking, facets, suggestions; on SQLite and on PostgreSQL.

Personas (tests/registry/conftest.py): amina, a verified potter of Tlemcen; yacine, a
potter of Oran; sofia, a weaver of Alger. Here also nadir, a verified copper artisan
of Tlemcen with an Arabic name, and salim, an unverified copper artisan of Constantine."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from hub.models import Trade
from registry import search, services
from tests import factories
from tests.conftest import skip_or_fail
from tests.registry.conftest import jpeg, wilaya

pytestmark = pytest.mark.django_db


@pytest.fixture
def country(amina, yacine, sofia, karim, reference_data):
    copper = Trade.objects.get(slug="copperware")
    nadir = factories.artisan("nadir", trades=[copper], wilaya_=wilaya(13), display_name="نذير بومدين")
    salim = factories.artisan("salim", trades=[copper], wilaya_=wilaya(25), display_name="Salim Bencheikh")
    services.census_update(user=nadir, commune="Tlemcen")
    services.product_create(user=nadir, title="Plateau en cuivre ciselé")
    services.product_create(user=salim, title="Sinia", description="cuivre jaune martelé")
    for user in (amina, nadir):
        services.verification_submit(user=user, card_number="13/0421-B", issuing_chamber="CAM Tlemcen", card_photo=jpeg())
        services.verification_review(moderator=karim, artisan_id=user.pk, approve=True)
    return {"amina": amina, "yacine": yacine, "sofia": sofia, "nadir": nadir, "salim": salim}


def found(query, **kwargs):
    return [c.username for c in search.artisan_search(query=query, **kwargs).items]


@pytest.mark.parametrize("query", ["nhas tlemcen", "نحاس", "cuivre", "النحاسيات", "Dinanderie", "copper tlemcen"])
def test_the_copper_artisan_of_tlemcen_is_found_in_every_script(country, query):
    assert found(query)[0] == "nadir"


def test_a_wilaya_by_any_of_its_names_and_its_code(country):
    for query in ("tlemcen", "تلمسان", "Tlemcen", "13", "tlemcem"):
        assert set(found(query)) >= {"amina", "nadir"}, query
        assert "yacine" not in found(query), query


def test_names_across_scripts_and_typos(country):
    assert found("amine") == ["amina"]
    assert found("أمينة") == ["amina"]
    assert found("nadir") == ["nadir"]
    assert found("belkasem") == ["amina"]
    assert found("soufia") == ["sofia"] or found("sofia") == ["sofia"]


def test_products_and_communes_are_searched(country):
    assert found("plateau") == ["nadir"]
    assert found("martelé") == ["salim"] and found("martele") == ["salim"]
    page = search.artisan_search(query="cuivre")
    assert {p.title for p in page.products} == {"Plateau en cuivre ciselé", "Sinia"}


def test_verified_first_then_nearby(country, reference_data):
    # Both copper artisans match "cuivre"; nadir is verified.
    assert found("cuivre") == ["nadir", "salim"]
    # Among unverified potters, one of the viewer's wilaya comes first.
    oran_viewer = factories.artisan("omar2", wilaya_=wilaya(31))
    tlemcen_potter = factories.artisan("hakim", trades=[Trade.objects.get(slug="poterie-test")], wilaya_=wilaya(13))
    assert found("poterie", viewer=oran_viewer, verified=False)[0] == "yacine"
    assert found("poterie", verified=False)[0] == tlemcen_potter.username  # newest without a viewer


def test_every_word_must_match_or_the_page_says_it_relaxed(country):
    # No copper artisan in Oran: those matching either word, said so.
    page = search.artisan_search(query="cuivre oran")
    assert page.relaxed and {c.username for c in page.items} >= {"nadir", "salim", "yacine"}
    strict = search.artisan_search(query="cuivre constantine")
    assert [c.username for c in strict.items] == ["salim"] and not strict.relaxed


def test_facets_count_the_results(country):
    page = search.artisan_search(query="tlemcen")
    assert page.facets is not None
    # amina, nadir and karim (a moderator) live in Tlemcen.
    assert page.facets.total == 3 and page.facets.verified == 2 and page.facets.with_products == 1
    assert {f.label for f in page.facets.wilayas} == {"13 Tlemcen"}
    assert search.artisan_search(query="tlemcen", has_products=True).items[0].username == "nadir"


def test_suggestions_name_trades_wilayas_and_artisans(country, client):
    kinds = {(s.kind, s.label) for s in search.search_suggestions(query="tlem")}
    assert ("wilaya", "13 Tlemcen") in kinds
    assert any(kind == "trade" for kind, _ in {(s.kind, s.label) for s in search.search_suggestions(query="nhas")})
    body = client.get(reverse("registry_directory_suggest"), {"q": "amin"}).json()
    assert {"kind": "artisan", "label": "Amina Belkacem", "url": "/artisans/amina/"} in body["items"]
    assert client.get(reverse("registry_directory_suggest"), {"q": "x" * 5000}).status_code == 200


def test_the_page_shows_results_before_filters(country, client):
    html = client.get(reverse("registry_directory"), {"q": "nhas tlemcen"}).content.decode()
    assert html.index("artisan-result") < html.index("class=\"card filters\"")
    assert "نذير بومدين" in html and "Plateau en cuivre ciselé" in html


def test_like_wildcards_in_a_query_are_literal(country):
    assert found("%") == [] and found("_") == []


def test_the_keys_are_indexed_on_postgresql(country):
    if connection.vendor != "postgresql":
        skip_or_fail("trigram indexes exist on PostgreSQL only (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM hub_artisanprofile WHERE search_fold LIKE '%%cuivre%%'")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "hub_artisanprofile_search_fold_trgm" in plan, plan


def _document(user):
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_trades, search_commune FROM hub_artisanprofile WHERE user_id = %s", [user.pk])
        return cursor.fetchone()


def test_the_search_document_follows_trades_and_commune_on_postgresql(country):
    """Migration 0010: an artisan's trades and commune sit on his row, kept by triggers."""
    if connection.vendor != "postgresql":
        skip_or_fail("the search document exists on PostgreSQL only (set DATABASE_URL)")
    amina = country["amina"]
    copper = Trade.objects.get(slug="copperware")
    pottery_id = amina.profile.trades.get().pk
    assert _document(amina) == ([pottery_id], "")
    amina.profile.trades.add(copper)
    services.census_update(user=amina, commune="Nedroma")
    assert _document(amina) == (sorted([pottery_id, copper.pk]), "nedroma")
    assert "amina" in found("nedroma") and "amina" in found("cuivre")
    amina.profile.trades.remove(copper)
    assert _document(amina) == ([pottery_id], "nedroma")
    assert "amina" not in found("cuivre", wilaya_id=wilaya(13).pk)
    assert found("", trade_id=copper.pk, wilaya_id=wilaya(13).pk) == ["nadir"]


def test_the_trigram_indexes_keep_no_pending_list_on_postgresql(country):
    """Rows written in bulk in GIN's pending list are read in full by every search until a vacuum."""
    if connection.vendor != "postgresql":
        skip_or_fail("trigram indexes exist on PostgreSQL only (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' AND c.relname LIKE '%%search%%'"
            " OR c.relname = 'registry_census_commune_fold_trgm'"
        )
        options = dict(cursor.fetchall())
    assert len(options) == 6, options
    assert all(opts == ["fastupdate=off"] for opts in options.values()), options


def test_typos_are_tolerated_for_words_no_one_writes_that_way(country):
    """A word some bio holds as typed is matched as typed (no typo pass for it); a word no one
    writes that way is matched within a typo."""
    factories.artisan("rym", wilaya_=wilaya(16), display_name="Rym Tapissière")
    assert found("tapissiere") == ["rym"]
    assert found("tapisiere") == ["rym"]  # a typo still finds her
    assert found("tapissiere", wilaya_id=wilaya(13).pk) == []


def _statements(client, params):
    from django.test.utils import CaptureQueriesContext

    client.get(reverse("registry_directory"), params)  # the reference data read once per process
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(reverse("registry_directory"), params).status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_a_search_page_costs_a_few_statements_on_postgresql(country, client):
    """Each statement is a round trip, and on a loaded machine a wait for the CPU: a search
    that finds costs its candidates, its cards, its pieces and their photos; one that falls
    through every pass costs two statements more per pass, whatever the number of words."""
    if connection.vendor != "postgresql":
        skip_or_fail("the statement counts are PostgreSQL's (set DATABASE_URL)")
    assert len(_statements(client, {"q": "cuivre"})) <= 4
    assert len(_statements(client, {})) <= 2
    sql = _statements(client, {"q": "nhas tlemcen zzzz", "wilaya": wilaya(16).pk})
    assert len(sql) <= 8, sql
    assert not any(s.startswith(("SET", "BEGIN", "COMMIT")) for s in sql)


def test_the_planner_settings_the_search_relies_on_are_every_sessions(country):
    if connection.vendor != "postgresql":
        skip_or_fail("PostgreSQL's settings (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather'),"
                       " current_setting('random_page_cost')")
        assert cursor.fetchone() == ("off", "0", "1.1")


def test_labels_are_in_the_language_of_the_page_and_follow_a_renamed_trade(country):
    from django.utils import translation

    copper = Trade.objects.get(slug="copperware")
    copper.name_ber = "Tanḥast"
    copper.save()
    with translation.override("kab"):
        page = search.artisan_search(query="nhas")
        assert page.understood_trades == ["Tanḥast"]
        assert any("Tanḥast" in card.trades for card in page.items)
        assert "Tanḥast" in [f.label for f in page.facets.trades]
    with translation.override("ar"):
        assert "النحاسيات" in search.artisan_search(query="cuivre").understood_trades
