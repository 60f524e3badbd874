"""What the server's offers say about audio, beyond what aiortc writes (plain text, no aiortc).

aiortc offers Opus with no format parameters and knows nothing of RED. The
server edits its offers before they are applied locally:

* every Opus payload type gets ``minptime=10;useinbandfec=1;usedtx=1``, so
  browsers send in-band FEC (a lost 20 ms packet is rebuilt from the next one)
  and stop sending during silence (DTX);
* every audio m-line offers RED (RFC 2198, ``red/48000/2`` with ``PT/PT``,
  Opus in Opus) *before* Opus: a browser that takes it (Chromium does) then
  sends each Opus packet with the previous one inside, and receives such
  packets; one that does not answers Opus alone.
"""

from __future__ import annotations

import re

OPUS_PARAMETERS = "minptime=10;useinbandfec=1;usedtx=1"
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/", re.MULTILINE)


def _sections(sdp: str) -> list[str]:
    lines = sdp.split("\r\n")
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return ["\r\n".join(section) for section in sections]


def _free_payload_type(sdp: str) -> int:
    used = {int(m.group(1)) for m in _RTPMAP.finditer(sdp)}
    for candidate in (63, *range(127, 95, -1), *range(62, 34, -1)):
        if candidate not in used:
            return candidate
    raise ValueError("no free RTP payload type for RED")


def audio_offer(sdp: str, *, red: bool = True) -> str:
    """``sdp`` (an offer) with Opus FEC/DTX parameters and, if ``red``, RED offered first."""
    red_pt = _free_payload_type(sdp) if red else None
    out = []
    for section in _sections(sdp):
        if not section.startswith("m=audio"):
            out.append(section)
            continue
        opus = [int(m.group(1)) for m in _RTPMAP.finditer(section) if m.group(2).lower() == "opus"]
        if not opus:
            out.append(section)
            continue
        lines = section.split("\r\n")
        result = []
        for line in lines:
            if any(line.startswith(f"a=fmtp:{pt} ") for pt in opus):
                continue  # replaced below
            result.append(line)
            match = re.match(r"^a=rtpmap:(\d+) opus/", line, re.IGNORECASE)
            if match:
                result.append(f"a=fmtp:{match.group(1)} {OPUS_PARAMETERS}")
        if red_pt is not None:
            words = result[0].split(" ")
            result[0] = " ".join([*words[:3], str(red_pt), *words[3:]])
            position = next(i for i, line in enumerate(result) if line.startswith("a=rtpmap:"))
            result[position:position] = [f"a=rtpmap:{red_pt} red/48000/2", f"a=fmtp:{red_pt} {opus[0]}/{opus[0]}"]
        out.append("\r\n".join(result))
    return "\r\n".join(out)


def red_payload_types(sdp: str) -> dict[str, int]:
    """mid -> RED payload type, for each audio m-line of ``sdp`` (an answer) that accepted RED."""
    found: dict[str, int] = {}
    for section in _sections(sdp):
        if not section.startswith("m=audio"):
            continue
        mid = re.search(r"^a=mid:(\S+)", section, re.MULTILINE)
        red = [int(m.group(1)) for m in _RTPMAP.finditer(section) if m.group(2).lower() == "red"]
        if mid and red:
            formats = section.split("\r\n", 1)[0].split(" ")[3:]
            if str(red[0]) in formats:
                found[mid.group(1)] = red[0]
    return found


_ICE_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)
_ICE_PWD = re.compile(r"^a=ice-pwd:(\S+)", re.MULTILINE)


def ice_credentials(sdp: str) -> tuple[str, str] | None:
    """The first ``a=ice-ufrag`` and ``a=ice-pwd`` of a description (BUNDLE: one transport), if both."""
    ufrag, pwd = _ICE_UFRAG.search(sdp), _ICE_PWD.search(sdp)
    if ufrag is None or pwd is None:
        return None
    return ufrag.group(1), pwd.group(1)
