"""Every place where the SFU reaches into aiortc/aioice/pylibsrtp internals.

aiortc decodes what a receiver gets and encodes what a sender sends. A
forwarding server must do neither, so this package swaps a few private
pieces of one peer connection's objects, and nothing else in the SFU touches
aiortc privates. One module per concern:

* :mod:`.receive` — a publisher's packets, taken in the socket's callback
  (:func:`receive_srtp`): unprotected, parsed and handed one by one to the
  forwarder (:func:`tap_receiver_packets`), with NACKs retried upstream on an
  RTT-aware schedule (:class:`NackScheduler`); no decoder is ever created.
  :class:`FrameAssembler` / :func:`tap_receiver` assemble whole frames, for
  test clients and tools that look at frames;
* :mod:`.send` — a subscription's sender: its RTP loop is replaced by an
  :class:`RtpWriter` that sends the publisher's payloads under the
  subscription's own header, batched per socket wake-up; NACKs and PLIs go to
  callbacks; the sender reports carry the publisher's NTP↔RTP mapping;
* :mod:`.srtp` — SRTP protect/unprotect in pylibsrtp's buffers;
* :mod:`.ice` — host candidates in a configured port range, the media socket
  protocol, consent freshness and the ICE restart of one peer connection.

The names used are private to the versions below; importing this package
with another version fails at once rather than misbehaving later, and
``tests/signaling/sfu/test_contracts.py`` holds one test per private name.
"""

from __future__ import annotations

import aioice
import aiortc
import pylibsrtp

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"
PYLIBSRTP_VERSION = "1.0.0"

if aiortc.__version__ != AIORTC_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on aiortc {AIORTC_VERSION} internals, "
        f"found aiortc {aiortc.__version__}"
    )
if aioice.__version__ != AIOICE_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on aioice {AIOICE_VERSION} internals, "
        f"found aioice {aioice.__version__}"
    )
if pylibsrtp.__version__ != PYLIBSRTP_VERSION:  # pragma: no cover - guarded by the pin
    raise ImportError(
        f"signaling.sfu relies on pylibsrtp {PYLIBSRTP_VERSION} internals, "
        f"found pylibsrtp {pylibsrtp.__version__}"
    )

from .ice import (
    HostCandidatePolicy,
    LivenessWatch,
    configure_host_candidates,
    ice_restart_answered,
    ports_in_use,
    restart_ice,
    stale_media_dropped,
    stun_round_trip,
)
from .receive import (
    AssembledFrame,
    FrameAssembler,
    NackScheduler,
    NackSchedulers,
    PacketSink,
    accept_red,
    send_pli,
    send_remb,
    set_stream_id_extensions,
    tap_receiver,
    tap_receiver_packets,
    tap_sender_reports,
)
from .send import RtpWriter, make_forwarding_sender, set_stream_id

__all__ = [
    "AssembledFrame",
    "FrameAssembler",
    "HostCandidatePolicy",
    "LivenessWatch",
    "NackScheduler",
    "NackSchedulers",
    "PacketSink",
    "RtpWriter",
    "accept_red",
    "configure_host_candidates",
    "ice_restart_answered",
    "make_forwarding_sender",
    "ports_in_use",
    "restart_ice",
    "send_pli",
    "send_remb",
    "set_stream_id",
    "set_stream_id_extensions",
    "stale_media_dropped",
    "stun_round_trip",
    "tap_receiver",
    "tap_receiver_packets",
    "tap_sender_reports",
]
