"""Meeting frames through Channels' communicator, on a real in-process SFU."""

from __future__ import annotations

import gc

import pytest
from asgiref.sync import sync_to_async

from rooms.models import Room, RoomKind
from signaling import placement, services
from signaling.sfu.sdp import ice_credentials
from tests import factories
from tests.signaling.clients import CommunicatorSocket, MeetingClient, wait_until
from tests.sockets import expect, open_socket, subscribe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@sync_to_async
def guild_meeting(lobby: bool = False):
    trade = factories.trade()
    wilaya = factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    yacine = factories.yacine(pottery_=trade)
    nadia = factories.nadia(pottery_=trade)
    walid = factories.walid()
    room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    meeting_id = services.meeting_start(user=nadia, room_id=room.pk, lobby=lobby).meeting
    return room, meeting_id, nadia, amina, yacine, walid


@sync_to_async
def group_meeting(owner, *members) -> int:
    from rooms import services as room_services

    group = room_services.group_create(user=owner, title="Atelier", member_ids=[m.pk for m in members])
    meeting = services.meeting_start(user=owner, room_id=group.pk).meeting
    assert meeting is not None
    return meeting


async def client(user, name: str, publish=("mic", "camera")) -> MeetingClient:
    return MeetingClient(name, user.pk, CommunicatorSocket(await open_socket(user)), publish=publish)


def live_peer_connections() -> int:
    from aiortc import RTCPeerConnection

    gc.collect()
    return sum(
        1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    )


async def test_two_participants_exchange_media_and_state(embedded_sfu, close_sfu_after):
    room, meeting_id, nadia, amina, *_ = await guild_meeting()
    watcher = await open_socket(amina)
    await subscribe(watcher, room.pk)
    n = await client(nadia, "nadia")
    joined = await n.join(meeting_id)
    assert joined["host"] is True and joined["room"] == room.pk
    ice = await n.wait_for("meeting_ice_servers")
    assert ice["ice_servers"] == []
    live = await expect(watcher, "meeting", live=True)
    assert [p["name"] for p in live["participants"]] == ["Nadia"]

    a = await client(amina, "amina")
    assert (await a.join(meeting_id))["host"] is False
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia")
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= 10, what="nadia hears amina")
    state = await n.wait_for(
        "meeting_state", lambda f: len(f["participants"]) == 2 and all(p["connected"] for p in f["participants"])
    )
    assert state["hosts"] == [nadia.pk]
    assert {p["user"]["id"]: p["tracks"] for p in state["participants"]} == {
        nadia.pk: ["camera", "mic"], amina.pk: ["camera", "mic"]
    }

    mark = n.mark()
    await a.send({"type": "meeting_hand", "meeting": meeting_id, "up": True})
    await n.wait_for("meeting_state", lambda f: any(p["hand"] for p in f["participants"]), after=mark)

    await a.send({"type": "meeting_leave", "meeting": meeting_id, "ref": "bye"})
    ended = await a.wait_for("meeting_ended")
    assert (ended["reason"], ended["ref"]) == ("left", "bye")
    await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 1, after=mark)
    await n.close()
    await a.close()
    await watcher.disconnect()
    await wait_until(lambda: placement.embedded_engine().meeting_ids() == (), what="meeting closed on the SFU")
    await placement.close_embedded()
    assert live_peer_connections() == 0


async def test_bad_input_is_refused_and_the_meeting_goes_on(embedded_sfu, close_sfu_after):
    _room, meeting_id, nadia, amina, _karim, walid = await guild_meeting()
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    await n.wait_for("meeting_offer")

    async def error_for(who: MeetingClient, frame: dict, code: str) -> None:
        mark = who.mark()
        await who.send({**frame, "ref": code})
        err = await who.wait_for("error", lambda f: f.get("ref") == code, after=mark)
        assert err["code"] == code, err

    # a meeting the user may not join (a private group he is not in): not found, like a missing one
    private = await group_meeting(nadia, amina)
    outsider = await client(walid, "walid")
    await error_for(outsider, {"type": "meeting_join", "meeting": private}, "not_found")
    await error_for(outsider, {"type": "meeting_join", "meeting": 987654}, "not_found")
    # candidates and answers for a meeting this socket is not in
    await error_for(outsider, {"type": "meeting_candidate", "meeting": meeting_id, "candidate": None}, "no_session")
    await error_for(outsider, {"type": "meeting_answer", "meeting": meeting_id, "sdp": "v=0", "revision": 1}, "no_session")
    # malformed SDP and candidates
    await error_for(n, {"type": "meeting_answer", "meeting": meeting_id, "sdp": "v=0\r\nnonsense", "revision": 99}, "conflict")
    await error_for(n, {"type": "meeting_candidate", "meeting": meeting_id, "candidate": "candidate:garbage", "sdp_mid": "0"}, "invalid_sdp")
    # too many tracks: the camera again
    await error_for(n, {"type": "meeting_publish", "meeting": meeting_id, "source": "camera"}, "too_many_tracks")
    # hosts only
    a = await client(amina, "amina")
    await a.join(meeting_id)
    await error_for(a, {"type": "meeting_host", "meeting": meeting_id, "action": "lock"}, "forbidden")
    await error_for(a, {"type": "meeting_host", "meeting": meeting_id, "action": "remove", "user": nadia.pk}, "forbidden")
    # a flood of signaling frames, once both are connected (a refused answer would need a retry)
    await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 2 and all(p["connected"] for p in f["participants"]))
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= 1, what="nadia hears amina")
    mark = a.mark()
    for _ in range(60):
        await a.send({"type": "meeting_hand", "meeting": meeting_id, "up": True})
    await a.wait_for("error", lambda f: f["code"] == "rate_limited", after=mark)

    # the meeting goes on: media still flows both ways
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia")
    heard = len(n.frames_from(amina.pk, "mic"))
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= heard + 10, what="nadia hears amina")
    for c in (n, a, outsider):
        await c.close()
    await placement.close_embedded()
    assert live_peer_connections() == 0


async def test_malformed_answer_is_invalid_sdp_and_a_fresh_offer_follows(embedded_sfu, close_sfu_after):
    _room, meeting_id, nadia, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    n.answer_sdp_override = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    await n.join(meeting_id)
    err = await n.wait_for("error", lambda f: f["code"] == "invalid_sdp")
    assert err["code"] == "invalid_sdp"
    n.answer_sdp_override = None
    await n.wait_for("meeting_offer", lambda f: f["revision"] == 2)
    await wait_until(lambda: n.answered >= 2, what="second answer")
    await n.wait_for("meeting_state", lambda f: f["participants"] and f["participants"][0]["connected"])
    await n.close()
    await placement.close_embedded()


async def test_host_lobby_admit_mute_remove_and_ice_restart(embedded_sfu, close_sfu_after):
    _room, meeting_id, nadia, amina, yacine, _ = await guild_meeting(lobby=True)
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    a = await client(amina, "amina")
    await a.send({"type": "meeting_join", "meeting": meeting_id, "publish": ["mic", "camera"]})
    await a.wait_for("meeting_lobby")
    await n.wait_for("meeting_state", lambda f: [w["id"] for w in f["waiting"]] == [amina.pk])
    await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "admit", "user": amina.pk})
    await a.wait_for("meeting_joined")
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= 10, what="nadia hears amina")

    mark = n.mark()
    await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "mute", "user": amina.pk, "source": "mic"})
    await n.wait_for("meeting_state", lambda f: any(p["host_muted"] == ["mic"] for p in f["participants"]), after=mark)
    heard = len(n.frames_from(amina.pk, "mic"))
    seen = len(a.frames_from(nadia.pk, "camera"))
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= seen + 40, what="the meeting goes on")
    assert len(n.frames_from(amina.pk, "mic")) - heard <= 3, "muted audio still forwarded"

    # ICE restart: on the same peer connection (the server keeps it), with new ICE
    # credentials in its next offer; nobody else is offered anything.
    mark, nadia_mark = a.mark(), n.mark()
    seen_of_amina = len(n.frames_from(amina.pk, "camera"))
    seen_of_nadia = len(a.frames_from(nadia.pk, "camera"))
    revision = max(f["revision"] for f in a.frames if f["type"] == "meeting_offer")
    await a.send({"type": "meeting_ice_restart", "meeting": meeting_id, "ref": "restart"})
    joined = await a.wait_for("meeting_joined", after=mark)
    assert joined["resumed"] is True and joined["ref"] == "restart"
    await a.wait_for("meeting_ice_servers", after=mark)
    offer = await a.wait_for("meeting_offer", after=mark)
    assert offer["revision"] == revision + 1
    assert ice_credentials(offer["sdp"]) != ice_credentials(_last_offer_before(a, mark))
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= seen_of_nadia + 10, what="amina sees nadia again")
    await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= seen_of_amina + 10, what="nadia sees amina again")
    assert "meeting_offer" not in [f["type"] for f in n.frames[nadia_mark:]], "nadia renegotiated for amina's restart"
    state = await n.wait_for("meeting_state", lambda f: any(p["host_muted"] == ["mic"] and p["connected"] for p in f["participants"]))
    assert len(state["participants"]) == 2

    # the lobby holds yacine until a host denies him
    k = await client(yacine, "yacine")
    await k.send({"type": "meeting_join", "meeting": meeting_id})
    await k.wait_for("meeting_lobby")
    await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "deny", "user": yacine.pk})
    assert (await k.wait_for("meeting_ended"))["reason"] == "denied"
    await n.send({"type": "meeting_host", "meeting": meeting_id, "action": "remove", "user": amina.pk})
    ended = await a.wait_for("meeting_ended")
    assert ended["reason"] == "removed"
    for c in (n, a, k):
        await c.close()
    await placement.close_embedded()
    assert live_peer_connections() == 0


def _last_offer_before(who: MeetingClient, mark: int) -> str:
    return [f for f in who.frames[:mark] if f["type"] == "meeting_offer"][-1]["sdp"]


async def test_back_on_a_new_socket_the_participant_resumes_his_peer(embedded_sfu, close_sfu_after):
    """A phone that changed network comes back on a new socket: meeting_join with resume
    keeps his server peer (an ICE restart on it); the other is offered nothing."""
    _room, meeting_id, nadia, amina, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    a = await client(amina, "amina")
    await a.join(meeting_id)
    await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= 10, what="nadia sees amina")
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia")
    revision = max(f["revision"] for f in a.frames if f["type"] == "meeting_offer")
    old_sdp = _last_offer_before(a, a.mark())

    # Her new socket; her page keeps its peer connection (moved over to the new client).
    again = await client(amina, "amina")
    await again.peer.close()
    again.peer = a.peer
    a._reader.cancel()
    nadia_mark = n.mark()
    seen_of_amina = len(n.frames_from(amina.pk, "camera"))
    joined = await again.join(meeting_id, resume=True)
    assert joined["resumed"] is True
    offer = await again.wait_for("meeting_offer")
    assert offer["revision"] == revision + 1
    assert ice_credentials(offer["sdp"]) != ice_credentials(old_sdp)
    await wait_until(lambda: again.answered >= 1, what="the restart answered")
    await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= seen_of_amina + 10, what="nadia sees amina still")
    assert "meeting_offer" not in [f["type"] for f in n.frames[nadia_mark:]], "nadia renegotiated for amina's resume"
    state = await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 2, after=nadia_mark)
    assert all(p["connected"] for p in state["participants"])
    await again.close()
    await a.socket.close()
    await n.close()
    await placement.close_embedded()
    assert live_peer_connections() == 0


async def test_a_late_publisher_video_reaches_an_earlier_participant(embedded_sfu, close_sfu_after):
    _room, meeting_id, nadia, amina, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    a = await client(amina, "amina")
    await a.join(meeting_id)
    try:
        # amina's first answer both receives nadia's camera and publishes her own
        await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= 10, what="nadia sees amina", timeout=15)
        await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia", timeout=15)
    finally:
        await n.close()
        await a.close()
        await placement.close_embedded()


def padded(answer, size: int):
    """Wrap a ClientPeer.answer so that its SDP grows to about ``size`` characters
    (session-level attributes that aiortc ignores, as a long real answer would be)."""

    async def answer_padded(offer):
        sdp = await answer(offer)
        head, rest = sdp.split("t=0 0\r\n", 1)
        line = "a=x-hirfa-pad:" + "p" * 985 + "\r\n"
        return head + "t=0 0\r\n" + line * (size // 1000) + rest

    return answer_padded


async def test_more_bad_input_and_large_answers(embedded_sfu, close_sfu_after):
    from django.conf import settings

    from tests.signaling.remote import udp_ports

    _room, meeting_id, nadia, amina, yacine, walid = await guild_meeting()
    private = await group_meeting(amina, yacine)
    n = await client(nadia, "nadia")
    # an answer over the 16 KiB frame limit is accepted (meeting_answer may hold 64 KiB)
    n.peer.answer = padded(n.peer.answer, 30_000)
    await n.join(meeting_id)
    a = await client(amina, "amina")
    await a.join(meeting_id)
    await wait_until(lambda: len(a.frames_from(nadia.pk, "camera")) >= 10, what="amina sees nadia")
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= 10, what="nadia hears amina")
    assert not [f for f in n.frames if f["type"] == "error"]

    async def error_for(who: MeetingClient, frame: dict, code: str) -> dict:
        mark = who.mark()
        await who.send({**frame, "ref": code})
        err = await who.wait_for("error", after=mark)
        assert err["code"] == code, err
        return err

    # beyond 64 KiB, or any other frame over 16 KiB: frame_too_large, the socket stays open
    huge = "v=0\r\n" + "a=x:" + "p" * 70_000 + "\r\n"
    await error_for(n, {"type": "meeting_answer", "meeting": meeting_id, "sdp": huge, "revision": 1}, "frame_too_large")
    await error_for(n, {"type": "meeting_hand", "meeting": meeting_id, "up": True, "pad": "p" * 20_000}, "frame_too_large")
    # an offer answered for a meeting the user may not join, or is not in: no_session / not_found
    await error_for(a, {"type": "meeting_answer", "meeting": private, "sdp": "v=0", "revision": 1}, "no_session")
    o = await client(walid, "walid")
    await error_for(o, {"type": "meeting_join", "meeting": private}, "not_found")
    # candidates for another meeting, or before joining any: no_session
    await error_for(a, {"type": "meeting_candidate", "meeting": private, "candidate": None}, "no_session")
    await error_for(o, {"type": "meeting_candidate", "meeting": meeting_id, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0"}, "no_session")
    # ill-typed frames and an unknown source
    await error_for(a, {"type": "meeting_answer", "meeting": meeting_id, "sdp": 12, "revision": 1}, "invalid_frame")
    await error_for(a, {"type": "meeting_publish", "meeting": meeting_id, "source": "hologram"}, "invalid_frame")
    # too many tracks: the screen is a third source, but a second camera or screen is refused
    mark = a.mark()
    await a.send({"type": "meeting_publish", "meeting": meeting_id, "source": "screen"})
    await a.wait_for("meeting_offer", lambda f: any(m.get("source") == "screen" for m in f["mlines"]), after=mark)
    await error_for(a, {"type": "meeting_publish", "meeting": meeting_id, "source": "screen"}, "too_many_tracks")
    await error_for(a, {"type": "meeting_publish", "meeting": meeting_id, "source": "mic"}, "too_many_tracks")
    # a flood of candidates: rate limited, the meeting goes on
    mark = a.mark()
    for i in range(80):
        await a.send({"type": "meeting_candidate", "meeting": meeting_id, "candidate": f"candidate:{i} 1 udp 1 127.0.0.1 {9000 + i} typ host", "sdp_mid": "0"})
    await a.wait_for("error", lambda f: f["code"] == "rate_limited", after=mark)
    seen = len(a.frames_from(nadia.pk, "camera"))
    heard = len(n.frames_from(amina.pk, "mic"))
    await wait_until(
        lambda: len(a.frames_from(nadia.pk, "camera")) >= seen + 10 and len(n.frames_from(amina.pk, "mic")) >= heard + 10,
        what="the meeting goes on",
    )
    # nothing leaks
    for c in (n, a, o):
        await c.close()
    await wait_until(lambda: placement.embedded_engine().meeting_ids() == (), what="meeting closed on the SFU")
    await placement.close_embedded()
    assert live_peer_connections() == 0
    assert udp_ports(port_min=settings.HIRFA_SFU_PORT_MIN, port_max=settings.HIRFA_SFU_PORT_MAX) == []


async def test_turn_credentials_are_renewed_while_in_the_meeting_and_stop_after(
    embedded_sfu, close_sfu_after, settings, monkeypatch
):
    import asyncio

    from signaling import consumers

    settings.HIRFA_TURN_URLS = ["turn:turn.example.org:3478?transport=udp"]
    settings.HIRFA_TURN_SECRET = "s3cret"
    monkeypatch.setattr(consumers, "renew_after", lambda ttl: 0.3)
    _room, meeting_id, nadia, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    first = await n.wait_for("meeting_ice_servers")
    assert first["ttl"] <= 3600 and first["ice_servers"][-1]["username"].endswith(f":{nadia.pk}:m{meeting_id}")
    mark = n.mark()
    await n.wait_for("meeting_ice_servers", after=mark, timeout=10)  # renewed, unasked
    await n.send({"type": "meeting_leave", "meeting": meeting_id, "ref": "bye"})
    await n.wait_for("meeting_ended", timeout=10)
    await asyncio.sleep(1.0)
    left = n.mark()
    await asyncio.sleep(1.0)
    assert [f["type"] for f in n.frames[left:] if f["type"] == "meeting_ice_servers"] == []
    await n.close()


async def test_with_slots_a_silent_join_offers_nothing_to_the_others_and_reception_names_the_slots(
    embedded_sfu, close_sfu_after
):
    _room, meeting_id, nadia, amina, karim, _walid = await guild_meeting()
    n = await client(nadia, "nadia", publish=("mic",))
    await n.join(meeting_id)
    await n.wait_for("meeting_offer")
    a = await client(amina, "amina")
    await a.join(meeting_id)
    await wait_until(lambda: len(n.frames_from(amina.pk, "camera")) >= 10, what="nadia sees amina")
    reception = await n.wait_for("meeting_reception", lambda f: any(s.get("user") == amina.pk for s in f.get("slots", ())))
    assert {(s["kind"], s["source"]) for s in reception["slots"] if s.get("user") == amina.pk} <= {("audio", "mic"), ("video", "camera")}
    offers = n.mark()

    k = await client(karim, "karim", publish=("mic",))
    await k.join(meeting_id)
    await k.wait_for("meeting_offer")
    await n.wait_for("meeting_state", lambda f: len(f["participants"]) == 3, after=offers)
    await wait_until(lambda: len(k.frames_from(amina.pk, "camera")) >= 10, what="karim sees amina")
    assert [f for f in n.frames[offers:] if f["type"] == "meeting_offer"] == [], "a silent join re-offered nadia"
    for who in (n, a, k):
        await who.close()
    await placement.close_embedded()


async def test_a_phone_joins_with_fewer_video_slots_and_a_bad_count_is_refused(embedded_sfu, close_sfu_after):
    _room, meeting_id, nadia, _amina, _karim, _walid = await guild_meeting()
    n = await client(nadia, "nadia", publish=("mic",))
    mark = n.mark()
    await n.send({"type": "meeting_join", "meeting": meeting_id, "video_slots": 0, "ref": "zero"})
    error = await n.wait_for("error", lambda f: f.get("ref") == "zero", after=mark)
    assert error["code"] == "invalid_frame", error
    await n.join(meeting_id, video_slots=4)
    offer = await n.wait_for("meeting_offer")
    video = [m for m in offer["mlines"] if m["kind"] == "video" and m["direction"] == "subscribe"]
    assert len(video) == 4, offer["mlines"]
    await n.close()
    await placement.close_embedded()
