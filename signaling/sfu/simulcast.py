"""Simulcast in the server's offers and in the publishers' answers (plain SDP text, no aiortc).

The server offers, on a camera's publish m-line, to receive several RID
layers (RFC 8851/8853), lowest first, and the RID and repaired-RID header
extensions (RFC 8852) that name them in the packets. A browser that takes it
(Chromium does, as the answerer) answers ``a=simulcast:send`` with the RIDs it
will send and sends one RTP stream per layer, each announcing its RID in its
first packets; its page then sets each layer's resolution and bitrate
(``frontend/static/hirfa/meeting-peer.js``). A client that ignores it (aiortc)
answers one stream, as before.

aiortc drops ``a=rid``/``a=simulcast`` lines and extensions it does not know
from the descriptions it serializes, so these lines are added to the offer
text sent, after aiortc applied its own offer locally, and read back from
the answer text here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
_EXTMAP = re.compile(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", re.MULTILINE)
_RID_NAME = re.compile(r"^[A-Za-z0-9]{1,16}$")


@dataclass(frozen=True, slots=True)
class SimulcastAnswer:
    """What a publisher's answer accepted: RIDs per mid (lowest first) and the extension ids."""

    rids: dict[str, tuple[str, ...]]
    rid_extension: int | None
    repaired_rid_extension: int | None


def _sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = [[]]
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _free_extension_ids(sdp: str, count: int) -> list[int]:
    used = {int(m.group(1)) for m in _EXTMAP.finditer(sdp)}
    free = [i for i in range(1, 15) if i not in used]  # one-byte header ids
    if len(free) < count:
        raise ValueError("no free one-byte header extension id for simulcast")
    return free[:count]


def simulcast_offer(sdp: str, layers: dict[str, tuple[str, ...]]) -> str:
    """``sdp`` (an offer) asking to receive the RID ``layers`` (lowest first) on those mids."""
    layers = {mid: rids for mid, rids in layers.items() if len(rids) > 1}
    if not layers:
        return sdp
    for rids in layers.values():
        for rid in rids:
            if not _RID_NAME.match(rid):
                raise ValueError(f"bad RID {rid!r}")
    existing = {uri: int(ext_id) for ext_id, uri in _EXTMAP.findall(sdp)}
    fresh = iter(_free_extension_ids(sdp, 2))
    rid_id = existing.get(RID_URI) or next(fresh)
    repaired_id = existing.get(REPAIRED_RID_URI) or next(fresh)
    out: list[str] = []
    for section in _sections(sdp):
        mid = next((line[6:] for line in section if line.startswith("a=mid:")), None)
        wanted = layers.get(mid) if mid is not None and section[0].startswith("m=video") else None
        if wanted is None:
            out.append("\r\n".join(section))
            continue
        lines = [line for line in section if line]
        trailing = len(section) - len(lines)
        last_extmap = max((i for i, line in enumerate(lines) if line.startswith("a=extmap:")), default=len(lines) - 1)
        added = []
        if RID_URI not in existing:
            added.append(f"a=extmap:{rid_id} {RID_URI}")
        if REPAIRED_RID_URI not in existing:
            added.append(f"a=extmap:{repaired_id} {REPAIRED_RID_URI}")
        lines[last_extmap + 1 : last_extmap + 1] = added
        lines += [f"a=rid:{rid} recv" for rid in wanted]
        lines.append("a=simulcast:recv " + ";".join(wanted))
        out.append("\r\n".join(lines + [""] * trailing))
    return "\r\n".join(out)


def simulcast_answer(sdp: str) -> SimulcastAnswer:
    """The RID layers each m-line of ``sdp`` (an answer) will send, and the extension ids."""
    found: dict[str, tuple[str, ...]] = {}
    rid_id = repaired_id = None
    for section in _sections(sdp)[1:]:
        mid = next((line[6:] for line in section if line.startswith("a=mid:")), None)
        for line in section:
            match = _EXTMAP.match(line)
            if match and match.group(2) == RID_URI:
                rid_id = int(match.group(1))
            elif match and match.group(2) == REPAIRED_RID_URI:
                repaired_id = int(match.group(1))
        sending = next((line.split(" ", 1)[1] for line in section if line.startswith("a=simulcast:send ")), None)
        if mid is None or sending is None:
            continue
        # "l;m;h", alternatives "l,x" (the first is taken), "~h" paused at start (still a layer).
        rids = tuple(alt.split(",")[0].lstrip("~") for alt in sending.strip().split(";"))
        if all(_RID_NAME.match(rid) for rid in rids):
            found[mid] = rids
    return SimulcastAnswer(found, rid_id, repaired_id)
