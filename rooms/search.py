"""Searching messages in the rooms a member may read.

Guarantees of `message_search`:

* it only ever returns messages of rooms the user may read — public rooms he is
  not banned from, and private groups and direct rooms he is an active member
  of — the same rule as `rooms.selectors.room_access`;
* deleted messages are never returned;
* asking for one room the user may not read answers `not_found`, exactly like a
  room that does not exist.

On PostgreSQL the text is matched with full-text search over two stemmed
vectors at once, French and Arabic (PostgreSQL ships both configurations; no
extension is needed), so "poteries" finds "poterie" and "فخار" finds "الفخار".
The expression below is the one indexed by the GIN index of migration
``rooms/0002_message_text_search``: keep the two in step, or the index is not used.
On SQLite (the embedded default) every word of the query must appear in the
text, case-insensitively for Latin letters, without stemming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import BooleanField, Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import Author
from rooms.models import Membership, Message, RoomKind
from rooms.selectors import author_of, room_access

PUBLIC_KINDS = (RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION)
SEARCH_MAX_RESULTS = 100
QUERY_MAX_CHARS = 200
EXCERPT_CHARS = 160

# Both configurations are applied to every message: the French one stems Latin
# words and leaves Arabic ones whole, the Arabic one strips Arabic prefixes and
# suffixes; a query matches when either reading of it matches either reading
# of the text. Used verbatim by the index migration.
FTS_VECTOR_SQL = (
    "(to_tsvector('french'::regconfig, \"rooms_message\".\"text\")"
    " || to_tsvector('arabic'::regconfig, \"rooms_message\".\"text\"))"
)
FTS_QUERY_SQL = (
    "(websearch_to_tsquery('french'::regconfig, %s)"
    " || websearch_to_tsquery('arabic'::regconfig, %s))"
)


@dataclass(frozen=True)
class SearchHit:
    """One message found: where it is, who wrote it, and a plain-text excerpt (never HTML)."""

    room_id: int
    room_title: str
    id: int
    excerpt: str
    author: Author | None
    created_at: datetime
    rank: float


def readable_messages(*, user: User) -> QuerySet[Message]:
    """Messages, not deleted, of every room `user` may read (the rule of `room_access`)."""
    banned = Membership.objects.filter(room=OuterRef("room_id"), user=user, banned=True)
    member = Membership.objects.filter(
        room=OuterRef("room_id"), user=user, active=True, banned=False
    )
    return Message.objects.filter(deleted_at__isnull=True).filter(
        (Q(room__kind__in=PUBLIC_KINDS) & ~Exists(banned)) | Exists(member)
    )


def _terms(query: str) -> list[str]:
    return [t for t in re.split(r"\s+", query.replace('"', " ")) if t and t != "-"]


def excerpt_of(text: str, terms: list[str], *, width: int = EXCERPT_CHARS) -> str:
    """A window of `text` around the first query term found (its start when none is)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lowered = flat.casefold()
    positions = [lowered.find(t.casefold()) for t in terms]
    found = [p for p in positions if p >= 0]
    start = max(0, min(found) - width // 3) if found else 0
    start = min(start, len(flat) - width)
    piece = flat[start : start + width]
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(flat) else "")


def message_search(
    *, user: User, query: str, room_id: int | None = None, limit: int = 50
) -> list[SearchHit]:
    """Messages matching `query` in the rooms `user` may read (or in `room_id`), best first.

    Refuses an empty query (`empty`) or a too long one (`too_long`); a room the
    user may not read is `not_found`. At most `limit` (capped at 100) results.
    """
    query = " ".join(query.split())
    if not query:
        raise HirfaError(ErrorCode.EMPTY, _("Type something to search for."))
    if len(query) > QUERY_MAX_CHARS:
        raise HirfaError(
            ErrorCode.TOO_LONG,
            _("A search holds at most %(max)d characters.") % {"max": QUERY_MAX_CHARS},
            max=QUERY_MAX_CHARS,
        )
    limit = max(1, min(limit, SEARCH_MAX_RESULTS))
    qs = readable_messages(user=user)
    if room_id is not None:
        access = room_access(user=user, room_id=room_id)
        qs = qs.filter(room=access.room)
    terms = _terms(query)
    if connection.vendor == "postgresql":
        params = (query, query)
        qs = qs.filter(
            RawSQL(f"{FTS_VECTOR_SQL} @@ {FTS_QUERY_SQL}", params, output_field=BooleanField())
        ).annotate(
            rank=RawSQL(f"ts_rank({FTS_VECTOR_SQL}, {FTS_QUERY_SQL})", params, output_field=FloatField())
        )
        qs = qs.order_by("-rank", "-created_at", "-id")
    else:
        if not terms:
            return []
        for term in terms:
            qs = qs.filter(text__icontains=term)
        qs = qs.order_by("-created_at", "-id")
    rows = qs.select_related("room", "room__trade", "room__wilaya", "author", "author__profile")[
        :limit
    ]
    return [
        SearchHit(
            room_id=m.room_id,
            room_title=m.room.display_title(),
            id=m.seq,
            excerpt=excerpt_of(m.text, terms),
            author=author_of(m.author),
            created_at=m.created_at,
            rank=float(getattr(m, "rank", 0.0) or 0.0),
        )
        for m in rows
    ]
