"""One contract test per private name of aiortc / aioice / pylibsrtp that ``signaling.sfu.aiortc_hooks`` uses.

The hooks are pinned to exact versions (checked at import). Moving to a new
release means bumping the pins and running this file: each failing test names
one private spot to mend in the hooks (the module is in the test's id).
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any

import pylibsrtp
import pytest
from aioice import Connection, stun
from aioice.ice import CandidatePair, StunProtocol
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver
from aiortc.codecs import depayload, is_rtx
from aiortc.rtcdtlstransport import RtpRouter, State
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from signaling.sfu.aiortc_hooks import srtp as srtp_hooks
from signaling.sfu.aiortc_hooks.receive import _NoDecoderQueue


def source_of(function: Callable[..., Any]) -> str:
    return inspect.getsource(function)


@pytest.fixture
async def pc():
    connection = RTCPeerConnection()
    connection.addTransceiver("audio", direction="recvonly")
    connection.addTransceiver("video", direction="sendonly")
    yield connection
    await connection.close()


def receiver_of(pc: RTCPeerConnection) -> RTCRtpReceiver:
    return pc.getTransceivers()[0].receiver


def sender_of(pc: RTCPeerConnection) -> RTCRtpSender:
    return pc.getTransceivers()[1].sender


# ------------------------------------------------------------ receive.py: RTCRtpReceiver

RECEIVER_STATE = {
    "_RTCRtpReceiver__kind": str,
    "_RTCRtpReceiver__started": bool,
    "_RTCRtpReceiver__codecs": dict,
    "_RTCRtpReceiver__rtx_ssrc": dict,
    "_RTCRtpReceiver__remote_streams": dict,
    "_RTCRtpReceiver__active_ssrc": dict,
    "_RTCRtpReceiver__decoder_queue": queue.Queue,
    "_enabled": bool,
}


@pytest.mark.parametrize("name", sorted(RECEIVER_STATE))
async def test_receive_receiver_state(pc: RTCPeerConnection, name: str) -> None:
    assert isinstance(getattr(receiver_of(pc), name), RECEIVER_STATE[name])


async def test_receive_receiver_jitter_buffer_and_nack_generator(pc: RTCPeerConnection) -> None:
    video = pc.getTransceivers()[1].receiver
    assert hasattr(video, "_RTCRtpReceiver__jitter_buffer")
    nack = video._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
    assert hasattr(nack, "add") and isinstance(nack.missing, set)
    # Audio: no NACK.
    assert receiver_of(pc)._RTCRtpReceiver__nack_generator is None  # type: ignore[attr-defined]
    handler = source_of(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__jitter_buffer.add(packet)" in handler and "self.__decoder_queue.put" in handler


async def test_receive_receiver_rtcp_ssrc_is_set_at_start(pc: RTCPeerConnection) -> None:
    # send_remb reads it (None until the receiver starts, like aiortc's own REMB and PLI).
    receiver = receiver_of(pc)
    assert hasattr(receiver, "_RTCRtpReceiver__rtcp_ssrc")
    receiver._set_rtcp_ssrc(1234)
    assert receiver._RTCRtpReceiver__rtcp_ssrc == 1234  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["_send_rtcp", "_send_rtcp_nack", "_send_rtcp_pli", "_handle_rtp_packet", "_handle_rtcp_packet"]
)
def test_receive_receiver_coroutines(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(RTCRtpReceiver, name))


def test_receive_receiver_registers_its_codecs_once_at_start() -> None:
    # accept_red adds RED to the transceiver's codecs before the receiver starts.
    receive = source_of(RTCRtpReceiver.receive)
    assert "if not self.__started:" in receive and "self.__codecs[codec.payloadType] = codec" in receive
    assert "_register_rtp_receiver(self, parameters)" in receive


async def test_receive_decoder_worker_stops_on_none_without_a_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", lambda codec: pytest.fail("a decoder was created"))
    output: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(rtcrtpreceiver.decoder_worker, loop, _NoDecoderQueue(), output, threading.Event())  # type: ignore[arg-type]
    assert await asyncio.wait_for(output.get(), 5) is None


def test_receive_stream_statistics_and_rtx_helpers() -> None:
    stats = StreamStatistics(90000)
    packet = RtpPacket(payload_type=97, sequence_number=7, timestamp=1, ssrc=5, payload=b"\x00\x09abc")
    stats.add(packet)
    assert stats.packets_received == 1
    original = unwrap_rtx(packet, payload_type=96, ssrc=4)
    assert (original.sequence_number, original.payload, original.ssrc) == (9, b"abc", 4)
    assert callable(depayload) and callable(is_rtx)


# ------------------------------------------------------------ receive.py: DTLS transport and router

@pytest.mark.parametrize("name", ["_state", "_rx_srtp", "_tx_srtp", "_rtp_router", "_rtp_header_extensions_map",
                                  "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets", "transport"])
async def test_receive_dtls_transport_state(pc: RTCPeerConnection, name: str) -> None:
    dtls = receiver_of(pc).transport
    assert isinstance(dtls, RTCDtlsTransport) and hasattr(dtls, name)
    assert dtls._state is State.NEW and State.CONNECTED


def test_receive_dtls_routes_rtcp_to_handle_rtcp_packet() -> None:
    assert "_handle_rtcp_packet(packet)" in source_of(RTCDtlsTransport._handle_rtcp_data)


def test_receive_router_tables_and_route_rtp() -> None:
    router = RtpRouter()
    receiver = object()
    router.register_receiver(receiver, ssrcs=[5], payload_types=[96])  # type: ignore[arg-type]
    assert router.ssrc_table[5] is receiver and receiver in router.payload_type_table[96]
    assert router.route_rtp(RtpPacket(payload_type=96, ssrc=5)) is receiver


def test_receive_header_extension_ids() -> None:
    ids = HeaderExtensionsMap()._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
    for name in ("mid", "abs_send_time", "audio_level", "rtp_stream_id", "repaired_rtp_stream_id"):
        assert hasattr(ids, name)
    # set_stream_id_extensions sets the RID ids aiortc does not negotiate; parsing then reads them.
    ids.rtp_stream_id, ids.repaired_rtp_stream_id = 10, 11
    extensions = HeaderExtensionsMap()
    extensions._HeaderExtensionsMap__ids = ids  # type: ignore[attr-defined]
    assert extensions.get(0xBEDE, bytes([0xA0, ord("h"), 0xB0, ord("l"), 0, 0])).rtp_stream_id == "h"


def test_receive_router_mid_table() -> None:
    router = RtpRouter()
    receiver = object()
    router.register_receiver(receiver, ssrcs=[], payload_types=[96], mid="3")  # type: ignore[arg-type]
    assert router.mid_table["3"] is receiver


async def test_receive_transceiver_codecs(pc: RTCPeerConnection) -> None:
    assert isinstance(pc.getTransceivers()[0]._codecs, list)


# ------------------------------------------------------------ send.py: RTCRtpSender

SENDER_STATE = {
    "_ssrc": int,
    "_rtx_ssrc": int,
    "_stream_id": str,
    "_RTCRtpSender__rtp_header_extensions_map": HeaderExtensionsMap,
    "_RTCRtpSender__rtp_started": asyncio.Event,
    "_RTCRtpSender__rtp_exited": asyncio.Event,
    "_RTCRtpSender__packet_count": int,
    "_RTCRtpSender__octet_count": int,
    "_RTCRtpSender__rtp_timestamp": int,
    "_RTCRtpSender__ntp_timestamp": int,
}


@pytest.mark.parametrize("name", sorted(SENDER_STATE))
async def test_send_sender_state(pc: RTCPeerConnection, name: str) -> None:
    assert isinstance(getattr(sender_of(pc), name), SENDER_STATE[name])


@pytest.mark.parametrize("name", ["_RTCRtpSender__rtx_payload_type", "_RTCRtpSender__mid", "_RTCRtpSender__rtt"])
async def test_send_sender_optional_state(pc: RTCPeerConnection, name: str) -> None:
    assert getattr(sender_of(pc), name) is None  # set once negotiated / measured


def test_send_sender_run_rtp_is_started_by_send() -> None:
    assert "self._run_rtp(" in source_of(RTCRtpSender.send)
    assert inspect.iscoroutinefunction(RTCRtpSender._run_rtp)


def test_send_sender_nack_pli_and_rtt_go_through_overridable_methods() -> None:
    # make_forwarding_sender wraps _handle_rtcp_packet (REMB and receiver reports), a coroutine
    # that aiortc's transport awaits per packet it routes to the sender.
    assert inspect.iscoroutinefunction(RTCRtpSender._handle_rtcp_packet)
    assert "await recipient._handle_rtcp_packet(packet)" in source_of(RTCDtlsTransport._handle_rtcp_data)
    handler = source_of(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in handler and "self._send_keyframe()" in handler
    assert "self.__rtt = " in handler


def test_send_sender_reports_read_the_counters() -> None:
    rtcp = source_of(RTCRtpSender._run_rtcp)
    for name in ("self.__ntp_timestamp", "self.__rtp_timestamp", "self.__packet_count", "self.__octet_count"):
        assert name in rtcp


async def test_send_stream_id_is_the_offered_msid(pc: RTCPeerConnection) -> None:
    sender_of(pc)._stream_id = "hirfa-amina"
    offer = await pc.createOffer()
    assert "a=msid:hirfa-amina " in offer.sdp


# ------------------------------------------------------------ send.py / ice.py: aioice

@pytest.mark.parametrize("name", ["_nominated", "_protocols", "remote_password", "local_username"])
def test_ice_connection_state(name: str) -> None:
    connection = Connection(ice_controlling=True)
    assert hasattr(connection, name)
    assert isinstance(connection._nominated, dict) and isinstance(connection._protocols, list)


async def test_ice_gatherer_connection(pc: RTCPeerConnection) -> None:
    assert isinstance(receiver_of(pc).transport.transport.iceGatherer._connection, Connection)
    assert receiver_of(pc).transport.transport._connection is receiver_of(pc).transport.transport.iceGatherer._connection


def test_ice_get_component_candidates_signature() -> None:
    assert list(inspect.signature(Connection.get_component_candidates).parameters)[:3] == ["self", "component", "addresses"]
    assert inspect.iscoroutinefunction(Connection.get_component_candidates)


def test_ice_build_request_and_stun_request() -> None:
    assert list(inspect.signature(Connection.build_request).parameters) == ["self", "pair", "nominate"]
    parameters = inspect.signature(StunProtocol.request).parameters
    assert {"integrity_key", "retransmissions"} <= set(parameters)
    assert issubclass(stun.TransactionError, Exception)


def test_ice_local_credentials_are_read_from_the_private_fields() -> None:
    """``restart_ice`` writes ``_local_username``/``_local_password``: the public properties
    (what aiortc's offers and aioice's checks read) must answer them."""
    connection = Connection(ice_controlling=True)
    connection._local_username, connection._local_password = "abcd", "p" * 22
    assert (connection.local_username, connection.local_password) == ("abcd", "p" * 22)
    assert "self.local_password" in source_of(Connection.request_received)
    assert "self.local_username" in source_of(Connection._valid_username)
    assert "self.remote_password" in source_of(Connection.check_start)


def test_ice_checks_after_connect_nominate_in_place() -> None:
    """``ice_restart_answered`` relies on incoming checks starting triggered checks after
    connect() (``check_incoming`` -> ``check_start_task``), on a controlling agent nominating
    on every check, on a nominated pair replacing ``_nominated[component]`` in place, and on
    a FAILED pair being checked again through ``check_start_task``."""
    assert "self.check_start_task(pair)" in source_of(Connection.check_incoming)
    assert "nominate = self.ice_controlling and not self.remote_is_lite" in source_of(Connection.check_start)
    assert "self._nominated[pair.component] = pair" in source_of(Connection.check_complete)
    assert isinstance(Connection(ice_controlling=True)._check_list, list)
    assert {"FAILED", "WAITING"} <= set(CandidatePair.State.__members__)
    assert CandidatePair(None, None).task is None  # type: ignore[arg-type]


def test_ice_stun_protocol_and_pairs() -> None:
    assert callable(StunProtocol.datagram_received) and "receiver" in inspect.signature(StunProtocol.__init__).parameters
    assert {"protocol", "remote_addr"} <= {n for n in dir(CandidatePair) if not n.startswith("__")} | set(
        inspect.signature(CandidatePair.__init__).parameters
    )


def test_ice_consent_runs_on_the_nominated_pairs() -> None:
    assert "self._nominated.values()" in source_of(Connection.query_consent)


def test_ice_consent_task_is_started_from_the_instance_and_cleared_on_expiry() -> None:
    """``_query_consent`` replaces ``query_consent`` on the instance: connect() must call it
    through ``self`` and keep its task in ``_query_consent_task`` (which close() awaits)."""
    assert "self.query_consent()" in source_of(Connection.connect)
    assert "self._query_consent_task" in source_of(Connection.connect)
    assert "self._query_consent_task" in source_of(Connection.close)


# ------------------------------------------------------------ srtp.py: pylibsrtp

def test_srtp_session_buffers_and_bindings() -> None:
    session = pylibsrtp.Session(pylibsrtp.Policy(key=b"k" * 30, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    assert session._srtp[0] is not None and len(session._cdata) >= 1500 and session._buffer is not None
    from pylibsrtp._binding import ffi, lib

    assert callable(lib.srtp_protect) and callable(lib.srtp_unprotect) and ffi.new("int *") is not None


def test_srtp_processor_matches_pylibsrtp() -> None:
    key = bytes(range(30))
    ours = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    theirs = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"payload").serialize()
    protected = srtp_hooks.srtp_protector(ours)(packet)
    assert protected == theirs.protect(packet)
    reader = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    assert srtp_hooks.srtp_unprotector(reader)(protected) == packet
