"""A crowd resuming a room from the same rev is sent one replay, read once per process.

When a hub process restarts, its members come back together, and most of them resubscribe
since the same rev: the one they had when the process went away. Each resumption read the
same changes from the database (four queries, a model per message) and encoded the same
frames again: in a storm of 2,500 members resuming 60 messages each, that was 150,000
messages read and encoded, most of the restarted process's work.

The first resumption now keeps the frames it sent, with the room's change stamp on this
process (`hub.realtime.Fanout.changes_stamp`) taken after it joined the room's live group
and before it read the database. A later resumption since the same rev, having joined the
group first too, takes the kept frames while the stamp is unchanged: no change of the
room has reached the process since that read, so every change after it is still to come,
live, to this subscriber as well. Anything else (another rev, a change meanwhile, the bus
cut off, an entry older than `KEPT_SECONDS`) reads the database as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

#: A kept replay is dropped this long after it was read, changed room or not.
KEPT_SECONDS = 5.0
#: At most this many kept replays per process (a crowd resumes few distinct revs).
KEPT_MAX = 256


@dataclass(frozen=True)
class Replay:
    """The changes of a room after `since_rev`, as encoded `message` frames (oldest first)."""

    texts: tuple[str, ...]
    #: The highest rev among them (`since_rev` when there are none).
    top_rev: int
    #: The room's rev when they were read.
    rev_before: int
    #: More changes than one replay holds: the client fetches the rest.
    more: bool
    stamp: object
    read_at: float


_kept: dict[tuple[int, int], Replay] = {}


def replay_kept(*, room_id: int, since_rev: int, stamp: object) -> Replay | None:
    """The replay kept for the room since `since_rev`, if it was read under `stamp`."""
    kept = _kept.get((room_id, since_rev))
    if kept is None:
        return None
    if kept.stamp != stamp or time.monotonic() - kept.read_at > KEPT_SECONDS:
        _kept.pop((room_id, since_rev), None)
        return None
    return kept


def replay_keep(
    *, room_id: int, since_rev: int, stamp: object, texts: list[str], top_rev: int, rev_before: int, more: bool
) -> None:
    """Keep a replay read from the database under `stamp` (taken before the read)."""
    now = time.monotonic()
    if len(_kept) >= KEPT_MAX:
        for key in [k for k, r in _kept.items() if now - r.read_at > KEPT_SECONDS] or list(_kept)[: KEPT_MAX // 2]:
            _kept.pop(key, None)
    _kept[(room_id, since_rev)] = Replay(tuple(texts), top_rev, rev_before, more, stamp, now)


def replays_forget() -> None:
    """Forget every kept replay (tests)."""
    _kept.clear()
