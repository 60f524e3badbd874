"""A participant whose packets stop is shown as not connected within seconds, and back after."""

from __future__ import annotations

import time

import pytest

from signaling import placement
from signaling.sfu.aiortc_hooks import ice
from tests.signaling.clients import wait_until
from tests.signaling.test_consumers import client, guild_meeting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


async def test_a_silent_participant_is_reconnecting_for_the_others_then_back(
    embedded_sfu, close_sfu_after, monkeypatch: pytest.MonkeyPatch
) -> None:
    _room, meeting_id, nadia, amina, *_ = await guild_meeting()
    n = await client(nadia, "nadia")
    await n.join(meeting_id)
    a = await client(amina, "amina")
    await a.join(meeting_id)

    def amina_connected(frame: dict) -> bool | None:
        return next((p["connected"] for p in frame["participants"] if p["user"]["id"] == amina.pk), None)

    await n.wait_for("meeting_state", lambda f: amina_connected(f) is True)
    await wait_until(lambda: len(n.frames_from(amina.pk, "mic")) >= 5, what="nadia hears amina")

    # amina's phone loses its network: nothing of hers reaches the server.
    client_sockets = {p.local_candidate.port for t in a.peer.pc.getTransceivers()
                      for p in t.receiver.transport.transport._connection._protocols}
    real = ice._MediaStunProtocol.datagram_received
    offline = [True]

    def datagram_received(self, data, addr) -> None:
        if offline[0] and addr[1] in client_sockets:
            return
        real(self, data, addr)

    monkeypatch.setattr(ice._MediaStunProtocol, "datagram_received", datagram_received)
    mark, started = n.mark(), time.monotonic()
    await n.wait_for("meeting_state", lambda f: amina_connected(f) is False, after=mark, timeout=10)
    assert time.monotonic() - started < 5.0, "the others saw a frozen tile for too long"

    offline[0] = False
    mark = n.mark()
    await n.wait_for("meeting_state", lambda f: amina_connected(f) is True, after=mark, timeout=10)
    for c in (n, a):
        await c.close()
    await placement.close_embedded()
