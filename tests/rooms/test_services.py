"""Room services and selectors, without any transport."""

from __future__ import annotations

import pytest

from hub.errors import ErrorCode, HirfaError
from rooms import selectors, services
from rooms.models import Membership, Message, Report, Room, RoomKind
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def guild(poterie, amina):
    return Room.objects.get(kind=RoomKind.GUILD, trade=poterie)


def post(user, room, text="Salam", client_id=None, **kw):
    post.n = getattr(post, "n", 0) + 1
    return services.message_post(
        user=user, room_id=room.pk, client_id=client_id or f"c{post.n}", text=text, **kw
    )


def test_profile_places_artisan_in_guild_region_and_intersection(amina, poterie, tlemcen):
    kinds = set(
        Membership.objects.filter(user=amina, active=True).values_list("room__kind", flat=True)
    )
    assert kinds == {RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION}
    intersection = Room.objects.get(kind=RoomKind.GUILD_REGION)
    assert (intersection.trade, intersection.wilaya) == (poterie, tlemcen)


def test_changing_wilaya_moves_auto_rooms_but_keeps_followed_ones(amina, poterie):
    oran = factories.wilaya("Oran-test", "وهران")
    followed = Room.objects.create(kind=RoomKind.REGION, wilaya=factories.wilaya("Alger-test", "الجزائر"))
    services.room_follow(user=amina, room_id=followed.pk)
    amina.profile.wilaya = oran
    amina.profile.save()
    services.memberships_sync(user=amina)
    active = set(Membership.objects.filter(user=amina, active=True).values_list("room__wilaya__name_fr", flat=True))
    assert "Oran-test" in active and "Alger-test" in active and "Tlemcen-test" not in active


def test_ids_and_revs_increase_per_room(amina, guild):
    first = post(amina, guild).message
    second = post(amina, guild).message
    assert (first.id, second.id) == (1, 2)
    assert second.rev == first.rev + 1
    edited = services.message_edit(user=amina, room_id=guild.pk, seq=1, text="Salam!")
    assert edited.rev == second.rev + 1 and edited.edited_at


def test_a_retried_send_never_duplicates(amina, guild):
    a = post(amina, guild, client_id="same")
    b = post(amina, guild, client_id="same", text="retried")
    assert a.created and not b.created
    assert b.message.id == a.message.id and b.message.text == "Salam"
    assert Message.objects.filter(room=guild).count() == 1


def test_text_limits(amina, guild):
    with pytest.raises(HirfaError) as empty:
        post(amina, guild, text="   ")
    assert empty.value.code == ErrorCode.EMPTY
    with pytest.raises(HirfaError) as long:
        post(amina, guild, text="x" * 4001)
    assert long.value.code == ErrorCode.TOO_LONG


def test_missing_and_forbidden_rooms_are_the_same_answer(amina, yacine):
    group = services.group_create(user=yacine, title="Atelier")
    with pytest.raises(HirfaError) as forbidden:
        selectors.room_access(user=amina, room_id=group.pk)
    with pytest.raises(HirfaError) as missing:
        selectors.room_access(user=amina, room_id=999_999)
    assert forbidden.value.code == missing.value.code == ErrorCode.NOT_FOUND
    assert forbidden.value.message == missing.value.message


def test_only_the_author_edits(amina, yacine, guild):
    post(amina, guild)
    with pytest.raises(HirfaError) as exc:
        services.message_edit(user=yacine, room_id=guild.pk, seq=1, text="hijack")
    assert exc.value.code == ErrorCode.FORBIDDEN
    assert Message.objects.get(room=guild, seq=1).text == "Salam"


def test_moderator_of_the_trade_deletes_any_message(amina, yacine, nadia, guild):
    post(amina, guild)
    with pytest.raises(HirfaError):
        services.message_delete(user=yacine, room_id=guild.pk, seq=1)
    out = services.message_delete(user=nadia, room_id=guild.pk, seq=1)
    assert out.deleted and out.text == ""


def test_wilaya_moderator_does_not_moderate_the_national_guild(amina, karim, guild, tlemcen):
    region = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    assert selectors.room_access(user=karim, room_id=region.pk).can_moderate
    assert not selectors.room_access(user=karim, room_id=guild.pk).can_moderate


def test_mute_blocks_posting_until_lifted(amina, nadia, guild):
    services.member_mute(moderator=nadia, room_id=guild.pk, target_id=amina.pk, minutes=10)
    with pytest.raises(HirfaError) as exc:
        post(amina, guild)
    assert exc.value.code == ErrorCode.MUTED
    services.member_mute(moderator=nadia, room_id=guild.pk, target_id=amina.pk, minutes=0)
    assert post(amina, guild).created


def test_ban_removes_read_access(amina, nadia, guild):
    services.member_ban(moderator=nadia, room_id=guild.pk, target_id=amina.pk)
    with pytest.raises(HirfaError) as exc:
        selectors.room_history(user=amina, room_id=guild.pk)
    assert exc.value.code == ErrorCode.NOT_FOUND
    assert guild.pk not in {r.id for r in selectors.rooms_for_user(user=amina)}


def test_members_cannot_moderate(amina, yacine, guild):
    with pytest.raises(HirfaError) as exc:
        services.member_mute(moderator=amina, room_id=guild.pk, target_id=yacine.pk, minutes=5)
    assert exc.value.code == ErrorCode.FORBIDDEN


def test_rate_limit_burst_then_refusal(amina, guild, settings):
    for _ in range(settings.HIRFA_RATE_BURST):
        post(amina, guild)
    with pytest.raises(HirfaError) as exc:
        post(amina, guild)
    assert exc.value.code == ErrorCode.RATE_LIMITED and exc.value.retry_after > 0


def test_slow_mode(amina, nadia, guild):
    services.slow_mode_set(moderator=nadia, room_id=guild.pk, seconds=30)
    post(amina, guild)
    with pytest.raises(HirfaError) as exc:
        post(amina, guild)
    assert exc.value.code == ErrorCode.SLOW_MODE and 0 < exc.value.retry_after <= 30
    post(nadia, guild)  # moderators are exempt


def test_mentions_notify_readers_only(amina, yacine, guild):
    outsider = factories.walid()
    group = services.group_create(user=amina, title="Atelier", member_ids=[yacine.pk])
    out = post(amina, group, text="@yacine @walid regardez")
    assert out.message.mentions == [yacine.pk]
    assert yacine.notifications.filter(kind="mention").count() == 1
    assert outsider.notifications.count() == 0


def test_unread_counts_and_read_marker(amina, yacine, guild):
    for _ in range(3):
        post(amina, guild)
    summary = {r.id: r for r in selectors.rooms_for_user(user=yacine)}[guild.pk]
    assert summary.unread == 3
    services.read_marker_set(user=yacine, room_id=guild.pk, seq=2)
    summary = {r.id: r for r in selectors.rooms_for_user(user=yacine)}[guild.pk]
    assert (summary.read_id, summary.unread) == (2, 1)
    services.read_marker_set(user=yacine, room_id=guild.pk, seq=1)  # never moves back
    assert Membership.objects.get(room=guild, user=yacine).last_read_seq == 2


def test_reactions_toggle_and_bump_rev(amina, yacine, guild):
    first = post(amina, guild).message
    on = services.reaction_set(user=yacine, room_id=guild.pk, seq=1, emoji="👍", on=True)
    assert on.reactions == {"👍": [yacine.pk]} and on.rev == first.rev + 1
    same = services.reaction_set(user=yacine, room_id=guild.pk, seq=1, emoji="👍", on=True)
    assert same.rev == on.rev
    off = services.reaction_set(user=yacine, room_id=guild.pk, seq=1, emoji="👍", on=False)
    assert off.reactions == {} and off.rev == on.rev + 1
    with pytest.raises(HirfaError):
        services.reaction_set(user=yacine, room_id=guild.pk, seq=1, emoji="<b>", on=True)


def test_history_and_changes(amina, yacine, guild):
    for i in range(5):
        post(amina, guild, text=f"m{i}")
    page, more = selectors.room_history(user=yacine, room_id=guild.pk, limit=2)
    assert [m.id for m in page] == [4, 5] and more
    page, more = selectors.room_history(user=yacine, room_id=guild.pk, before=2, limit=2)
    assert [m.id for m in page] == [1] and not more
    services.message_edit(user=amina, room_id=guild.pk, seq=1, text="changed")
    changes, more = selectors.room_changes(user=yacine, room_id=guild.pk, since_rev=5)
    assert [(m.id, m.text) for m in changes] == [(1, "changed")] and not more


def test_reports_reach_the_queue_and_are_resolved(amina, yacine, guild, poterie):
    post(amina, guild)
    services.message_report(user=yacine, room_id=guild.pk, seq=1, reason="spam")
    services.message_report(user=yacine, room_id=guild.pk, seq=1, reason="again")
    assert Report.objects.count() == 1
    moderator = factories.artisan("mod")
    with pytest.raises(HirfaError):
        services.report_resolve(moderator=moderator, report_id=Report.objects.get().pk, action="delete")
    factories.moderator_of(moderator, trade_=poterie)
    report = services.report_resolve(moderator=moderator, report_id=Report.objects.get().pk, action="delete")
    assert report.status == Report.Status.ACTIONED
    assert Message.objects.get(room=guild, seq=1).deleted_at is not None


def test_direct_room_is_unique_per_pair(amina, yacine):
    a = services.direct_room_open(user=amina, other_id=yacine.pk)
    b = services.direct_room_open(user=yacine, other_id=amina.pk)
    assert a.pk == b.pk and a.kind == RoomKind.DIRECT
    outsider = factories.walid()
    with pytest.raises(HirfaError):
        selectors.room_access(user=outsider, room_id=a.pk)


def test_a_retried_send_takes_no_rev_and_the_author_has_read_his_message(amina, guild):
    first = post(amina, guild, client_id="once")
    rev = Room.objects.get(pk=guild.pk).last_rev
    again = post(amina, guild, client_id="once", text="retried")
    assert not again.created and again.message.id == first.message.id
    assert Room.objects.get(pk=guild.pk).last_rev == rev
    assert post(amina, guild).message.id == first.message.id + 1
    assert Membership.objects.get(room=guild, user=amina).last_read_seq == first.message.id + 1


def test_a_post_is_one_write_statement_on_postgresql(amina, guild):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement post is PostgreSQL's; SQLite keeps the several statements")
    post(amina, guild)  # the member follows the room already; warm the profile cache
    with CaptureQueriesContext(connection) as queries:
        out = post(amina, guild, text="une seule écriture")
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    # One statement reads the rights, takes the rev, inserts, resolves mentions and marks read.
    assert len(statements) == 1, statements
    assert out.created and Message.objects.get(room=guild, seq=out.message.id).text == "une seule écriture"


def test_a_post_slow_mode_allows_is_one_statement_and_slow_mode_still_holds(amina, nadia, guild):
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement post is PostgreSQL's; SQLite keeps the several statements")
    services.slow_mode_set(moderator=nadia, room_id=guild.pk, seconds=30)
    post(amina, guild)  # her first post in the room: slow mode lets it through
    mine = Message.objects.filter(room=guild, author=amina)
    mine.update(created_at=timezone.now() - timedelta(seconds=31))  # her slow mode has passed
    with CaptureQueriesContext(connection) as queries:
        out = post(amina, guild, text="après la pause")
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1, statements
    assert out.created and mine.count() == 2
    rev = Room.objects.get(pk=guild.pk).last_rev
    with pytest.raises(HirfaError) as refused:
        post(amina, guild)  # 0 s after her last post
    assert refused.value.code == ErrorCode.SLOW_MODE and 29 < refused.value.retry_after <= 30
    # An edit counts as a post for slow mode, as on the checked path.
    mine.update(created_at=timezone.now() - timedelta(seconds=31), edited_at=timezone.now() - timedelta(seconds=5))
    with pytest.raises(HirfaError) as refused:
        post(amina, guild)
    assert refused.value.code == ErrorCode.SLOW_MODE
    assert Room.objects.get(pk=guild.pk).last_rev == rev
    post(nadia, guild)
    post(nadia, guild)  # moderators are exempt


@pytest.mark.parametrize(
    ("change", "code"),
    [("banned", ErrorCode.NOT_FOUND), ("left_group", ErrorCode.NOT_FOUND), ("muted", ErrorCode.MUTED),
     ("slow_mode", ErrorCode.SLOW_MODE)],
)
def test_a_post_reads_the_rights_as_they_are_when_it_runs(amina, yacine, guild, change, code):
    """Rights changed by a bare update, with no event anyone could have heard: the very next
    post is refused with the exact answer, and takes no rev."""
    from datetime import timedelta

    from django.utils import timezone

    group = services.group_create(user=yacine, title="Atelier", member_ids=[amina.pk])
    room = group if change == "left_group" else guild
    post(amina, room)  # the plain path, once
    mine = Membership.objects.filter(room=room, user=amina)
    if change == "banned":
        mine.update(banned=True)
    elif change == "left_group":
        mine.update(active=False)
    elif change == "muted":
        mine.update(muted_until=timezone.now() + timedelta(minutes=5))
    else:
        Room.objects.filter(pk=room.pk).update(slow_mode_seconds=60)
    rev = Room.objects.get(pk=room.pk).last_rev
    with pytest.raises(HirfaError) as refused:
        post(amina, room)
    assert refused.value.code == code
    assert Room.objects.get(pk=room.pk).last_rev == rev
    assert Message.objects.filter(room=room, author=amina).count() == 1


def test_a_mention_is_resolved_by_the_post_and_notified_after_it(amina, yacine, guild):
    banned = factories.artisan("bilal", trades=[guild.trade])
    Membership.objects.filter(room=guild, user=banned).update(banned=True)
    out = post(amina, guild, text="@yacine @bilal @amina @nobody le four", notify_mentions=False)
    # Readers only, never the author; nobody is notified before the caller says so.
    assert out.message.mentions == [yacine.pk]
    assert out.to_notify is not None and out.to_notify.user_ids == (yacine.pk,)
    assert yacine.notifications.count() == 0
    assert services.mentions_notify(notice=out.to_notify) == 1
    note = yacine.notifications.get(kind="mention")
    assert note.data["id"] == out.message.id and note.data["by"] == "Amina Belkacem"


def test_a_report_in_a_room_one_may_not_read_answers_like_a_missing_one(amina, poterie, tlemcen):
    owner = factories.artisan("ghania", trades=[poterie], wilaya_=tlemcen)
    karim = factories.karim(pottery_=poterie, tlemcen_=tlemcen)
    group = services.group_create(user=owner, title="Atelier", member_ids=[karim.pk])
    seq = services.message_post(user=owner, room_id=group.pk, client_id="c1", text="Salam").message.id
    report = services.message_report(user=karim, room_id=group.pk, seq=seq, reason="spam")

    def refusal(report_id: int) -> dict[str, object]:
        with pytest.raises(HirfaError) as refused:
            services.report_resolve(moderator=amina, report_id=report_id, action="dismiss")
        return refused.value.as_dict()

    assert refusal(report.pk) == refusal(report.pk + 1000)


def test_a_subscription_is_read_in_one_statement(amina, nadia, guild):
    """A subscription's state (the room, the member's rights and read marker, his unread
    count) is one statement whether he is caught up or behind (it was three ORM queries,
    then one for a member caught up and two behind): a crowd subscribing made them each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rooms.consumers import subscription_state

    def state_in_one_query() -> object:
        with CaptureQueriesContext(connection) as queries:
            state = subscription_state(amina, guild.pk, None)
        assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
        return state.view

    post(nadia, guild, text="déjà lu")
    room = Room.objects.get(pk=guild.pk)
    services.read_marker_set(user=amina, room_id=guild.pk, seq=room.last_seq)
    view = state_in_one_query()
    assert (view.unread, view.read_id, view.last_seq, view.last_rev) == (0, room.last_seq, room.last_seq, room.last_rev)
    # Behind: the count is read in the same statement, and right (her own post moves her
    # marker; deleted messages are not unread).
    post(amina, guild, text="le mien")
    post(nadia, guild, text="pas encore lu")
    gone = post(nadia, guild, text="effacé")
    services.message_delete(user=nadia, room_id=guild.pk, seq=gone.message.id)
    assert state_in_one_query().unread == 1
    # A public room the member does not follow: nothing unread, his marker is the room's end.
    Membership.objects.filter(room=guild, user=amina).update(active=False)
    view = state_in_one_query()
    assert view.unread == 0 and view.read_id == Room.objects.get(pk=guild.pk).last_seq
    Membership.objects.filter(room=guild, user=amina).delete()
    assert state_in_one_query().unread == 0
    # Banned, a group she is not in, and a room that does not exist: the same refusal.
    Membership.objects.create(room=guild, user=amina, banned=True)
    group = services.group_create(user=nadia, title="Atelier", member_ids=[])
    for room_id in (guild.pk, group.pk, 987_654_321):
        with pytest.raises(HirfaError) as refused:
            subscription_state(amina, room_id, None)
        assert refused.value.code == ErrorCode.NOT_FOUND
