"""Workshop tables: a host splits a live meeting into small tables, and brings everyone back.

Each table is a private room (its own chat) holding a live meeting of its own (its own
meeting on the SFU); the members seated at it are the room's members, with the host who
opened the tables as its owner, so he may visit any table. Nobody is moved by the server:
``meeting_tables`` tells every socket of the meeting (and of its tables) where each member
sits, and the page leaves one meeting and joins the other on the same socket.

Writes here (``tables_open``, ``tables_seat``, ``tables_broadcast``, ``tables_close``,
``tables_close_lapsed``)
commit first and publish the ``meeting_tables`` frame on commit, to the meeting's group
and to every table meeting's group.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks import task

from hub import realtime
from hub.errors import ErrorCode, HirfaError
from hub.models import User
from hub.protocol import Author, MeetingTablesOut, TableOut
from rooms.models import MemberRole, Membership, Room, RoomKind
from rooms.selectors import room_access
from rooms.services import message_post
from signaling.engine import meeting_group
from signaling.models import Attendance, Meeting, MeetingTable
from signaling.selectors import meeting_for_host, meeting_is_host

#: Tables a meeting may be split into at once.
TABLES_MAX = 20
SPLITS = ("random", "trade", "wilaya", "hand")


def _frame(meeting: Meeting, tables: Sequence[MeetingTable], *, notice: str | None = None) -> MeetingTablesOut:
    open_tables = [t for t in tables if t.closed_at is None]
    members: dict[int, list[Author]] = {t.pk: [] for t in open_tables}
    rows = (
        Membership.objects.filter(room__meeting_table__in=open_tables)
        .exclude(role=MemberRole.OWNER)
        .select_related("user", "room__meeting_table")
        .order_by("user_id")
    )
    for row in rows:
        members[row.room.meeting_table.pk].append(Author(id=row.user.pk, name=row.user.display_name))
    table_meetings = dict(
        Meeting.objects.filter(room__meeting_table__in=open_tables, ended_at__isnull=True).values_list(
            "room_id", "pk"
        )
    )
    ends = min((t.ends_at for t in open_tables if t.ends_at is not None), default=None)
    return MeetingTablesOut(
        meeting=meeting.pk,
        open=bool(open_tables),
        tables=[
            TableOut(
                number=t.number, label=t.label, meeting=table_meetings.get(t.room_id, 0), room=t.room_id,
                members=members[t.pk],
            )
            for t in open_tables
        ],
        ends_at=ends.isoformat() if ends is not None else None,
        notice=notice,
    )


def _publish(meeting: Meeting, frame: MeetingTablesOut, table_meetings: Sequence[int]) -> None:
    def publish() -> None:
        for meeting_id in (meeting.pk, *table_meetings):
            realtime.publish_now(meeting_group(meeting_id), frame)

    transaction.on_commit(publish)


def _open_tables(meeting: Meeting) -> list[MeetingTable]:
    return list(MeetingTable.objects.filter(meeting=meeting, closed_at__isnull=True).select_related("room"))


def _seat_by(attendees: list[User], split: str, count: int) -> list[tuple[str, list[User]]]:
    """(label, members) of each table: ``count`` tables at most, none empty; the label is
    the trade's or wilaya's name (blank at random: the page says "Table 2")."""
    if split == "random":
        shuffled = attendees[:]
        random.shuffle(shuffled)
        tables = min(count, len(shuffled))
        return [("", shuffled[i::tables]) for i in range(tables)]
    groups: dict[int | None, tuple[str, list[User]]] = {}
    for user in attendees:
        profile = getattr(user, "profile", None)
        key: int | None = None
        label = ""
        if profile is not None and split == "trade":
            trade = min(profile.trades.all(), key=lambda t: t.pk, default=None)
            if trade is not None:
                key, label = trade.pk, trade.localized_name()
        elif profile is not None and split == "wilaya" and profile.wilaya is not None:
            key, label = profile.wilaya.pk, profile.wilaya.localized_name()
        groups.setdefault(key, (label or _("Others"), []))[1].append(user)
    # The largest groups get tables of their own; the rest share the last one.
    ordered = sorted(groups.items(), key=lambda item: (item[0] is None, -len(item[1][1]), item[1][0]))
    seated = [(label, members) for _key, (label, members) in ordered[:count]]
    for _key, (_label, members) in ordered[count:]:
        seated[-1] = (_("Others"), [*seated[-1][1], *members])
    return seated


def tables_open(
    *,
    user: User,
    meeting_id: int,
    split: str = "random",
    count: int = 2,
    seats: Sequence[Sequence[int]] = (),
    minutes: int | None = None,
) -> MeetingTablesOut:
    """A host splits his live meeting into tables; answers the ``meeting_tables`` frame.

    Everyone in the meeting but its hosts is seated (``split``: ``random`` over ``count``
    tables; ``trade`` or ``wilaya`` from their profiles, one table per trade or wilaya, at
    most ``count``, the rest at the last; ``hand``: ``seats``, one list of user ids per
    table, each of them in the meeting, and whoever is in no list stays). Each table is a
    new private room with a live meeting of its own. Raises ``not_found`` or ``forbidden``
    (no host), ``conflict`` (tables are open already), ``invalid`` (nobody to seat, an
    unknown split, a seat for someone not in the meeting).
    """
    if split not in SPLITS:
        raise HirfaError(ErrorCode.INVALID, _("Unknown way to split into tables."))
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        Meeting.objects.select_for_update().filter(pk=meeting.pk).values_list("pk", flat=True).first()
        if _open_tables(meeting):
            raise HirfaError(ErrorCode.CONFLICT, _("The meeting is already split into tables."))
        rows = Attendance.objects.filter(meeting=meeting, left_at__isnull=True).select_related(
            "user", "user__profile", "user__profile__wilaya"
        ).prefetch_related("user__profile__trades")
        present = {row.user_id: row.user for row in rows}
        access = {u: room_access(user=present[u], room_id=meeting.room_id) for u in present}
        guests = [present[u] for u in sorted(present) if not meeting_is_host(user=present[u], meeting=meeting, access=access[u])]
        if split == "hand":
            if not seats or len(seats) > TABLES_MAX:
                raise HirfaError(ErrorCode.INVALID, _("Seat someone at each table."))
            listed = [uid for table in seats for uid in table]
            if len(set(listed)) != len(listed) or any(uid not in present for uid in listed):
                raise HirfaError(ErrorCode.INVALID, _("Seat each participant of the meeting once."))
            plan = [("", [present[uid] for uid in table]) for table in seats if table]
        else:
            plan = _seat_by(guests, split, min(count, TABLES_MAX)) if guests else []
        if not plan:
            raise HirfaError(ErrorCode.INVALID, _("Nobody to seat at tables."))
        now = timezone.now()
        ends_at = now + timedelta(minutes=minutes) if minutes else None
        tables = []
        table_meetings = []
        for number, (label, members) in enumerate(plan, start=1):
            # The room's title is in the host's language, like any title a member writes.
            name = label or _("Table %(number)d") % {"number": number}
            room = Room.objects.create(kind=RoomKind.GROUP, title=f"{meeting.room.display_title()} · {name}"[:120], created_by=user)
            Membership.objects.create(room=room, user=user, role=MemberRole.OWNER, source=Membership.Source.INVITE)
            Membership.objects.bulk_create(
                [Membership(room=room, user=member, source=Membership.Source.INVITE) for member in members if member != user]
            )
            tables.append(MeetingTable.objects.create(
                meeting=meeting, room=room, number=number, label=label[:120], opened_at=now, ends_at=ends_at
            ))
            table_meetings.append(
                Meeting.objects.create(room=room, started_by=user, video_codec=meeting.video_codec).pk
            )
        frame = _frame(meeting, tables)
        _publish(meeting, frame, table_meetings)
        return frame


def tables_broadcast(*, user: User, meeting_id: int, text: str) -> MeetingTablesOut:
    """A host's message to every open table: posted in each table's chat (as his) and
    shown at once as the frame's ``notice``. Raises ``not_found``, ``forbidden``,
    ``invalid`` (no tables open) and the errors of posting a message."""
    meeting = meeting_for_host(user=user, meeting_id=meeting_id)
    tables = _open_tables(meeting)
    if not tables:
        raise HirfaError(ErrorCode.INVALID, _("The meeting is not split into tables."))
    batch = uuid.uuid4().hex[:12]
    for table in tables:
        message_post(user=user, room_id=table.room_id, client_id=f"tables-{batch}-{table.number}", text=text)
    with transaction.atomic():
        frame = _frame(meeting, tables, notice=text.strip())
        _publish(meeting, frame, [m for t in frame.tables if (m := t.meeting)])
    return frame


def tables_closed(meeting: Meeting, tables: list[MeetingTable], now: datetime, *, ended: bool = False) -> MeetingTablesOut:
    """Close ``tables`` of ``meeting`` (inside the caller's transaction) and tell everyone:
    back to the meeting, or out of it with ``ended`` (the meeting ended: every table's
    meeting ends with it)."""
    table_meetings = list(
        Meeting.objects.filter(room__meeting_table__in=tables, ended_at__isnull=True).values_list("pk", flat=True)
    )
    MeetingTable.objects.filter(pk__in=[t.pk for t in tables]).update(closed_at=now)
    if ended:
        Meeting.objects.filter(pk__in=table_meetings).update(ended_at=now)
        Attendance.objects.filter(meeting_id__in=table_meetings, left_at__isnull=True).update(left_at=now)
    else:
        # A table meeting nobody is in ends now; one with people in ends when the last leaves.
        someone_in = Attendance.objects.filter(meeting=OuterRef("pk"), left_at__isnull=True)
        Meeting.objects.filter(pk__in=table_meetings).exclude(Exists(someone_in)).update(ended_at=now)
    frame = MeetingTablesOut(meeting=meeting.pk, open=False, ended=ended)
    _publish(meeting, frame, table_meetings)
    return frame


def table_parent(*, meeting: Meeting) -> Meeting | None:
    """The meeting that ``meeting`` is an open table of, if it is one."""
    table = MeetingTable.objects.filter(room_id=meeting.room_id, closed_at__isnull=True).select_related("meeting").first()
    return table.meeting if table is not None else None


def tables_seat(*, user: User, meeting_id: int, member_id: int, number: int) -> MeetingTablesOut:
    """A host seats ``member_id`` (in the meeting, say a late comer, or at another of its
    tables) at table ``number``; his page moves there. Raises ``not_found`` or
    ``forbidden`` (no host), ``invalid`` (no such open table, nobody of that id in the
    meeting or at its tables, a host)."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        Meeting.objects.select_for_update().filter(pk=meeting.pk).values_list("pk", flat=True).first()
        tables = _open_tables(meeting)
        target = next((t for t in tables if t.number == number), None)
        if target is None:
            raise HirfaError(ErrorCode.INVALID, _("No such table."))
        table_meetings = list(
            Meeting.objects.filter(room__meeting_table__in=tables, ended_at__isnull=True).values_list("pk", flat=True)
        )
        present = Attendance.objects.filter(
            meeting_id__in=[meeting.pk, *table_meetings], user_id=member_id, left_at__isnull=True
        ).select_related("user").first()
        if present is None:
            raise HirfaError(ErrorCode.INVALID, _("Seat each participant of the meeting once."))
        member = present.user
        if meeting_is_host(user=member, meeting=meeting, access=room_access(user=member, room_id=meeting.room_id)):
            raise HirfaError(ErrorCode.INVALID, _("Hosts visit the tables; they are not seated."))
        Membership.objects.filter(room__meeting_table__in=tables, user=member).exclude(role=MemberRole.OWNER).delete()
        Membership.objects.get_or_create(room_id=target.room_id, user=member, defaults={"source": Membership.Source.INVITE})
        frame = _frame(meeting, tables)
        _publish(meeting, frame, table_meetings)
        return frame


def tables_close(*, user: User, meeting_id: int) -> MeetingTablesOut:
    """A host brings everyone back: the tables close (each page goes back to the meeting).
    Idempotent. Raises ``not_found`` or ``forbidden``."""
    with transaction.atomic():
        meeting = meeting_for_host(user=user, meeting_id=meeting_id)
        Meeting.objects.select_for_update().filter(pk=meeting.pk).values_list("pk", flat=True).first()
        return tables_closed(meeting, _open_tables(meeting), timezone.now())


def tables_close_lapsed(*, now: datetime | None = None) -> int:
    """Close the tables whose timer ran out (a periodic job); answers how many meetings
    got everyone back."""
    now = now or timezone.now()
    closed = 0
    lapsed = MeetingTable.objects.filter(closed_at__isnull=True, ends_at__lte=now)
    for meeting_id in set(lapsed.values_list("meeting_id", flat=True)):
        with transaction.atomic():
            meeting = Meeting.objects.select_for_update().get(pk=meeting_id)
            tables = _open_tables(meeting)
            if tables:
                tables_closed(meeting, tables, now)
                closed += 1
    return closed


def tables_of(*, user: User, meeting_id: int) -> MeetingTablesOut:
    """The ``meeting_tables`` frame of a meeting ``user`` may join (a page arriving late)."""
    meeting = Meeting.objects.filter(pk=meeting_id).first()
    if meeting is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such meeting."))
    try:
        room_access(user=user, room_id=meeting.room_id)
    except HirfaError:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such meeting.")) from None
    return _frame(meeting, _open_tables(meeting))


@task()
def tables_close_lapsed_job() -> int:
    """The periodic job (registered in `signaling.hooks`) running `tables_close_lapsed`."""
    return tables_close_lapsed()
