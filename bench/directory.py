"""Directory and storefront benchmark on PostgreSQL.

    .venv/bin/python bench/directory.py                 # 100,000 artisans, 300,000 products
    .venv/bin/python bench/directory.py --json
    .venv/bin/python bench/directory.py --artisans 10000 --products 30000 --requests 100

It uses a dedicated database (``hirfa_bench_directory``, or ``BENCH_DIRECTORY_DB``,
on the PostgreSQL of ``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432``),
created and migrated when missing and filled with bulk inserts only when it
does not yet hold the wanted number of artisans (``--fresh`` drops it first).
Generation: artisans with French or Arabic names, 1–2 trades, a wilaya,
languages, a bio; 30% verified; products spread over the artisans with
Zipf-like weights (a few large shops, many small ones).

Then, in this process, Django's test client requests real pages (URL routing,
middleware, selectors, templates) and times each one:

- search: ``/artisans/`` with a mix of queries (French and Arabic names and
  words, Darija in Latin letters, trade and wilaya names, typos), trade,
  wilaya, language and verification filters, and deep pages;
- the same queries through the search selector (``search_query_*``) and
  through the directory's search before issue 14 (``baseline_query_*``:
  French+Arabic full-text over name and bio, newest first, no trades, wilayas,
  transliteration, typos, ranking, products or facets), one after the other
  in the same process, so the ratio holds on a noisy machine;
- storefront: ``/artisans/<username>/`` of random artisans, the largest shops
  included.

- relevance: the queries of ``bench/relevance_set.py`` (at least 50, in Arabic,
  French and Darija) on a database holding only its corpus
  (``hirfa_bench_relevance``, in a child process): the share whose right
  answer is among the first three results.

It prints p50 and p95 of each (target p95 < 50 ms) and the relevance; with
``--json`` one object with ``search_p50_ms``, ``search_p95_ms``,
``search_query_p95_ms``, ``baseline_query_p95_ms``, ``storefront_p50_ms``,
``storefront_p95_ms``, ``relevance_top3_pct`` and the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DIRECTORY_DB", "hirfa_bench_directory")
FIRST_FR = ["Amina", "Karim", "Yacine", "Sofia", "Nadia", "Omar", "Lydia", "Mourad", "Samira", "Rachid",
            "Farid", "Nassima", "Djamel", "Houria", "Malik", "Zineb", "Salim", "Fatiha", "Walid", "Meriem"]
LAST_FR = ["Belkacem", "Haddad", "Benali", "Bouzid", "Cherif", "Mansouri", "Ait Ahmed", "Saidi", "Kaci",
           "Brahimi", "Toumi", "Ziani", "Hamidi", "Larbi", "Mebarki", "Ouali", "Rahmani", "Slimani"]
FIRST_AR = ["أمينة", "كريم", "ياسين", "صوفيا", "نادية", "عمر", "سميرة", "رشيد", "فريد", "مريم", "سليم", "زينب"]
LAST_AR = ["بلقاسم", "حداد", "بن علي", "بوزيد", "شريف", "منصوري", "سعيدي", "براهيمي", "زياني", "حميدي"]
WORDS_FR = ["poterie", "tapis", "cuivre", "argent", "cuir", "broderie", "bois", "vannerie", "verre",
            "tissage", "bijoux", "céramique", "traditionnel", "berbère", "atelier", "familial"]
WORDS_AR = ["فخار", "زرابي", "نحاس", "فضة", "جلد", "تطريز", "خشب", "حلفاء", "زجاج", "نسيج", "تقليدي"]
# What buyers also type: Darija in Latin letters, trades and wilayas by name, typos, two words.
QUERIES_MORE = ["nhas tlemcen", "fekhar", "zerbia ghardaia", "cuivre", "tlemcen", "تلمسان", "وهران",
                "tapis tizi ouzou", "amine", "fatma", "poterei", "bijoux argent", "بلقاسم حداد", "karim oran"]
BASELINE_VECTOR_SQL = (
    "(to_tsvector('french'::regconfig, \"hub_artisanprofile\".\"display_name\" || ' ' || \"hub_artisanprofile\".\"bio\")"
    " || to_tsvector('arabic'::regconfig, \"hub_artisanprofile\".\"display_name\" || ' ' || \"hub_artisanprofile\".\"bio\"))"
)
BASELINE_QUERY_SQL = (
    "(websearch_to_tsquery('french'::regconfig, %s) || websearch_to_tsquery('arabic'::regconfig, %s))"
)
RELEVANCE_DB = os.environ.get("BENCH_RELEVANCE_DB", "hirfa_bench_relevance")


def _connect_url(base: str) -> str:
    return f"{base.rstrip('/')}/{DB_NAME}"


def ensure_database(base: str, fresh: bool, name: str = DB_NAME) -> None:
    import psycopg

    with psycopg.connect(f"{base.rstrip('/')}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(base: str, name: str = DB_NAME) -> None:
    os.environ["DATABASE_URL"] = f"{base.rstrip('/')}/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    os.environ["HIRFA_DEBUG"] = "0"
    os.environ["HIRFA_EMBEDDED_WORKER"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _zipf_weights(n: int, rng: random.Random) -> list[float]:
    weights = [1.0 / (i + 1) ** 0.8 for i in range(n)]
    rng.shuffle(weights)
    return weights


def generate(artisans: int, products: int, seed: int, log) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from hub.models import ArtisanProfile, Trade, User, Wilaya
    from registry.models import Census, Product, VerificationStatus

    have = ArtisanProfile.objects.count()
    if have >= artisans and Product.objects.count() >= products:
        log(f"reusing {have} artisans and {Product.objects.count()} products")
        return
    if have:
        raise SystemExit("the bench database holds a different data set: run with --fresh")
    rng = random.Random(seed)
    wilayas = list(Wilaya.objects.filter(parent__isnull=True).values_list("pk", flat=True))
    trades = list(Trade.objects.values_list("pk", flat=True))
    now = timezone.now()
    batch = 5000
    started = time.perf_counter()
    for start in range(0, artisans, batch):
        count = min(batch, artisans - start)
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(username=f"artisan{start + i:06d}", password="!", email="",
                         date_joined=now - timedelta(days=rng.randint(0, 720)))
                    for i in range(count)
                ]
            )
            profiles = []
            for user in users:
                arabic = rng.random() < 0.4
                name = (
                    f"{rng.choice(FIRST_AR)} {rng.choice(LAST_AR)}" if arabic
                    else f"{rng.choice(FIRST_FR)} {rng.choice(LAST_FR)}"
                )
                words = rng.sample(WORDS_AR if arabic else WORDS_FR, 4)
                langs = ["ar"] + (["fr"] if rng.random() < 0.6 else []) + (["ber"] if rng.random() < 0.2 else [])
                profiles.append(
                    ArtisanProfile(user=user, display_name=name, wilaya_id=rng.choice(wilayas),
                                   languages=langs, bio=" ".join(words))
                )
            profiles = ArtisanProfile.objects.bulk_create(profiles)
            through = ArtisanProfile.trades.through
            links = []
            for profile in profiles:
                for trade_id in rng.sample(trades, rng.choice((1, 1, 2))):
                    links.append(through(artisanprofile_id=profile.pk, trade_id=trade_id))
            through.objects.bulk_create(links)
            Census.objects.bulk_create(
                [
                    Census(user=user, status=VerificationStatus.VERIFIED if rng.random() < 0.3 else VerificationStatus.NONE,
                           commune="", card_number=f"{rng.randint(1, 58):02d}/{rng.randint(1000, 99999)}")
                    for user in users
                ]
            )
        log(f"artisans: {start + count}/{artisans}")
    user_ids = list(User.objects.filter(username__startswith="artisan").values_list("pk", flat=True))
    weights = _zipf_weights(len(user_ids), rng)
    owners = rng.choices(user_ids, weights=weights, k=products)
    for start in range(0, products, batch):
        rows = []
        for owner in owners[start : start + batch]:
            arabic = rng.random() < 0.4
            words = rng.sample(WORDS_AR if arabic else WORDS_FR, 3)
            rows.append(
                Product(artisan_id=owner, title=" ".join(words), description=" ".join(words * 3),
                        price_dzd=None if rng.random() < 0.2 else rng.randint(500, 90000),
                        materials=words[0], labels=["artisanat_algerie"] if rng.random() < 0.3 else [],
                        status="published" if rng.random() < 0.95 else "draft")
            )
        Product.objects.bulk_create(rows)
        log(f"products: {min(start + batch, products)}/{products}")
    with connection.cursor() as cursor:
        # What a database in service looks like after autovacuum: statistics, visibility maps.
        cursor.execute("VACUUM ANALYZE")
    log(f"generated in {time.perf_counter() - started:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def baseline_search(params: dict[str, str]) -> list[int]:
    """The directory's query before issue 14, for comparison: full-text over name and bio, filters, newest first."""
    from django.db.models import BooleanField, Exists, OuterRef
    from django.db.models.expressions import RawSQL

    from hub.models import ArtisanProfile
    from registry.models import Census, VerificationStatus

    qs = ArtisanProfile.objects.filter(user__is_active=True)
    if "wilaya" in params:
        qs = qs.filter(wilaya_id=int(params["wilaya"]))
    if "trade" in params:
        qs = qs.filter(Exists(ArtisanProfile.trades.through.objects.filter(
            artisanprofile_id=OuterRef("pk"), trade_id=int(params["trade"]))))
    if "language" in params:
        qs = qs.filter(languages__contains=[params["language"]])
    if "verified" in params:
        qs = qs.filter(Exists(Census.objects.filter(user_id=OuterRef("user_id"), status=VerificationStatus.VERIFIED)))
    if params.get("q"):
        q = params["q"]
        qs = qs.filter(RawSQL(f"{BASELINE_VECTOR_SQL} @@ {BASELINE_QUERY_SQL}", (q, q), output_field=BooleanField()))
    page = int(params.get("page", "1"))
    rows = list(
        qs.select_related("wilaya", "user", "user__census").prefetch_related("trades")
        .order_by("-id")[(page - 1) * 20 : page * 20 + 1]
    )
    return [r.pk for r in rows]


def selector_search(params: dict[str, str]) -> list[int]:
    from registry.search import artisan_search

    page = artisan_search(
        query=params.get("q", ""), trade_id=int(params["trade"]) if "trade" in params else None,
        wilaya_id=int(params["wilaya"]) if "wilaya" in params else None, language=params.get("language"),
        verified=True if "verified" in params else None, page=int(params.get("page", "1")),
    )
    return [c.user_id for c in page.items]


def relevance(base: str) -> dict[str, object]:
    """The relevance set on its own database, in a child process (Django holds one database per process)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--relevance-only"], check=True, capture_output=True, text=True,
        env={**os.environ, "BENCH_DATABASE_URL": base},
    )
    return json.loads(out.stdout)


def relevance_only(base: str) -> None:
    ensure_database(base, fresh=True, name=RELEVANCE_DB)
    setup_django(base, name=RELEVANCE_DB)
    from bench.relevance_set import corpus_load, relevance_measure

    corpus_load()
    result = relevance_measure()
    print(json.dumps({
        "relevance_top3_pct": result.top3_pct, "relevance_queries": result.total,
        "relevance_by_script": {k: f"{h}/{n}" for k, (h, n) in result.by_script.items()},
        "relevance_misses": [q for q, _found in result.misses],
    }))


def measure(requests: int, seed: int) -> dict[str, object]:
    from django.db.models import Count
    from django.test import Client

    from hub.models import ArtisanProfile, Trade, Wilaya

    rng = random.Random(seed + 1)
    client = Client()
    wilayas = list(Wilaya.objects.filter(parent__isnull=True).values_list("pk", flat=True))
    trades = list(Trade.objects.values_list("pk", flat=True))
    usernames = list(
        ArtisanProfile.objects.order_by("?").values_list("user__username", flat=True)[: requests * 2]
    )
    big_shops = list(
        ArtisanProfile.objects.annotate(n=Count("user__products")).order_by("-n")
        .values_list("user__username", flat=True)[:10]
    )

    def search_params() -> dict[str, str]:
        kind = rng.random()
        params: dict[str, str] = {}
        if kind < 0.45:
            params["q"] = rng.choice(FIRST_FR + LAST_FR + FIRST_AR + LAST_AR + WORDS_FR + WORDS_AR)
        elif kind < 0.6:
            params["q"] = rng.choice(QUERIES_MORE)
        if rng.random() < 0.4:
            params["wilaya"] = str(rng.choice(wilayas))
        if rng.random() < 0.4:
            params["trade"] = str(rng.choice(trades))
        if rng.random() < 0.2:
            params["language"] = rng.choice(["fr", "ber"])
        if rng.random() < 0.2:
            params["verified"] = "1"
        if rng.random() < 0.1:
            params["page"] = str(rng.randint(2, 10))
        return params

    def timed(path: str, params: dict[str, str] | None = None) -> float:
        t0 = time.perf_counter()
        response = client.get(path, params or {})
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} {params} answered {response.status_code}")
        return elapsed

    for _ in range(20):  # warm-up: templates, connections, caches
        timed("/artisans/", search_params())
        timed(f"/artisans/{rng.choice(usernames)}/")
    search_set = [search_params() for _ in range(requests)]
    search = [timed("/artisans/", params) for params in search_set]

    def timed_call(fn, params: dict[str, str]) -> float:
        t0 = time.perf_counter()
        fn(params)
        return (time.perf_counter() - t0) * 1000

    new_query, old_query = [], []
    for params in search_set:  # interleaved: the same load for both
        new_query.append(timed_call(selector_search, params))
        old_query.append(timed_call(baseline_search, params))
    store_names = [rng.choice(big_shops) if rng.random() < 0.1 else rng.choice(usernames) for _ in range(requests)]
    storefront = [timed(f"/artisans/{name}/") for name in store_names]
    return {
        "search_p50_ms": round(statistics.median(search), 2),
        "search_p95_ms": round(percentile(search, 95), 2),
        "search_query_p50_ms": round(statistics.median(new_query), 2),
        "search_query_p95_ms": round(percentile(new_query, 95), 2),
        "baseline_query_p50_ms": round(statistics.median(old_query), 2),
        "baseline_query_p95_ms": round(percentile(old_query, 95), 2),
        "storefront_p50_ms": round(statistics.median(storefront), 2),
        "storefront_p95_ms": round(percentile(storefront, 95), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artisans", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--relevance-only", action="store_true", help="only the relevance set, as JSON")
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
    if args.relevance_only:
        relevance_only(base)
        return
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    ensure_database(base, args.fresh)
    setup_django(base)
    generate(args.artisans, args.products, args.seed, log)
    result = measure(args.requests, args.seed)
    result.update(relevance(base))
    from hub.models import ArtisanProfile
    from registry.models import Product

    result.update(
        {"artisans": ArtisanProfile.objects.count(), "products": Product.objects.count(), "requests": args.requests}
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(f"artisans {result['artisans']}, products {result['products']}, {args.requests} requests each")
        print(f"directory search  p50 {result['search_p50_ms']:.1f} ms  p95 {result['search_p95_ms']:.1f} ms")
        print(f"  search selector p50 {result['search_query_p50_ms']:.1f} ms  p95 {result['search_query_p95_ms']:.1f} ms")
        print(f"  before issue 14 p50 {result['baseline_query_p50_ms']:.1f} ms  p95 {result['baseline_query_p95_ms']:.1f} ms"
              " (full-text on name and bio only)")
        print(f"storefront        p50 {result['storefront_p50_ms']:.1f} ms  p95 {result['storefront_p95_ms']:.1f} ms")
        print("target: p95 < 50 ms")
        print(f"relevance: {result['relevance_top3_pct']} % of {result['relevance_queries']} queries have a right answer"
              f" in the top 3 {result['relevance_by_script']} (target 90 %); missed: {result['relevance_misses']}")


if __name__ == "__main__":
    main()
