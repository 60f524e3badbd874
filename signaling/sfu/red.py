"""RED (RFC 2198) audio payloads: read the blocks of one, or build one (plain bytes, no aiortc).

A RED payload is a list of block headers — 4 bytes for each redundant block
(F=1, payload type, 14-bit timestamp offset back from the packet's own
timestamp, 10-bit length), 1 byte for the last, primary one (F=0, payload
type) — then the blocks' data in the same order. Chromium sends (and takes)
each Opus packet with the one before it as a redundant block, and its jitter
buffer splits such a packet back into packets: a lost packet whose copy
arrives in time inside the next one is decoded as if it had come, so it is
not concealed.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The largest timestamp offset and block length a redundant block's header can say.
MAX_OFFSET = (1 << 14) - 1
MAX_LENGTH = (1 << 10) - 1


class RedError(ValueError):
    """A redundant block that a RED header cannot describe (its offset or length)."""


def red_primary(payload: bytes) -> bytes | None:
    """The primary (newest) encoding inside a RED payload (RFC 2198), or ``None`` if malformed."""
    index = 0
    size = len(payload)
    redundant = 0
    while index < size and payload[index] & 0x80:
        if index + 4 > size:
            return None
        redundant += ((payload[index + 2] & 0x03) << 8) | payload[index + 3]
        index += 4
    index += 1  # the last header: F=0 and the primary's payload type
    start = index + redundant
    return payload[start:] if start <= size and index <= size else None


def red_blocks(payload: bytes) -> list[tuple[int, int, bytes]] | None:
    """Every block of a RED payload, oldest first, the primary last: (payload type, timestamp
    offset back from the packet's timestamp, data); ``None`` if malformed."""
    headers: list[tuple[int, int, int]] = []
    index, size = 0, len(payload)
    while index < size and payload[index] & 0x80:
        if index + 4 > size:
            return None
        offset = (payload[index + 1] << 6) | (payload[index + 2] >> 2)
        length = ((payload[index + 2] & 0x03) << 8) | payload[index + 3]
        headers.append((payload[index] & 0x7F, offset, length))
        index += 4
    if index >= size:
        return None
    primary_type = payload[index] & 0x7F
    index += 1
    blocks = []
    for payload_type, offset, length in headers:
        if index + length > size:
            return None
        blocks.append((payload_type, offset, payload[index:index + length]))
        index += length
    blocks.append((primary_type, 0, payload[index:]))
    return blocks


def red_payload(primary: bytes, payload_type: int, redundancy: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """A RED payload carrying ``primary`` and, before it, each ``(timestamp offset, data)`` of
    ``redundancy`` (oldest first, offsets back from the packet's timestamp), all of
    ``payload_type``. Raises :class:`RedError` for an offset or a length a header cannot say."""
    headers = bytearray()
    for offset, data in redundancy:
        if not 0 < offset <= MAX_OFFSET:
            raise RedError(f"timestamp offset {offset} out of RED's range 1..{MAX_OFFSET}")
        if len(data) > MAX_LENGTH:
            raise RedError(f"redundant block of {len(data)} bytes is over RED's {MAX_LENGTH}")
        headers += bytes((
            0x80 | payload_type, offset >> 6, ((offset & 0x3F) << 2) | (len(data) >> 8), len(data) & 0xFF,
        ))
    headers.append(payload_type & 0x7F)
    return bytes(headers) + b"".join(data for _, data in redundancy) + primary
