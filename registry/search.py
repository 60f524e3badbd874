"""Reads of the directory's search: one query over artisans and their products.

A query is first understood against the reference data: each word that names
a trade or a wilaya in any of their languages (folded, by phonetic key, or
with a typo) also matches artisans of that trade or wilaya. Every word must
then match the artisan one way or another: his display name or bio (folded,
or by phonetic key across Arabic and Latin letters, or within a typo on
PostgreSQL), his commune, one of his published products, or a trade or
wilaya it names. When no artisan matches every word, the artisans matching
any of them are shown and the page says so (`relaxed`).

Ranking: artisans whose name, trade and wilaya the query names come first,
then verified artisans, then those of the viewer's wilaya and its
neighbours, then the newest. Facets (trades, wilayas, verified, with
products) count the first `RANKED_MAX` results, which is also how deep the
pages go: past that, the query is refined, not paged.

On PostgreSQL the keys are generated columns with trigram indexes
(migration `registry/0004_search_keys`), and an artisan's trades and commune
are copied onto his row by triggers (`registry/0010_search_document`), so that
every key but his products is a condition on one row: the planner either ORs
the indexes (rare words) or reads the newest artisans and stops at the last
candidate (common words). Typos (`<%`) and products are read as sets through
their indexes; products only of the artisans a wilaya or trade filter keeps.
On SQLite (the embedded default) the same functions of `registry.search_text`
are called on the raw columns, and trades and communes through subqueries.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, TypeVar

from django.contrib.postgres.fields import ArrayField
from django.db import connection, connections, router
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.lookups import Contains
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import ArtisanProfile, Trade, User, Wilaya
from registry.models import Census, Product, VerificationStatus
from registry.search_text import close_enough, fold, skeleton, words
from registry.selectors import PAGE_SIZE, PUBLIC_STATUSES, QUERY_MAX_CHARS, ArtisanCard

RANKED_MAX = 200
CANDIDATES = 500
T = TypeVar("T")
PRODUCTS_SHOWN = 8
SUGGESTIONS_MAX = 8
TYPO_MIN_CHARS = 4
IDS_MAX = 5000
STOP_WORDS = frozenset(
    ["de", "du", "des", "la", "le", "les", "l", "d", "et", "en", "a", "au", "aux", "un", "une", "the", "of", "and", "in", "el", "al", "في", "من", "و", "على", "الى", "عن"]
)


# --- understanding a query ---------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """A trade or a wilaya and the keys it is known by in every language; its name, label
    (a wilaya's has its code) and Tifinagh name as the pages show them."""

    pk: int
    label: str
    words: frozenset[str]
    skeletons: frozenset[str]
    name: str = ""
    tifinagh: str = ""
    code: int | None = None
    current: bool = True  # a wilaya in force (not one split off later, not a past one)

    def __str__(self) -> str:
        return self.label

    def matches(self, term: str, key: str) -> bool:
        if term in self.words or any(len(term) >= 3 and w.startswith(term) for w in self.words):
            return True
        if key in self.skeletons or (len(key) >= 3 and any(s.startswith(key) for s in self.skeletons)):
            return True
        return any(close_enough(term, w) for w in self.words)


def _named(pk: int, label: str, names: list[str], **shown: Any) -> Named:
    found: set[str] = set()
    for name in names:
        for w in words(name):
            found.add(w)
            if w.startswith("ال") and len(w) > 3:
                found.add(w[2:])
    return Named(
        pk=pk, label=label, words=frozenset(found),
        skeletons=frozenset(s for name in names for s in skeleton(name).split() if len(s) >= 2),
        **shown,
    )


@lru_cache(maxsize=8)
def _reference(language: str, version: tuple[object, ...]) -> Reference:
    """Trades and wilayas with their keys, rebuilt when `version` (their counts and last ids) moves."""
    del version
    trades = tuple(
        _named(t.pk, t.localized_name(language), [t.name_fr, t.name_ar, t.name_en, t.name_ber, t.slug.replace("-", " ")],
               name=t.localized_name(language), tifinagh=t.tifinagh)
        for t in Trade.objects.all()
    )
    wilayas = tuple(
        _named(w.pk, wilaya_label(w, language), [w.name_fr, w.name_ar, w.name_en, w.name_ber, str(w.code)],
               name=w.localized_name(language), tifinagh=w.tifinagh, code=w.code,
               current=w.parent_id is None)
        for w in Wilaya.objects.all()
    )
    return Reference(trades=trades, wilayas=wilayas)


#: How many words a `Reference` remembers having understood (then it starts again).
UNDERSTOOD_MAX = 5000


@dataclass(frozen=True, eq=False)
class Reference:
    """The trades and wilayas in one language (`trades, wilayas = reference`), and the
    words already understood against them: buyers type the same few hundred words, and
    matching one against every name in Python costs more than the statement it leads to."""

    trades: tuple[Named, ...]
    wilayas: tuple[Named, ...]
    understood: dict[str, Term] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[Named, ...]]:
        return iter((self.trades, self.wilayas))

# How long a process trusts the reference data it read (per database) before it checks
# again whether trades or wilayas changed: a search then costs no statement for them. A
# change in this process (admin, data migration) is seen at once (`reference_changed`).
REFERENCE_CHECK_SECONDS = 30.0
_versions: dict[str, tuple[float, tuple[object, ...]]] = {}


def reference_changed(**_kwargs: object) -> None:
    """Forget when the reference data was last checked (a trade or a wilaya was written)."""
    _versions.clear()


def _reference_version(alias: str) -> tuple[object, ...]:
    checked = _versions.get(alias)
    now = time.monotonic()
    if checked is not None and now - checked[0] < REFERENCE_CHECK_SECONDS:
        return checked[1]
    trade, wilaya = Trade._meta.db_table, Wilaya._meta.db_table
    with connections[alias].cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {trade}), (SELECT MAX(id) FROM {trade}),"
            f" (SELECT COUNT(*) FROM {wilaya}), (SELECT MAX(id) FROM {wilaya})"
        )
        version = tuple(cursor.fetchone() or ())
    _versions[alias] = (now, version)
    return version


def reference_keys() -> Reference:
    """The trades and wilayas with their keys in the active language (one cheap query, at
    most every `REFERENCE_CHECK_SECONDS`, to see whether they changed)."""
    alias = router.db_for_read(Trade)
    # The whole code ("kab"): its first two letters name no language.
    language = (get_language() or "fr").split("-")[0]
    return _reference(language, (alias, *_reference_version(alias)))


def wilaya_label(wilaya: Wilaya, language: str | None = None) -> str:
    """The one way a wilaya is written everywhere: its two-digit code and its name."""
    return f"{wilaya.code:02d} {wilaya.localized_name(language)}"


def sorted_by_name(items: Iterable[T]) -> list[T]:
    """Trades (or anything named) in the order of their name in the active language:
    accents and Arabic letter forms folded, so every page sorts them the same way."""
    return sorted(items, key=lambda item: fold(str(item)))


@dataclass(frozen=True)
class Term:
    """One word of a query: folded, its phonetic key, and the trades and wilayas it names."""

    text: str
    key: str
    trade_ids: frozenset[int]
    wilaya_ids: frozenset[int]
    # False when some artisan's name or bio holds the word as typed: no typo to tolerate
    # (a word as common as "tapis" is within a typo of 15,000 bios).
    misspelt: bool = True
    # On PostgreSQL, read before the pass that needs them: the artisans within a typo of the
    # word, and those (of the filters' scope) who sell a piece holding it. A list of ids lets
    # the planner count them; a subquery in an OR counts as half the table, and the plan read
    # all 100,000 artisans to find none.
    typo_ids: tuple[int, ...] | None = None
    maker_ids: tuple[int, ...] | None = None


def query_terms(query: str, reference: Reference | None = None) -> list[Term]:
    """The words of `query` worth matching (stop words dropped unless nothing else is left)."""
    found = words(query)
    kept = [w for w in found if w not in STOP_WORDS] or found
    reference = reference or reference_keys()
    trades, wilayas = reference
    terms = []
    for word in dict.fromkeys(kept):
        term = reference.understood.get(word)
        if term is None:
            key = skeleton(word)
            term = Term(
                text=word,
                key=key if " " not in key else "",
                trade_ids=frozenset(t.pk for t in trades if t.matches(word, key)),
                wilaya_ids=frozenset(w.pk for w in wilayas if w.matches(word, key)),
            )
            if len(reference.understood) >= UNDERSTOOD_MAX:
                reference.understood.clear()
            reference.understood[word] = term
        terms.append(term)
    return terms


# --- SQL over the keys -------------------------------------------------------------------


def _postgres() -> bool:
    return connection.vendor == "postgresql"


class SearchKey(Expression):
    """A search key of a row: on PostgreSQL the stored generated `column` (trigram-indexed),
    elsewhere `function` over the `sources` fields of the same row, as the column is defined
    (migration `registry/0004_search_keys`). Works under any table alias (subqueries)."""

    output_field = TextField()

    def __init__(self, column: str, function: str, *sources: str, prefix: str = "") -> None:
        super().__init__()
        self.column, self.function, self.prefix = column, function, prefix
        self.sources: list[Any] = [F(name) for name in sources]

    def get_source_expressions(self) -> list[Any]:
        return self.sources

    def set_source_expressions(self, exprs: Any) -> None:
        self.sources = list(exprs)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, _params = compiler.compile(self.sources[0])
        return f'{sql.rsplit(".", 1)[0]}."{self.column}"', []

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        parts = [compiler.compile(source)[0] for source in self.sources]
        joined = " || ' ' || ".join(f"COALESCE({part}, '')" for part in parts)
        sql = f"{self.function}({joined})"
        return (f"(' ' || {sql})" if self.prefix else sql), []


def _profile_fold() -> SearchKey:
    return SearchKey("search_fold", "hirfa_fold", "display_name", "bio")


def _profile_skeleton() -> SearchKey:
    return SearchKey("search_skeleton", "hirfa_skeleton", "display_name", prefix=" ")


def _product_fold() -> SearchKey:
    # The labels' codes (JSON text) are folded with underscores as spaces on PostgreSQL;
    # SQLite reads them as they are (a code's words still match inside it).
    return SearchKey("search_fold", "hirfa_fold", "title", "materials", "description", "labels")


def _commune_fold() -> SearchKey:
    return SearchKey("commune_fold", "hirfa_fold", "commune")


class WordSimilar(Expression):
    """`term` is within a typo of a word of `key`: pg_trgm's `<%` (indexed), or the same
    measure in Python on SQLite."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, term: str, key: SearchKey) -> None:
        super().__init__()
        self.term, self.key = term, key

    def get_source_expressions(self) -> list[Any]:
        return [self.key]

    def set_source_expressions(self, exprs: Any) -> None:
        (self.key,) = exprs

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.key)
        return f"%s <%% {sql}", [self.term, *params]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.key)
        return f"hirfa_word_similarity(%s, {sql}) >= 0.6", [self.term, *params]


def _contains(key: SearchKey, term: Term, typos: bool) -> Q:
    """`key` holds the term or, with `typos` and a term long enough, a word within a typo of it."""
    q = Q(Contains(key, term.text))
    if typos and len(term.text) >= TYPO_MIN_CHARS:
        q |= Q(WordSimilar(term.text, key))
    return q


def _name_q(term: Term, typos: bool = False) -> Q:
    typos = typos and term.misspelt
    if _postgres():
        # The typo test (`<%`) is costly per row: read through its index once (`_typo_ids`).
        q = Q(Contains(_profile_fold(), term.text))
        if typos and len(term.text) >= TYPO_MIN_CHARS:
            q |= Q(pk__in=term.typo_ids or ())
    else:
        q = _contains(_profile_fold(), term, typos)
    if len(term.key) >= 2:
        q |= Q(Contains(_profile_skeleton(), f" {term.key}"))
    return q


def _trade_exists(trade_ids: frozenset[int]) -> Exists:
    through = ArtisanProfile.trades.through
    return Exists(through.objects.filter(artisanprofile_id=OuterRef("pk"), trade_id__in=trade_ids))


@dataclass(frozen=True)
class Pass:
    """How widely the words are matched. The first pass is strict and cheap (every key
    through its index); each next one runs only when the one before found no one."""

    typos: bool = False  # a word within a typo of the name or bio (pg_trgm `<%`)
    products: bool = False  # the artisan's published products hold the word
    any_term: bool = False  # any word, not every word
    # The filters keep a few thousand artisans at most (a wilaya, a trade): only their
    # products are read, not every product holding the word (30,000 for "tapis").
    scope: QuerySet[ArtisanProfile] | None = None


PASSES = (Pass(), Pass(typos=True), Pass(products=True), Pass(typos=True, products=True, any_term=True))


def _makers(term: Term, scope: QuerySet[ArtisanProfile] | None) -> QuerySet[Product]:
    """Published products holding `term` (of the artisans of `scope`, when given)."""
    makers = Product.objects.filter(status__in=PUBLIC_STATUSES).filter(Contains(_product_fold(), term.text))
    if scope is not None:
        makers = makers.filter(artisan_id__in=scope.values("user_id"))
    return makers


def _products_q(term: Term, scope: QuerySet[ArtisanProfile] | None) -> Q:
    """Artisans (of `scope`, when given) who have a published product holding `term`."""
    if _postgres():
        return Q(user_id__in=term.maker_ids or ())
    return Q(user_id__in=_makers(term, scope).values("artisan_id"))


def _one_row(parts: list[tuple[str, QuerySet[Any]]]) -> list[Any]:
    """Several subqueries read in one statement (one round trip), each as `wrap(subquery)`:
    `EXISTS`, or `ARRAY` for a list of ids. Planned one by one, as if sent alone."""
    alias = router.db_for_read(ArtisanProfile)
    selects, params = [], []
    for wrap, qs in parts:
        sql, sql_params = qs.query.get_compiler(using=alias).as_sql()
        selects.append(f"{wrap}({sql})")
        params.extend(sql_params)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(selects), params)
        return list(cursor.fetchone() or ())


def _with_sets(terms: list[Term], how: Pass) -> list[Term]:
    """`terms` with the id lists `how` needs read (PostgreSQL), at most `IDS_MAX` each, all
    in one statement."""
    if not _postgres():
        return terms
    wanted: list[tuple[int, str, QuerySet[Any]]] = []
    for i, term in enumerate(terms):
        if how.typos and term.misspelt and len(term.text) >= TYPO_MIN_CHARS and term.typo_ids is None:
            typos = ArtisanProfile.objects.filter(WordSimilar(term.text, _profile_fold())).values_list("pk")
            wanted.append((i, "typo_ids", typos[:IDS_MAX]))
        if how.products and term.maker_ids is None:
            wanted.append((i, "maker_ids", _makers(term, how.scope).values_list("artisan_id")[:IDS_MAX]))
    if not wanted:
        return terms
    found = _one_row([("ARRAY", qs) for _i, _name, qs in wanted])
    terms = list(terms)
    for (i, name, _qs), ids in zip(wanted, found, strict=True):
        unique = tuple(dict.fromkeys(ids))
        terms[i] = replace(terms[i], typo_ids=unique) if name == "typo_ids" else replace(terms[i], maker_ids=unique)
    return terms


class _SearchTrades(Expression):
    """The artisan row's `search_trades` column (PostgreSQL only; GIN-indexed, kept by a
    trigger: migration `registry/0010_search_document`), as SQL on the query's own alias."""

    def __init__(self) -> None:
        super().__init__()
        self.source: Any = F("pk")

    def get_source_expressions(self) -> list[Any]:
        return [self.source]

    def set_source_expressions(self, exprs: Any) -> None:
        (self.source,) = exprs

    def column(self, compiler: Any) -> str:
        sql, _params = compiler.compile(self.source)
        return f'{sql.rsplit(".", 1)[0]}."search_trades"'


class TradeIds(_SearchTrades):
    """The artisan's trade ids as his row holds them."""

    output_field = ArrayField(BigIntegerField())

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.column(compiler), []


class TradesOverlap(_SearchTrades):
    """The artisan practises one of `trade_ids`."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, trade_ids: frozenset[int]) -> None:
        super().__init__()
        self.trade_ids = sorted(trade_ids)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return f"{self.column(compiler)} && %s::bigint[]", [self.trade_ids]


def _term_q(term: Term, how: Pass) -> Q:
    """An artisan matches `term` by name or bio, commune, a trade or wilaya it names
    and, in the wider passes, a typo in his name or bio or one of his products.
    (Typos in product texts are left out: pg_trgm rechecks every long description that
    shares trigrams with the term, seconds at 300,000 products.)"""
    if _postgres():
        # Every key but the products on the artisan's own row (migration 0010): the planner
        # either ORs the indexes or reads the newest artisans and stops at the last one kept.
        q = _name_q(term, how.typos) | Q(Contains(SearchKey("search_commune", "", "display_name"), term.text))
        if term.trade_ids:
            q |= Q(TradesOverlap(term.trade_ids))
    else:
        q = Q(pk__in=ArtisanProfile.objects.filter(_name_q(term, how.typos)).values("pk"))
        q |= Q(user_id__in=Census.objects.filter(Contains(_commune_fold(), term.text)).values("user_id"))
        if term.trade_ids:
            q |= Q(_trade_exists(term.trade_ids))
    if how.products:
        q |= _products_q(term, how.scope)
    if term.wilaya_ids:
        q |= Q(wilaya_id__in=term.wilaya_ids)
    return q


# --- the search --------------------------------------------------------------------------


@dataclass(frozen=True)
class Facet:
    key: int
    label: str
    count: int


@dataclass(frozen=True)
class Facets:
    """Counts over the first `RANKED_MAX` results (`capped` when there are more)."""

    trades: list[Facet]
    wilayas: list[Facet]
    verified: int
    with_products: int
    total: int
    capped: bool


@dataclass(frozen=True)
class SearchPage:
    items: list[ArtisanCard]
    page: int
    has_next: bool
    has_previous: bool = False
    products: list[Product] = field(default_factory=list)
    facets: Facets | None = None
    understood_trades: list[str] = field(default_factory=list)
    understood_wilayas: list[str] = field(default_factory=list)
    relaxed: bool = False


@dataclass(slots=True)
class Candidate:
    """A matching artisan and what ranks him."""

    pk: int
    user_id: int
    wilaya_id: int | None
    verified: bool
    name_hits: tuple[bool, ...]
    trade_ids: set[int] = field(default_factory=set)
    with_products: bool = False
    score: int = 0
    near: int = 0


def _candidates(qs: QuerySet[ArtisanProfile], terms: list[Term], how: Pass) -> list[Candidate]:
    """The newest `CANDIDATES` artisans of `qs` matching `terms` as `how` says, with what ranks them.

    Ranking a bounded set: PostgreSQL reads the newest matches along the primary key and
    stops early; scoring them costs a few thousand rows at most, whatever the query.
    """
    if terms:
        combined = Q()
        for term in terms:
            combined = (combined | _term_q(term, how)) if how.any_term else (combined & _term_q(term, how))
        qs = qs.filter(combined)
    hits = {
        f"hit{i}": Case(When(_name_q(term, how.typos), then=Value(True)), default=Value(False),
                        output_field=BooleanField())
        for i, term in enumerate(terms)
    }
    # What ranks and counts a candidate (his trades, whether he sells) comes in the same
    # statement, computed for the rows kept only: PostgreSQL evaluates the subquery after
    # the sort and the limit (postponed target list), one index probe each. His trades
    # are on his row (`search_trades`, migration 0010): no probe at all.
    sells = Exists(Product.objects.filter(artisan_id=OuterRef("user_id"), status__in=PUBLIC_STATUSES))
    extra: dict[str, Any] = {"sells": sells}
    if _postgres():
        extra["trade_list"] = TradeIds()
    rows = list(
        qs.annotate(**hits, **extra).order_by("-id")
        .values_list("pk", "user_id", "wilaya_id", "user__census__status", *extra, *hits)[:CANDIDATES]
    )
    first_hit = 4 + len(extra)
    found = [
        Candidate(pk=row[0], user_id=row[1], wilaya_id=row[2], verified=row[3] == VerificationStatus.VERIFIED,
                  with_products=row[4], trade_ids=set(row[5]) if len(extra) > 1 else set(),
                  name_hits=tuple(row[first_hit:]))
        for row in rows
    ]
    if found and not _postgres():
        by_pk = {c.pk: c for c in found}
        through = ArtisanProfile.trades.through
        for profile_id, trade_id in through.objects.filter(artisanprofile_id__in=list(by_pk)).values_list(
            "artisanprofile_id", "trade_id"
        ):
            by_pk[profile_id].trade_ids.add(trade_id)
    return found


def _misspellings(terms: list[Term]) -> list[Term]:
    """`terms`, each `misspelt` when no artisan's name or bio holds it as typed (one index
    probe per word, all in one statement)."""
    held = _one_row([("EXISTS", ArtisanProfile.objects.filter(_name_q(t)).values("pk")[:1]) for t in terms])
    return [replace(t, misspelt=not bool(h)) for t, h in zip(terms, held, strict=True)]


def _rank(candidates: list[Candidate], terms: list[Term], home: int | None, near: set[int]) -> None:
    """Best first: words found in the name, then the trades and wilayas the words name,
    then verified, then the viewer's wilaya and its neighbours, then the newest."""
    for c in candidates:
        c.score = sum(
            2 * hit + bool(term.trade_ids & c.trade_ids) + (c.wilaya_id in term.wilaya_ids)
            for hit, term in zip(c.name_hits, terms, strict=True)
        )
        c.near = 2 if home is not None and c.wilaya_id == home else 1 if c.wilaya_id in near else 0
    candidates.sort(key=lambda c: (-c.score, not c.verified, -c.near, -c.pk))


def _viewer_wilaya(viewer: User | None) -> tuple[int | None, set[int]]:
    if viewer is None or not viewer.is_authenticated:
        return None, set()
    profile = ArtisanProfile.objects.filter(user=viewer).only("wilaya_id").first()
    if profile is None or profile.wilaya_id is None:
        return None, set()
    near = set(
        Wilaya.neighbours.through.objects.filter(from_wilaya_id=profile.wilaya_id).values_list(
            "to_wilaya_id", flat=True
        )
    )
    return profile.wilaya_id, near


def artisan_search(
    *,
    query: str = "",
    trade_id: int | None = None,
    wilaya_id: int | None = None,
    language: str | None = None,
    verified: bool | None = None,
    has_products: bool | None = None,
    viewer: User | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    with_facets: bool = True,
) -> SearchPage:
    """Active artisans matching `query` and every filter, best first (see module doc).

    Pages go `RANKED_MAX` results deep; the page holds no exact total beyond
    that. `too_long` when the query exceeds `QUERY_MAX_CHARS`.
    """
    query = " ".join(query.split())
    if len(query) > QUERY_MAX_CHARS:
        raise HirfaError(
            ErrorCode.TOO_LONG, _("A search holds at most %(max)d characters.") % {"max": QUERY_MAX_CHARS}
        )
    page = max(1, min(page, RANKED_MAX // page_size))
    qs: QuerySet[ArtisanProfile] = ArtisanProfile.objects.filter(user__is_active=True)
    if wilaya_id is not None:
        qs = qs.filter(wilaya_id=wilaya_id)
    if trade_id is not None:
        qs = qs.filter(TradesOverlap(frozenset([trade_id])) if _postgres() else _trade_exists(frozenset([trade_id])))
    if language:
        if _postgres():
            qs = qs.filter(languages__contains=[language])
        else:
            qs = qs.filter(languages__icontains=f'"{language}"')
    is_verified = Exists(Census.objects.filter(user_id=OuterRef("user_id"), status=VerificationStatus.VERIFIED))
    if verified is not None:
        qs = qs.filter(is_verified if verified else ~is_verified)
    has_public = Exists(Product.objects.filter(artisan_id=OuterRef("user_id"), status__in=PUBLIC_STATUSES))
    if has_products is not None:
        qs = qs.filter(has_public if has_products else ~has_public)

    reference = reference_keys()
    terms = query_terms(query, reference) if query else []
    if query and not terms:  # only punctuation: nothing to look for
        return SearchPage(items=[], page=page, has_next=False)
    home, near = _viewer_wilaya(viewer)
    relaxed = False
    candidates: list[Candidate] = []
    # No transaction and no planner settings of its own: each statement is one round trip
    # (a hub's PostgreSQL sessions start with jit off, no parallel workers and
    # random_page_cost 1.1: hub/settings.py, `POSTGRES_SESSION_OPTIONS`).
    scope = qs if wilaya_id is not None or trade_id is not None else None
    for how in PASSES if terms else PASSES[:1]:
        if how.any_term and len(terms) < 2:
            break
        if how.typos and not how.products:
            terms = _misspellings(terms)
            if not any(t.misspelt and len(t.text) >= TYPO_MIN_CHARS for t in terms):
                continue  # the same as the strict pass
        how = replace(how, scope=scope)
        terms = _with_sets(terms, how)
        candidates = _candidates(qs, terms, how)
        if candidates:
            relaxed = how.any_term
            break
    _rank(candidates, terms, home, near)
    capped = len(candidates) >= CANDIDATES
    ranked = candidates[:RANKED_MAX]
    start = (page - 1) * page_size
    shown = ranked[start : start + page_size]
    trades, wilayas = reference
    return SearchPage(
        items=_cards(shown, reference),
        page=page,
        has_next=len(ranked) > start + page_size,
        has_previous=page > 1,
        products=_matching_products(terms, [c.user_id for c in shown if c.with_products]) if terms else [],
        facets=_facets(candidates, capped, reference) if with_facets else None,
        understood_trades=sorted({t.label for t in trades for term in terms if t.pk in term.trade_ids}),
        understood_wilayas=sorted({w.label for w in wilayas for term in terms if w.pk in term.wilaya_ids}),
        relaxed=relaxed,
    )


def _cards(shown: list[Candidate], reference: Reference) -> list[ArtisanCard]:
    """The cards of a page in one statement: what ranked a candidate (his trades, wilaya,
    verification) is known already, the labels come from the reference data."""
    if not shown:
        return []
    trades, wilayas = reference
    by_wilaya = {w.pk: w for w in wilayas}
    avatars = ArtisanProfile._meta.get_field("avatar").storage  # type: ignore[union-attr]
    rows = {
        row[0]: row
        for row in ArtisanProfile.objects.filter(pk__in=[c.pk for c in shown]).values_list(
            "pk", "display_name", "languages", "bio", "avatar", "user__username"
        )
    }
    cards = []
    for c in shown:
        if c.pk not in rows:
            continue
        _pk, display_name, languages, bio, avatar, username = rows[c.pk]
        wilaya = by_wilaya.get(c.wilaya_id) if c.wilaya_id is not None else None
        cards.append(
            ArtisanCard(
                user_id=c.user_id, username=username, display_name=display_name or username,
                wilaya=wilaya.name if wilaya else "", wilaya_code=wilaya.code if wilaya else None,
                trades=tuple(t.name for t in trades if t.pk in c.trade_ids), languages=tuple(languages or ()),
                verified=c.verified, avatar_url=avatars.url(avatar) if avatar else "", bio=bio,
            )
        )
    return cards


def _facets(candidates: list[Candidate], capped: bool, reference: Reference) -> Facets:
    trade_counts = Counter(t for c in candidates for t in c.trade_ids)
    wilaya_counts = Counter(c.wilaya_id for c in candidates if c.wilaya_id is not None)
    trades, wilayas = reference
    trade_labels = {t.pk: t.label for t in trades}
    wilaya_labels = {w.pk: w.label for w in wilayas}
    return Facets(
        trades=sorted(
            (Facet(pk, trade_labels.get(pk, ""), n) for pk, n in trade_counts.items()),
            key=lambda f: (-f.count, f.label),
        )[:12],
        wilayas=sorted(
            (Facet(pk, wilaya_labels.get(pk, ""), n) for pk, n in wilaya_counts.items()),
            key=lambda f: (-f.count, f.label),
        )[:12],
        verified=sum(1 for c in candidates if c.verified),
        with_products=sum(1 for c in candidates if c.with_products),
        total=len(candidates),
        capped=capped,
    )


def _matching_products(terms: list[Term], user_ids: list[int]) -> list[Product]:
    """Pieces for the query: the newest published products of the first artisans found
    (who sell), those whose own text holds a word of the query first, then those with photos."""
    if not user_ids:
        return []
    rows: list[Product] = list(
        Product.objects.filter(artisan_id__in=user_ids, status__in=PUBLIC_STATUSES)
        .select_related("artisan__profile")
        .only("id", "artisan_id", "title", "materials", "description", "artisan__id", "artisan__profile__id",
              "artisan__profile__user_id", "artisan__profile__display_name")
        .prefetch_related("photos")
        .order_by("-id")[: PRODUCTS_SHOWN * 4]
    )
    order = {pk: i for i, pk in enumerate(user_ids)}

    def says(product: Product) -> bool:
        text = fold(f"{product.title} {product.materials} {product.description}")
        return any(term.text in text for term in terms)

    rows.sort(key=lambda p: (not says(p), not p.photos.all(), order.get(p.artisan_id, 0), -p.pk))
    return rows[:PRODUCTS_SHOWN]


# --- suggestions as one types ------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "trade", "wilaya" or "artisan"
    label: str
    value: str  # a trade or wilaya id, or a username


def search_suggestions(*, query: str) -> list[Suggestion]:
    """Trades, wilayas and artisans the words typed so far may mean; the last word as a prefix."""
    query = " ".join(query.split())[:QUERY_MAX_CHARS]
    reference = reference_keys()
    terms = query_terms(query, reference)
    if not terms or len(terms[-1].text) < 2:
        return []
    last = terms[-1]
    trades, wilayas = reference
    found: list[Suggestion] = []
    for term in [last, *terms[:-1]]:
        found += [Suggestion("trade", t.label, str(t.pk)) for t in trades if t.pk in term.trade_ids]
        found += [Suggestion("wilaya", w.label, str(w.pk)) for w in wilayas if w.pk in term.wilaya_ids]
    found = list(dict.fromkeys(found))
    room = SUGGESTIONS_MAX - len(found)
    if room > 0:
        people = ArtisanProfile.objects.filter(user__is_active=True)
        for term in terms:
            people = people.filter(_name_q(term))
        found += [
            Suggestion("artisan", name, username)
            for name, username in people.annotate(
                verified_first=Exists(
                    Census.objects.filter(user_id=OuterRef("user_id"), status=VerificationStatus.VERIFIED)
                )
            ).order_by("-verified_first", "-id").values_list("display_name", "user__username")[:room]
        ]
    return found[:SUGGESTIONS_MAX]
