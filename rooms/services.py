"""Writes to rooms and messages. Each function validates, writes inside one
transaction, and publishes its event through `hub.realtime` on commit."""

from __future__ import annotations

import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from hub import metrics, push, realtime
from hub.db import LoopStatementFailed, db_call, loop_fetchone, loop_statements_possible
from hub.errors import ErrorCode, HirfaError
from hub.models import Notification, User
from hub.protocol import CardOut, MemberOut, MessageOut, NotificationOut, Removed, Unread
from hub.tasks import push_deliver
from rooms.models import (
    MENTION,
    Attachment,
    MemberRole,
    Membership,
    Message,
    Reaction,
    Report,
    Room,
    RoomKind,
    VoiceListen,
)
from rooms.ratelimit import TokenBuckets
from rooms.selectors import (
    RoomAccess,
    attachment_for_reader,
    author_of,
    member_is_muted,
    message_by_seq,
    message_frame,
    room_access,
    unread_count,
)

MENTION_RE = re.compile(r"(?<![\w@])@([\w.\-]{1,150})", re.UNICODE)
# Reactions are a short emoji or word; anything with markup or spaces is refused.
EMOJI_RE = re.compile(r"^[^\s<>&\"']{1,16}$")

send_buckets = TokenBuckets(
    burst=settings.HIRFA_RATE_BURST, per_second=settings.HIRFA_RATE_PER_SECOND
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MentionNotice:
    """The members a new message mentions, to be notified once it is stored."""

    room_id: int
    seq: int
    by: str
    user_ids: tuple[int, ...]
    excerpt: str


@dataclass(frozen=True)
class PostResult:
    message: MessageOut
    created: bool
    #: Set when the caller asked to notify the mentioned members himself (`notify_mentions=False`).
    to_notify: MentionNotice | None = None


def _clean_text(text: str, *, allow_empty: bool = False) -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text and not allow_empty:
        raise HirfaError(ErrorCode.EMPTY, _("A message needs some text."))
    if len(text) > settings.HIRFA_MESSAGE_MAX_CHARS:
        raise HirfaError(
            ErrorCode.TOO_LONG,
            _("A message holds at most %(max)d characters.") % {"max": settings.HIRFA_MESSAGE_MAX_CHARS},
            max=settings.HIRFA_MESSAGE_MAX_CHARS,
        )
    return text


def _next_rev(room_id: int, *, new_message: bool) -> tuple[int, int]:
    """Take the room's next rev (and next seq for a new message): (seq, rev).

    One UPDATE … RETURNING: it locks the room's row until the transaction ends,
    so revs are handed out in commit order per room.
    """
    seq_step = 1 if new_message else 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET last_seq = last_seq + %s, last_rev = last_rev + 1 "
            "WHERE id = %s RETURNING last_seq, last_rev",
            [seq_step, room_id],
        )
        seq, rev = cursor.fetchone()
    return int(seq), int(rev)


def _publish_message(message: Message) -> MessageOut:
    fresh = message_by_seq(room=message.room, seq=message.seq)
    frame = message_frame(fresh)
    realtime.publish_on_commit(realtime.room_group(message.room_id), frame)
    return frame


def _mentioned_users(*, room: Room, text: str, author: User) -> list[User]:
    names = {m.rstrip(".-") for m in MENTION_RE.findall(text)}
    if not names:
        return []
    users = User.objects.filter(username__in=names, is_active=True).exclude(pk=author.pk)[:20]
    readable = []
    for user in users:
        try:
            room_access(user=user, room_id=room.pk)
        except HirfaError:
            continue
        readable.append(user)
    return readable


def notification_create(
    *, user: User, kind: str, data: dict[str, object], emailed: bool = False
) -> Notification:
    """Keep a notification and push it to the user's open sockets on commit.

    `emailed`: the caller e-mails it himself, so no digest of what was missed carries it.
    """
    note = Notification.objects.create(
        user=user, kind=kind, data=data, emailed_at=timezone.now() if emailed else None
    )
    if push.notification_push_wanted(notification=note):
        # A job row in this transaction: the push exists if and only if the notification does.
        push_deliver.enqueue(notification_id=note.pk)
    realtime.publish_on_commit(
        realtime.user_group(user.pk),
        NotificationOut(
            id=note.pk, kind=note.kind, data=note.data, created_at=note.created_at.isoformat()
        ),
    )
    return note


def notifications_mark_read(*, user: User, ids: list[int] | None = None) -> int:
    """Mark `user`'s notifications `ids` (all of them when None) read; returns how many changed.

    Another member's notifications are never touched, whatever the ids.
    """
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())


def _rate_check(*, user: User, room_id: int) -> None:
    """One token of `user`'s bucket, shared by posts, edits and reactions, or `rate_limited`."""
    wait = send_buckets.take(user.pk)
    if wait:
        raise HirfaError(
            ErrorCode.RATE_LIMITED, _("You are sending too fast."), retry_after=wait, room=room_id
        )


def _slow_mode_check(*, user: User, access: RoomAccess) -> None:
    """`slow_mode` while `user`'s last post or edit in the room is more recent than its slow mode."""
    room = access.room
    if not room.slow_mode_seconds or access.can_moderate:
        return
    mine = Message.objects.filter(room=room, author=user)
    last_post = mine.order_by("-seq").values_list("created_at", flat=True).first()
    last_edit = mine.filter(edited_at__isnull=False).order_by("-edited_at").values_list("edited_at", flat=True).first()
    last = max((t for t in (last_post, last_edit) if t is not None), default=None)
    if last is None:
        return
    elapsed = (timezone.now() - last).total_seconds()
    if elapsed < room.slow_mode_seconds:
        raise HirfaError(
            ErrorCode.SLOW_MODE,
            _("This room is in slow mode."),
            retry_after=room.slow_mode_seconds - elapsed,
            room=room.pk,
        )


def message_post(
    *,
    user: User,
    room_id: int,
    client_id: str,
    text: str,
    reply_to: int | None = None,
    attachment_ids: list[int] | tuple[int, ...] = (),
    card: CardOut | None = None,
    notify_mentions: bool = True,
) -> PostResult:
    """Persist a message once per (`user`, `room_id`, `client_id`) and publish it.

    `card` (from another service, never from a client) shows what the message is about.

    A retried send returns the message already stored, with `created` false.
    Refuses with `not_found`, `muted`, `rate_limited`, `slow_mode`, `empty` or `too_long`.

    The members it mentions are notified once it is stored; with `notify_mentions`
    false that is left to the caller (`PostResult.to_notify`, then `mentions_notify`),
    so that a socket answers its `ack` first.
    """
    if connection.vendor == "postgresql" and not attachment_ids and card is None:
        text = _clean_text(text)
        _rate_check(user=user, room_id=room_id)
        plain = _post_plain(user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to)
        if plain is not None:
            return _notified(plain, now=notify_mentions)
        # Not a plain post (a refusal, slow mode refusing, a room to follow first, a retry): the
        # checked path answers it, its rate token already taken.
        return _notified(
            _post_checked(
                user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to,
                attachment_ids=(), card=None, rate_taken=True,
            ),
            now=notify_mentions,
        )
    return _notified(
        _post_checked(
            user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to,
            attachment_ids=attachment_ids, card=card, rate_taken=False,
        ),
        now=notify_mentions,
    )


def _notified(result: PostResult, *, now: bool) -> PostResult:
    if now and result.to_notify is not None:
        mentions_notify(notice=result.to_notify)
        return PostResult(result.message, result.created)
    return result


def mentions_notify(*, notice: MentionNotice) -> int:
    """Notify (and push to) each member a stored message mentions; answers how many.

    Runs after the message's commit, off the send's path: a failure here loses
    notifications, never the message."""
    if not notice.user_ids:
        return 0
    room = Room.objects.select_related("trade", "wilaya").get(pk=notice.room_id)
    data: dict[str, object] = {
        "room": room.pk, "room_title": room.display_title(), "id": notice.seq, "by": notice.by,
        "excerpt": notice.excerpt,
    }
    with transaction.atomic():
        for target in User.objects.filter(pk__in=notice.user_ids, is_active=True).order_by("pk"):
            notification_create(user=target, kind=MENTION, data=data)
    return len(notice.user_ids)


def _mention_notice(*, room_id: int, seq: int, user: User, text: str, user_ids: list[int]) -> MentionNotice | None:
    if not user_ids:
        return None
    return MentionNotice(
        room_id=room_id, seq=seq, by=user.display_name, user_ids=tuple(user_ids), excerpt=text[:140]
    )


def _mention_names(text: str) -> list[str]:
    return sorted({m.rstrip(".-") for m in MENTION_RE.findall(text)})


# A plain post (text, maybe a reply; PostgreSQL): checked and written by one statement
# in autocommit, one round trip. The statement reads the member's rights itself, when it
# runs: a ban, a removal, a mute or a slow mode committed before it is seen, whatever any
# socket has heard, so no cache of rights can outlive them. In a slow room it reads the
# member's last post or edit too (moderators, exempt, go by the checked path when that
# would refuse them). When one of them stands in
# the way, or the member must follow the room first, or the post is a retry, it writes
# nothing (no row) and the checked path answers. Mentions are resolved in it too: active
# members named, not banned, who read the room.
_PLAIN_POST_SQL = """
WITH allowed AS (
    SELECT 1 FROM {membership} m
    WHERE m.room_id = %(room)s AND m.user_id = %(author)s AND m.active AND NOT m.banned
      AND (m.muted_until IS NULL OR m.muted_until <= %(now)s)
), bump AS (
    UPDATE {room} SET last_seq = last_seq + 1, last_rev = last_rev + 1
    WHERE id = %(room)s AND EXISTS (SELECT 1 FROM allowed)
      AND (slow_mode_seconds = 0 OR NOT EXISTS (
          SELECT 1 FROM {message}
          WHERE room_id = %(room)s AND author_id = %(author)s
            AND (created_at > %(now)s - make_interval(secs => slow_mode_seconds)
                 OR edited_at > %(now)s - make_interval(secs => slow_mode_seconds))
      ))
      AND NOT EXISTS (
          SELECT 1 FROM {message}
          WHERE room_id = %(room)s AND author_id = %(author)s AND client_id = %(client_id)s
      )
    RETURNING kind, last_seq, last_rev
), named AS ({named}
), ins AS (
    INSERT INTO {message}
        (room_id, seq, rev, author_id, client_id, text, reply_to_seq, mentions, created_at)
    SELECT %(room)s, last_seq, last_rev, %(author)s, %(client_id)s, %(text)s,
           CASE WHEN %(reply_to)s::bigint < last_seq THEN %(reply_to)s::bigint END,
           (SELECT ids FROM named), %(now)s
    FROM bump
    RETURNING id, seq, rev, mentions
), mark AS (
    UPDATE {membership} SET last_read_seq = ins.seq FROM ins
    WHERE room_id = %(room)s AND user_id = %(author)s
)
SELECT id, seq, rev, mentions FROM ins
"""
_NO_MENTIONS = "\n    SELECT '[]'::jsonb AS ids"
_MENTIONS = """
    SELECT COALESCE(jsonb_agg(id ORDER BY id), '[]'::jsonb) AS ids FROM (
        SELECT u.id FROM {user} u CROSS JOIN bump
        WHERE u.username = ANY(%(names)s) AND u.is_active AND u.id <> %(author)s
          AND NOT EXISTS (
              SELECT 1 FROM {membership} x WHERE x.room_id = %(room)s AND x.user_id = u.id AND x.banned
          )
          AND (bump.kind = ANY(%(public_kinds)s) OR EXISTS (
              SELECT 1 FROM {membership} x WHERE x.room_id = %(room)s AND x.user_id = u.id AND x.active
          ))
        ORDER BY u.id LIMIT 20
    ) AS readable"""
_TABLES = {
    "membership": Membership._meta.db_table,
    "room": Room._meta.db_table,
    "message": Message._meta.db_table,
    "user": User._meta.db_table,
}
_PLAIN_POST = {
    False: _PLAIN_POST_SQL.format(named=_NO_MENTIONS, **_TABLES),
    True: _PLAIN_POST_SQL.format(named=_MENTIONS.format(**_TABLES), **_TABLES),
}
_PUBLIC_KINDS = [RoomKind.GUILD.value, RoomKind.REGION.value, RoomKind.GUILD_REGION.value]


def _plain_params(*, user: User, room_id: int, client_id: str, text: str, reply_to: int | None) -> dict[str, Any]:
    return {
        "room": room_id, "author": user.pk, "client_id": client_id, "text": text,
        "reply_to": reply_to, "now": timezone.now(), "names": _mention_names(text),
        "public_kinds": _PUBLIC_KINDS,
    }


def _post_plain(
    *, user: User, room_id: int, client_id: str, text: str, reply_to: int | None
) -> PostResult | None:
    """The plain post's one statement (see `_PLAIN_POST_SQL`); None when it wrote nothing."""
    params = _plain_params(user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to)
    try:
        # Inside a caller's transaction a duplicate must not break it: a savepoint. On its
        # own (a socket) the statement is its own transaction, one round trip.
        savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with savepoint, connection.cursor() as cursor:
            cursor.execute(_PLAIN_POST[bool(params["names"])], params)
            row = cursor.fetchone()
    except IntegrityError:
        return None  # the same client_id stored at the same moment: a retry, answered by the checked path
    if row is None:
        return None
    result = _plain_posted(row, user=user, params=params)
    realtime.publish_on_commit(realtime.room_group(room_id), result.message)
    return result


def _plain_posted(row: tuple[Any, ...], *, user: User, params: dict[str, Any]) -> PostResult:
    """The result of the plain post's statement from its row (id, seq, rev, mentions)."""
    import json

    pk, seq, rev, mentions = row
    if isinstance(mentions, str):
        mentions = json.loads(mentions)
    reply_to = params["reply_to"]
    message = Message(
        pk=pk, room_id=params["room"], seq=int(seq), rev=int(rev), author=user, client_id=params["client_id"],
        text=params["text"], reply_to_seq=reply_to if reply_to and reply_to < seq else None,
        mentions=list(mentions), created_at=params["now"],
    )
    frame = message_frame(message, reactions=(), attachments=())
    metrics.messages_posted.inc()
    notice = _mention_notice(
        room_id=params["room"], seq=message.seq, user=user, text=message.text, user_ids=message.mentions
    )
    return PostResult(frame, True, notice)


async def message_send(
    *,
    user: User,
    room_id: int,
    client_id: str,
    text: str,
    reply_to: int | None = None,
    attachment_ids: list[int] | tuple[int, ...] = (),
) -> PostResult:
    """`message_post` from async code (a socket's `send`), mentions left to the caller
    (`PostResult.to_notify`). Same guarantees, answers and errors.

    On PostgreSQL the plain post's one statement runs on the event loop's own connection
    (`hub.db.loop_connection`): no hop to a pool thread and back, the hot path of a room's
    sends. Anything else (a refusal, a retry, slow mode, SQLite, a connection that failed:
    the statement is idempotent on `client_id`) goes to `message_post` on the pool, as does
    a `user` read without his profile (his name would be a query; a socket's user has it)
    and a post with attachments."""
    if not attachment_ids and loop_statements_possible() and User.profile.is_cached(user):
        text = _clean_text(text)
        _rate_check(user=user, room_id=room_id)
        params = _plain_params(user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to)
        row = None
        try:
            row = await loop_fetchone(_PLAIN_POST[bool(params["names"])], params)
        except LoopStatementFailed as exc:  # a retry stored at the same moment, or the connection failed
            log.info("a plain post on the loop's connection wrote nothing (%s): the checked path answers", exc)
        if row is not None:
            result = _plain_posted(row, user=user, params=params)
            realtime.publish_now(realtime.room_group(room_id), result.message)  # committed: autocommit
            return result
        return await db_call(_post_checked)(
            user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to,
            attachment_ids=(), card=None, rate_taken=True,
        )
    return await db_call(message_post)(
        user=user, room_id=room_id, client_id=client_id, text=text, reply_to=reply_to,
        attachment_ids=attachment_ids, notify_mentions=False,
    )


def _post_checked(
    *,
    user: User,
    room_id: int,
    client_id: str,
    text: str,
    reply_to: int | None,
    attachment_ids: list[int] | tuple[int, ...],
    card: CardOut | None,
    rate_taken: bool,
) -> PostResult:
    """Every check one after the other, then the write: posts with attachments or a card,
    refusals, first posts in a public room, slow mode, retries, and SQLite."""
    access = room_access(user=user, room_id=room_id)
    room = access.room
    muted = member_is_muted(access.membership) and not access.can_moderate
    slow = bool(room.slow_mode_seconds) and not access.can_moderate
    # On PostgreSQL a retried send is caught by the insert itself (ON CONFLICT); a
    # muted member's or a slow room's retry must still be answered before the refusals.
    one_statement = connection.vendor == "postgresql"
    if not one_statement or muted or slow:
        existing = _stored_seq(room_id=room_id, user=user, client_id=client_id)
        if existing is not None:
            return PostResult(message_frame(message_by_seq(room=room, seq=existing)), False)
    text = _clean_text(text, allow_empty=bool(attachment_ids) or card is not None)
    if muted:
        assert access.membership is not None and access.membership.muted_until is not None
        raise HirfaError(
            ErrorCode.MUTED,
            _("You are muted in this room."),
            room=room_id,
            until=access.membership.muted_until.isoformat(),
        )
    if not rate_taken:
        _rate_check(user=user, room_id=room_id)
    if slow:
        _slow_mode_check(user=user, access=access)
    attachments = []
    if attachment_ids:
        attachments = list(
            Attachment.objects.filter(
                pk__in=list(attachment_ids), uploader=user, room=room, message__isnull=True
            )
        )
        if len(attachments) != len(set(attachment_ids)):
            raise HirfaError(ErrorCode.INVALID, _("Unknown attachment."), room=room_id)
    follow = room.is_public and not access.follows
    try:
        with transaction.atomic():
            mentioned = _mentioned_users(room=room, text=text, author=user)
            if one_statement and not attachments and not follow and card is None:
                message = _message_insert_once(
                    room=room, user=user, client_id=client_id, text=text, reply_to=reply_to,
                    mentions=[u.pk for u in mentioned],
                )
                if message is None:
                    raise _AlreadyStored()
                frame = message_frame(message, reactions=(), attachments=())
                realtime.publish_on_commit(realtime.room_group(room.pk), frame)
            else:
                if follow:
                    room_follow(user=user, room_id=room.pk)
                seq, rev = _next_rev(room.pk, new_message=True)
                message = Message.objects.create(
                    room=room,
                    seq=seq,
                    rev=rev,
                    author=user,
                    client_id=client_id,
                    text=text,
                    reply_to_seq=reply_to if reply_to and reply_to < seq else None,
                    mentions=[u.pk for u in mentioned],
                    card=card.model_dump() if card is not None else None,
                )
                if attachments:
                    Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(
                        message=message
                    )
                    frame = _publish_message(message)
                else:
                    # A new message has no reactions nor attachments: no need to read it back.
                    frame = message_frame(message, reactions=(), attachments=())
                    realtime.publish_on_commit(realtime.room_group(room.pk), frame)
                # The author has read his own message.
                Membership.objects.filter(room=room, user=user).update(last_read_seq=seq)
    except (IntegrityError, _AlreadyStored):
        # A retry, or a concurrent retry with the same client_id that won the race:
        # answer with the message already stored (the transaction took nothing).
        again = _stored_seq(room_id=room_id, user=user, client_id=client_id)
        if again is None:
            raise
        return PostResult(message_frame(message_by_seq(room=room, seq=again)), False)
    metrics.messages_posted.inc()
    notice = _mention_notice(
        room_id=room.pk, seq=message.seq, user=user, text=text, user_ids=[u.pk for u in mentioned]
    )
    return PostResult(frame, True, notice)


class _AlreadyStored(Exception):
    """Raised inside the post's transaction to roll back the rev it took."""


def _stored_seq(*, room_id: int, user: User, client_id: str) -> int | None:
    return (
        Message.objects.filter(room_id=room_id, author=user, client_id=client_id)
        .values_list("seq", flat=True)
        .first()
    )


def _message_insert_once(
    *, room: Room, user: User, client_id: str, text: str, reply_to: int | None, mentions: list[int]
) -> Message | None:
    """PostgreSQL, one statement: take the room's next seq and rev, insert the message
    unless (room, author, client_id) is already stored, and move the author's read
    marker to it. None when it was already stored: the caller must then roll back
    its transaction, which holds the rev this statement took.
    """
    import json

    now = timezone.now()
    sql = f"""
        WITH bump AS (
            UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1, last_rev = last_rev + 1
            WHERE id = %(room)s RETURNING last_seq, last_rev
        ), ins AS (
            INSERT INTO {Message._meta.db_table}
                (room_id, seq, rev, author_id, client_id, text, reply_to_seq, mentions, created_at)
            SELECT %(room)s, last_seq, last_rev, %(author)s, %(client_id)s, %(text)s,
                   CASE WHEN %(reply_to)s::bigint < last_seq THEN %(reply_to)s::bigint END,
                   %(mentions)s::jsonb, %(now)s
            FROM bump
            ON CONFLICT (room_id, author_id, client_id) DO NOTHING
            RETURNING id, seq, rev
        ), mark AS (
            UPDATE {Membership._meta.db_table} SET last_read_seq = ins.seq FROM ins
            WHERE room_id = %(room)s AND user_id = %(author)s
        )
        SELECT id, seq, rev FROM ins
    """
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "room": room.pk,
                "author": user.pk,
                "client_id": client_id,
                "text": text,
                "reply_to": reply_to,
                "mentions": json.dumps(mentions),
                "now": now,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    pk, seq, rev = row
    return Message(
        pk=pk, room=room, seq=int(seq), rev=int(rev), author=user, client_id=client_id, text=text,
        reply_to_seq=reply_to if reply_to and reply_to < seq else None, mentions=mentions,
        created_at=now,
    )


def message_edit(*, user: User, room_id: int, seq: int, text: str) -> MessageOut:
    """Replace the text of the author's own message (not a deleted one).

    An edit counts as a post: it takes a token of the author's bucket (`rate_limited`)
    and waits for the room's slow mode (`slow_mode`)."""
    access = room_access(user=user, room_id=room_id)
    text = _clean_text(text)
    with transaction.atomic():
        message = message_by_seq(room=access.room, seq=seq)
        if message.author_id != user.pk:
            raise HirfaError(ErrorCode.FORBIDDEN, _("Only the author edits a message."), room=room_id)
        if message.deleted_at is not None:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such message."), room=room_id, id=seq)
        if member_is_muted(access.membership):
            raise HirfaError(ErrorCode.MUTED, _("You are muted in this room."), room=room_id)
        _rate_check(user=user, room_id=room_id)
        _slow_mode_check(user=user, access=access)
        _seq, message.rev = _next_rev(access.room.pk, new_message=False)
        message.text = text
        message.edited_at = timezone.now()
        message.save(update_fields=["text", "rev", "edited_at"])
        return _publish_message(message)


def _attachments_delete(attachments: QuerySet[Attachment]) -> None:
    """Delete `attachments`: their rows now, their files once the transaction commits."""
    files = [(f.storage, f.name) for a in attachments for f in a.files()]
    attachments.delete()
    for storage, name in files:
        transaction.on_commit(lambda s=storage, n=name: s.delete(n))  # type: ignore[misc]


def message_delete(*, user: User, room_id: int, seq: int) -> MessageOut:
    """Delete a message: its author may, and so may the room's moderators.

    Its images go with it, from the database and from storage."""
    access = room_access(user=user, room_id=room_id)
    with transaction.atomic():
        message = message_by_seq(room=access.room, seq=seq)
        if message.author_id != user.pk and not access.can_moderate:
            raise HirfaError(
                ErrorCode.FORBIDDEN, _("Only the author or a moderator deletes a message."), room=room_id
            )
        if message.deleted_at is not None:
            return message_frame(message)
        _seq, message.rev = _next_rev(access.room.pk, new_message=False)
        message.deleted_at = timezone.now()
        message.deleted_by = user
        message.save(update_fields=["rev", "deleted_at", "deleted_by"])
        _attachments_delete(Attachment.objects.filter(message=message))
        if message.author_id != user.pk:
            Report.objects.filter(message=message, status=Report.Status.OPEN).update(
                status=Report.Status.ACTIONED, handled_by=user, handled_at=timezone.now()
            )
        return _publish_message(message)


def voice_listen(*, user: User, attachment_id: int) -> MessageOut | None:
    """Mark that `user` played the voice message `attachment_id`, once.

    The message is published again (a new rev) the first time a member other than its
    author plays it; a second play, or the author's, changes nothing and returns None.
    Refuses with `not_found` (not his to read, or not on a message yet), `invalid` (an image).
    """
    attachment = attachment_for_reader(user=user, attachment_id=attachment_id)
    if attachment.kind != Attachment.Kind.VOICE:
        raise HirfaError(ErrorCode.INVALID, _("This is not a voice message."))
    message = attachment.message
    if message is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("Not found."))
    if attachment.uploader_id == user.pk:
        return None
    with transaction.atomic():
        _listen, created = VoiceListen.objects.get_or_create(attachment=attachment, user=user)
        if not created:
            return None
        _seq, message.rev = _next_rev(message.room_id, new_message=False)
        message.save(update_fields=["rev"])
        return _publish_message(message)


def reaction_set(*, user: User, room_id: int, seq: int, emoji: str, on: bool) -> MessageOut:
    """Add or remove `user`'s `emoji` on a message; a no-op change publishes nothing.

    Each call takes a token of the member's bucket, as a post does (`rate_limited`)."""
    if not EMOJI_RE.match(emoji):
        raise HirfaError(ErrorCode.INVALID, _("Not a reaction."), room=room_id)
    access = room_access(user=user, room_id=room_id)
    if member_is_muted(access.membership):
        raise HirfaError(ErrorCode.MUTED, _("You are muted in this room."), room=room_id)
    _rate_check(user=user, room_id=room_id)
    with transaction.atomic():
        message = message_by_seq(room=access.room, seq=seq)
        if message.deleted_at is not None:
            raise HirfaError(ErrorCode.NOT_FOUND, _("No such message."), room=room_id, id=seq)
        if on:
            if Reaction.objects.filter(message=message, user=user).count() >= 20:
                raise HirfaError(ErrorCode.INVALID, _("Too many reactions."), room=room_id)
            _found, changed = Reaction.objects.get_or_create(message=message, user=user, emoji=emoji)
        else:
            changed = bool(Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()[0])
        if not changed:
            return message_frame(message)
        _seq, message.rev = _next_rev(access.room.pk, new_message=False)
        message.save(update_fields=["rev"])
        return _publish_message(message)


def read_marker_set(*, user: User, room_id: int, seq: int) -> Unread:
    """Move `user`'s read marker forward to `seq` (never back) and tell his other tabs."""
    access = room_access(user=user, room_id=room_id)
    if access.membership is None or not access.membership.active:
        raise HirfaError(ErrorCode.FORBIDDEN, _("Follow the room first."), room=room_id)
    seq = min(seq, access.room.last_seq)
    with transaction.atomic():
        Membership.objects.filter(pk=access.membership.pk, last_read_seq__lt=seq).update(
            last_read_seq=seq
        )
        read = Membership.objects.values_list("last_read_seq", flat=True).get(
            pk=access.membership.pk
        )
        frame = Unread(
            room=room_id, read_id=read, unread=unread_count(user=user, room=access.room, read_seq=read)
        )
        realtime.publish_on_commit(realtime.user_group(user.pk), frame)
    return frame


def room_follow(*, user: User, room_id: int) -> Membership:
    """Follow a public room (or come back to it); banned members stay out."""
    access = room_access(user=user, room_id=room_id)
    if not access.room.is_public and not access.follows:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    membership, created = Membership.objects.get_or_create(
        room=access.room,
        user=user,
        defaults={"source": Membership.Source.FOLLOW, "last_read_seq": access.room.last_seq},
    )
    if not created and not membership.active:
        membership.active = True
        membership.save(update_fields=["active"])
    return membership


def room_leave(*, user: User, room_id: int) -> None:
    """Stop following a room; the user's other tabs drop it."""
    access = room_access(user=user, room_id=room_id)
    if access.membership is None or not access.membership.active:
        return
    with transaction.atomic():
        Membership.objects.filter(pk=access.membership.pk).update(active=False)
        realtime.publish_on_commit(
            realtime.user_group(user.pk), Removed(room=room_id, reason="left")
        )


def group_create(*, user: User, title: str, member_ids: list[int] = ()) -> Room:  # type: ignore[assignment]
    """A private group owned by `user`, with invited members.

    A member creates at most ``HIRFA_GROUPS_PER_DAY`` groups in any 24 hours (each is a room
    and may hold a meeting); the next one raises ``limit_reached`` with ``retry_after``, the
    seconds until the oldest of them is a day old. Raises ``invalid`` for a bad title."""
    title = title.strip()
    if not title or len(title) > 120:
        raise HirfaError(ErrorCode.INVALID, _("A group needs a title of at most 120 characters."))
    with transaction.atomic():
        # One creation at a time per member, so that parallel requests cannot all fit the count.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
        _group_quota_check(user=user)
        room = Room.objects.create(kind=RoomKind.GROUP, title=title, created_by=user)
        Membership.objects.create(
            room=room, user=user, role=MemberRole.OWNER, source=Membership.Source.INVITE
        )
        for uid in set(member_ids) - {user.pk}:
            if User.objects.filter(pk=uid, is_active=True).exists():
                Membership.objects.create(room=room, user_id=uid, source=Membership.Source.INVITE)
    return room


def _group_quota_check(*, user: User) -> None:
    limit = settings.HIRFA_GROUPS_PER_DAY
    since = timezone.now() - timedelta(days=1)
    made = list(
        Room.objects.filter(kind=RoomKind.GROUP, created_by=user, created_at__gte=since)
        .order_by("created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(made) >= limit:
        wait = (made[0] + timedelta(days=1) - timezone.now()).total_seconds()
        raise HirfaError(
            ErrorCode.LIMIT_REACHED,
            _("You created as many groups today as a member may; try again later."),
            retry_after=max(wait, 1.0),
        )


def group_member_remove(*, user: User, room_id: int, member_id: int) -> None:
    """The group's owner removes a member. His open sockets drop the group (`removed`)
    and leave a meeting in it, on every process. Raises `not_found`, `forbidden`, `invalid`."""
    access = room_access(user=user, room_id=room_id)
    if access.room.kind != RoomKind.GROUP or not access.can_moderate:
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only the group's owner removes members."), room=room_id)
    if member_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("Not on yourself."), room=room_id)
    with transaction.atomic():
        if Membership.objects.filter(room=access.room, user_id=member_id, active=True).update(active=False):
            realtime.publish_on_commit(
                realtime.user_group(member_id), Removed(room=room_id, reason="removed")
            )


def inbox_room_open(*, user: User, title: str, text: str, card: CardOut, client_id: str) -> Room:
    """A private room of `user` alone holding one message from someone without an account
    (no author; `card.detail` says who wrote and how to answer him), unread until he looks.

    Idempotent on `client_id`: the same message twice opens the room already made.
    """
    title = " ".join(title.split())[:120]
    with transaction.atomic():
        existing = Message.objects.filter(
            client_id=client_id, author__isnull=True, room__created_by=user, room__kind=RoomKind.GROUP
        ).select_related("room").first()
        if existing is not None:
            return existing.room
        room = Room.objects.create(kind=RoomKind.GROUP, title=title, created_by=user)
        Membership.objects.create(room=room, user=user, role=MemberRole.OWNER, source=Membership.Source.INVITE)
        seq, rev = _next_rev(room.pk, new_message=True)
        Message.objects.create(
            room=room, seq=seq, rev=rev, author=None, client_id=client_id,
            text=_clean_text(text, allow_empty=True), card=card.model_dump(),
        )
    return room


def inbox_reply_post(*, room_id: int, client_id: str, text: str) -> PostResult:
    """A further message, in an inbox room (`inbox_room_open`), from the person without an
    account who opened it (no author), published live to the room's owner.

    Idempotent on `client_id` (a retry answers the message stored, `created` false).
    Refuses with `empty` or `too_long`; `not_found` when the room is not an inbox room.
    """
    text = _clean_text(text)
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(pk=room_id, kind=RoomKind.GROUP).first()
        if room is None or not Message.objects.filter(room=room, author__isnull=True, seq=1).exists():
            raise HirfaError(ErrorCode.NOT_FOUND, _("Not found."))
        existing = Message.objects.filter(room=room, author__isnull=True, client_id=client_id).first()
        if existing is not None:
            return PostResult(message_frame(existing), False)
        seq, rev = _next_rev(room.pk, new_message=True)
        message = Message.objects.create(room=room, seq=seq, rev=rev, author=None, client_id=client_id, text=text)
        frame = message_frame(message, reactions=(), attachments=())
        realtime.publish_on_commit(realtime.room_group(room.pk), frame)
    return PostResult(frame, True)


def direct_room_open(*, user: User, other_id: int) -> Room:
    """The one direct room between `user` and `other_id`, created when missing."""
    other = User.objects.filter(pk=other_id, is_active=True).first()
    if other is None or other.pk == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("No such member."))
    low, high = sorted((user.pk, other.pk))
    key = f"{low}:{high}"
    with transaction.atomic():
        room, _created = Room.objects.get_or_create(
            direct_key=key, defaults={"kind": RoomKind.DIRECT, "created_by": user}
        )
        for member in (user, other):
            Membership.objects.update_or_create(
                room=room, user=member, defaults={"active": True, "source": Membership.Source.INVITE}
            )
    return room


def _moderated_membership(*, moderator: User, room_id: int, target_id: int) -> tuple[Room, Membership]:
    access = room_access(user=moderator, room_id=room_id)
    if not access.can_moderate:
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only moderators do this."), room=room_id)
    target = User.objects.filter(pk=target_id).first()
    if target is None:
        raise HirfaError(ErrorCode.INVALID, _("No such member."), room=room_id)
    if target.pk == moderator.pk:
        raise HirfaError(ErrorCode.INVALID, _("Not on yourself."), room=room_id)
    membership, _created = Membership.objects.get_or_create(
        room=access.room, user=target, defaults={"active": False}
    )
    return access.room, membership


def member_mute(*, moderator: User, room_id: int, target_id: int, minutes: int) -> MemberOut:
    """Mute a member for `minutes` (0 lifts the mute)."""
    with transaction.atomic():
        room, membership = _moderated_membership(
            moderator=moderator, room_id=room_id, target_id=target_id
        )
        membership.muted_until = timezone.now() + timedelta(minutes=minutes) if minutes else None
        membership.save(update_fields=["muted_until"])
        frame = MemberOut(
            room=room.pk,
            user=author_of(membership.user),  # type: ignore[arg-type]
            muted_until=membership.muted_until.isoformat() if membership.muted_until else None,
            banned=membership.banned,
        )
        realtime.publish_on_commit(realtime.room_group(room.pk), frame)
    return frame


def member_ban(*, moderator: User, room_id: int, target_id: int, on: bool = True) -> MemberOut:
    """Ban a member from a room (he no longer reads it) or lift the ban."""
    with transaction.atomic():
        room, membership = _moderated_membership(
            moderator=moderator, room_id=room_id, target_id=target_id
        )
        membership.banned = on
        membership.save(update_fields=["banned"])
        frame = MemberOut(
            room=room.pk,
            user=author_of(membership.user),  # type: ignore[arg-type]
            muted_until=membership.muted_until.isoformat() if membership.muted_until else None,
            banned=on,
        )
        realtime.publish_on_commit(realtime.room_group(room.pk), frame)
        if on:
            realtime.publish_on_commit(
                realtime.user_group(membership.user_id), Removed(room=room.pk, reason="banned")
            )
    return frame


def slow_mode_set(*, moderator: User, room_id: int, seconds: int) -> Room:
    access = room_access(user=moderator, room_id=room_id)
    if not access.can_moderate:
        raise HirfaError(ErrorCode.FORBIDDEN, _("Only moderators do this."), room=room_id)
    if not 0 <= seconds <= 3600:
        raise HirfaError(ErrorCode.INVALID, _("Slow mode is between 0 and 3600 seconds."))
    Room.objects.filter(pk=room_id).update(slow_mode_seconds=seconds)
    access.room.slow_mode_seconds = seconds
    return access.room


def message_report(*, user: User, room_id: int, seq: int, reason: str) -> Report:
    """Report a message to the room's moderators; one report per member and message."""
    access = room_access(user=user, room_id=room_id)
    reason = reason.strip()
    if not reason:
        raise HirfaError(ErrorCode.EMPTY, _("Say why you report this message."))
    message = message_by_seq(room=access.room, seq=seq)
    if message.author_id == user.pk:
        raise HirfaError(ErrorCode.INVALID, _("You cannot report your own message."), room=room_id)
    report, _created = Report.objects.get_or_create(
        message=message, reporter=user, defaults={"reason": reason[:500]}
    )
    return report


def report_resolve(*, moderator: User, report_id: int, action: str) -> Report:
    """Dismiss a report, or act on it by deleting the message.

    A report the user does not moderate answers `not_found` exactly as a missing
    one does, whether or not he may read its room: the refusal tells nothing.
    """
    no_such_report = HirfaError(ErrorCode.NOT_FOUND, _("No such report."))
    report = Report.objects.select_related("message").filter(pk=report_id).first()
    if report is None:
        raise no_such_report
    try:
        access = room_access(user=moderator, room_id=report.message.room_id)
    except HirfaError:
        raise no_such_report from None
    if not access.can_moderate:
        raise no_such_report
    if action == "delete":
        message_delete(user=moderator, room_id=access.room.pk, seq=report.message.seq)
        status = Report.Status.ACTIONED
    elif action == "dismiss":
        status = Report.Status.DISMISSED
    else:
        raise HirfaError(ErrorCode.INVALID, _("The action is delete or dismiss."))
    Report.objects.filter(message=report.message, status=Report.Status.OPEN).update(
        status=status, handled_by=moderator, handled_at=timezone.now()
    )
    report.refresh_from_db()
    return report


def rooms_for_profile(*, trade_ids: list[int], wilaya_id: int | None) -> list[Room]:
    """The guild, region and trade × region rooms that a profile places its artisan in."""
    rooms = []
    for trade_id in trade_ids:
        rooms.append(Room.objects.get_or_create(kind=RoomKind.GUILD, trade_id=trade_id)[0])
    if wilaya_id is not None:
        rooms.append(Room.objects.get_or_create(kind=RoomKind.REGION, wilaya_id=wilaya_id)[0])
        for trade_id in trade_ids:
            rooms.append(
                Room.objects.get_or_create(
                    kind=RoomKind.GUILD_REGION, trade_id=trade_id, wilaya_id=wilaya_id
                )[0]
            )
    return rooms


def memberships_sync(*, user: User) -> list[Room]:
    """Place `user` in the rooms of his trades, his wilaya and their intersections.

    Rooms he joined because of an earlier profile and that no longer match are
    left; rooms he followed himself are kept.
    """
    profile = getattr(user, "profile", None)
    trade_ids = list(profile.trades.values_list("pk", flat=True)) if profile else []
    wilaya_id = profile.wilaya_id if profile else None
    with transaction.atomic():
        wanted = rooms_for_profile(trade_ids=trade_ids, wilaya_id=wilaya_id)
        wanted_ids = {r.pk for r in wanted}
        for room in wanted:
            membership, created = Membership.objects.get_or_create(
                room=room,
                user=user,
                defaults={"source": Membership.Source.AUTO, "last_read_seq": room.last_seq},
            )
            if not created and not membership.active and not membership.banned:
                membership.active = True
                membership.source = Membership.Source.AUTO
                membership.save(update_fields=["active", "source"])
        Membership.objects.filter(user=user, source=Membership.Source.AUTO, active=True).exclude(
            room_id__in=wanted_ids
        ).update(active=False)
    return wanted
