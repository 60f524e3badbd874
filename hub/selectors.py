"""Reads of the community domain: reference data and artisans' profiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from hub.models import ArtisanProfile, Trade, TradeDomain, User, Wilaya


def wilayas_in_force(*, day: date | None = None) -> QuerySet[Wilaya]:
    """The wilayas an artisan may choose today, by code; announced ones wait for their date."""
    day = day or timezone.localdate()
    return Wilaya.objects.filter(Q(valid_from__isnull=True) | Q(valid_from__lte=day)).order_by(
        "code"
    )


@dataclass(frozen=True)
class DomainTrades:
    domain: TradeDomain
    trades: tuple[Trade, ...]


_ARABIC_FORMS = str.maketrans("أإآٱىةؤئ", "اااايهوي", "\u0640")


def name_sort_key(name: str) -> str:
    """The key that orders names alike on every page in every language: case, Latin
    accents and Arabic harakat ignored, Arabic letter forms (alef with hamza, taa
    marbuta, alef maqsura) taken as their plain letter, tatweel dropped."""
    import unicodedata

    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return plain.casefold().translate(_ARABIC_FORMS)


def trades_sorted() -> list[Trade]:
    """Every trade, ordered by its name in the active language (`name_sort_key`)."""
    return sorted(Trade.objects.all(), key=lambda trade: name_sort_key(trade.name))


def trades_by_domain() -> list[DomainTrades]:
    """Every trade, grouped by the three domains of the nomenclature, each sorted by name."""
    domains = TradeDomain.objects.prefetch_related(
        Prefetch("trades", queryset=Trade.objects.order_by("name_fr"))
    ).order_by("code")
    groups = []
    for domain in domains:
        trades = sorted(domain.trades.all(), key=lambda t: name_sort_key(t.name))
        if trades:
            groups.append(DomainTrades(domain=domain, trades=tuple(trades)))
    return groups


def profile_of(*, user: User) -> ArtisanProfile | None:
    """`user`'s profile with its wilaya and trades loaded, or None."""
    return (
        ArtisanProfile.objects.select_related("wilaya", "user")
        .prefetch_related("trades__domain")
        .filter(user=user)
        .first()
    )


def public_profile(*, username: str) -> ArtisanProfile | None:
    """The profile of an active member, as any signed-in member may see it."""
    return (
        ArtisanProfile.objects.select_related("wilaya", "user")
        .prefetch_related("trades")
        .filter(user__username=username, user__is_active=True)
        .first()
    )
