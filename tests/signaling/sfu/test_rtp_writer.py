"""A subscription's writer (signaling/sfu/aiortc_hooks/send.py) on a fake sender: what each
packet carries, and what its sender reports announce, at the cost of a forwarded packet.

The writer runs for every packet and subscriber (about 15,500 a second in an assembly of 100);
these pin what it writes while its per-packet work is cut.
"""

from __future__ import annotations

import types
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket

from signaling.sfu.aiortc_hooks import send as send_hooks
from signaling.sfu.aiortc_hooks.send import NTP_EPOCH_OFFSET, RtpWriter

KEY = bytes(range(30))


class Socket:
    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def sendto(self, data: bytes, address: Any) -> None:
        self.datagrams.append(bytes(data))

    def sendmsg(self, buffers: list[bytes], ancdata: Any, flags: int, address: Any) -> None:
        self.datagrams.extend(bytes(b) for b in buffers)


class Transport:
    def get_write_buffer_size(self) -> int:
        return 0

    def sendto(self, data: bytes, address: Any) -> None:
        raise AssertionError("written on the socket while it takes them")


def writer_on_fake_sender(
    *, mid: str = "0", ids: dict[str, int | None] | None = None, rtx: tuple[int, int] | None = None
) -> tuple[RtpWriter, Any, Socket]:
    """A writer on a fake sender and socket; ``rtx``: its RTX (SSRC, payload type)."""
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    socket = Socket()
    protocol = types.SimpleNamespace(transport=Transport(), hirfa_socket=socket)
    pair = types.SimpleNamespace(protocol=protocol, remote_addr=("127.0.0.1", 9))
    dtls = types.SimpleNamespace(
        _state=DtlsState.CONNECTED, _tx_srtp=pylibsrtp.Session(policy=policy),
        transport=types.SimpleNamespace(_connection=types.SimpleNamespace(_nominated={1: pair})),
    )
    extension_ids = types.SimpleNamespace(**(ids or {"mid": 1, "abs_send_time": 2, "audio_level": 3}))
    sender = types.SimpleNamespace(
        transport=dtls, _ssrc=1234, _rtx_ssrc=rtx[0] if rtx else None,
        _RTCRtpSender__rtx_payload_type=rtx[1] if rtx else None,
        _RTCRtpSender__rtp_header_extensions_map=types.SimpleNamespace(_HeaderExtensionsMap__ids=extension_ids),
        _RTCRtpSender__mid=mid, _RTCRtpSender__packet_count=0, _RTCRtpSender__octet_count=0,
        _RTCRtpSender__rtp_timestamp=0, _RTCRtpSender__ntp_timestamp=0,
    )
    return RtpWriter(sender, types.SimpleNamespace(payloadType=111)), sender, socket  # type: ignore[arg-type]


def unprotected(datagram: bytes) -> RtpPacket:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    return RtpPacket.parse(pylibsrtp.Session(policy=policy).unprotect(datagram))


def extensions_as_built_before(ids: dict[str, int | None], mid: str, now: float, audio_level: int | None) -> bytes:
    """The header extension block, element by element (RFC 8285 one-byte form)."""

    def element(ext_id: int | None, value: bytes) -> bytes:
        return bytes([(ext_id << 4) | (len(value) - 1)]) + value if ext_id and value else b""

    elements = element(ids["mid"], mid.encode())
    if ids["abs_send_time"]:
        elements += element(ids["abs_send_time"], (int((now + NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF).to_bytes(3, "big"))
    if audio_level is not None:
        elements += element(ids["audio_level"], bytes([audio_level & 0x7F]))
    elements += b"\x00" * (-len(elements) % 4)
    return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements


@pytest.mark.parametrize("ids", [
    {"mid": 1, "abs_send_time": 2, "audio_level": 3},
    {"mid": 4, "abs_send_time": None, "audio_level": 1},
    {"mid": 1, "abs_send_time": 3, "audio_level": None},
    {"mid": None, "abs_send_time": 2, "audio_level": 5},
])
@pytest.mark.parametrize("mid", ["0", "12"])
@pytest.mark.parametrize("audio_level", [None, 0, 30, 127])
def test_each_packet_carries_its_mid_send_time_and_level(ids: dict[str, int | None], mid: str, audio_level: int | None) -> None:
    writer, _sender, socket = writer_on_fake_sender(mid=mid, ids=ids)
    for now in (1_700_000_000.0, 1_700_000_000.0, 1_700_000_000.25):
        assert writer._extensions(now, audio_level) == extensions_as_built_before(ids, mid, now, audio_level)
    assert writer.send(b"opus", 7, 960, True, audio_level)
    packet = unprotected(socket.datagrams[-1])
    assert (packet.payload, packet.sequence_number, packet.timestamp, packet.marker, packet.ssrc) == (b"opus", 7, 960, 1, 1234)


def test_a_burst_leaves_at_its_end_in_order() -> None:
    writer, sender, socket = writer_on_fake_sender()
    assert send_hooks.begin_burst()
    for seq in range(5):
        writer.send(bytes(100), seq, 3000, seq == 4)
    assert socket.datagrams == []
    send_hooks.end_burst()
    assert [unprotected(d).sequence_number for d in socket.datagrams] == [0, 1, 2, 3, 4]
    assert sender._RTCRtpSender__packet_count == 5 and sender._RTCRtpSender__octet_count == 500


def test_sender_reports_map_the_last_timestamp_without_asking_the_mapping_for_every_packet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The publisher's NTP time of our timestamp, for his lip sync: any recent (RTP, NTP) pair
    # of his clock will do (a report goes every 0.5-1.5 s), so not one computed per packet.
    clock = [100.0]
    monkeypatch.setattr(send_hooks.time, "monotonic", lambda: clock[0])
    writer, sender, _socket = writer_on_fake_sender()
    asked: list[int] = []

    def mapping(timestamp: int) -> int:
        asked.append(timestamp)
        return timestamp * 1000

    writer.clock_mapping = mapping
    for index in range(50):
        clock[0] += 0.001
        writer.send(b"opus", index, 960 * index, True)
    assert len(asked) <= 2
    rtp, ntp = sender._RTCRtpSender__rtp_timestamp, sender._RTCRtpSender__ntp_timestamp
    assert ntp == rtp * 1000  # a pair of the same instant

    # Another source in his slot: the next packet's report is his.
    writer.clock_mapping = lambda timestamp: timestamp * 7
    writer.send(b"opus", 50, 960 * 50, True)
    assert (sender._RTCRtpSender__rtp_timestamp, sender._RTCRtpSender__ntp_timestamp) == (960 * 50, 960 * 50 * 7)

    clock[0] += 1.0
    writer.clock_mapping = mapping
    writer.send(b"opus", 51, 960 * 51, True)
    assert sender._RTCRtpSender__ntp_timestamp == 960 * 51 * 1000


def test_a_subscription_that_never_sent_media_can_still_be_padded_for_a_probe() -> None:
    """A subscriber none of whose videos was sent yet (all paused from the start) has video
    m-lines that never carried a packet; a probe pads them. Padding used to need a media
    packet's timestamp first, so such probes sent nothing and held on an empty link (the lab's
    narrow subscriber, made audio-only from his first round by the allocator change in
    wip/narrow-join-guess: two probes held on his 300 kbit/s link, and the camera they let
    through flooded it)."""
    writer, _sender, socket = writer_on_fake_sender(rtx=(5678, 97))
    # Padding goes through asyncio's transport (media straight on the socket): both recorded.
    writer._nominated[1].protocol.transport = types.SimpleNamespace(
        sendto=socket.sendto, get_write_buffer_size=lambda: 0
    )
    assert writer.send_padding(3, 200) == 3
    packets = [unprotected(datagram) for datagram in socket.datagrams]
    assert [(p.ssrc, p.payload_type, p.padding_size, p.payload) for p in packets] == [(5678, 97, 200, b"")] * 3
    assert len({p.sequence_number for p in packets}) == 3
    # Once media went, padding carries its last timestamp, as before.
    assert writer.send(bytes(100), 7, 4242, True)
    writer.send_padding(1, 200)
    assert unprotected(socket.datagrams[-1]).timestamp == 4242
