from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import rtcrtpreceiver, rtcrtpsender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from signaling.sfu import Sfu, SfuConfig
from tests.parallel import worker_port


@dataclass
class CodecLedger:
    """Who created encoders and decoders, and what the encoders produced."""

    encoders: list[tuple[Any, Any]] = field(default_factory=list)  # (sender, encoder)
    decoders: list[Any] = field(default_factory=list)
    #: id(sender) -> frames (depacketized bitstream) its encoder produced, in order
    encoded: dict[int, list[bytes]] = field(default_factory=dict)

    def frames_of(self, sender: Any) -> list[bytes]:
        return self.encoded.get(id(sender), [])


@pytest.fixture
def codec_ledger(monkeypatch: pytest.MonkeyPatch) -> CodecLedger:
    """Counts every encoder/decoder aiortc creates and records encoder output."""
    ledger = CodecLedger()
    real_get_encoder = rtcrtpsender.get_encoder
    real_get_decoder = rtcrtpreceiver.get_decoder

    def get_encoder(codec: Any) -> Any:
        sender = sys._getframe(1).f_locals.get("self")
        encoder = real_get_encoder(codec)
        ledger.encoders.append((sender, encoder))
        frames = ledger.encoded.setdefault(id(sender), [])
        if isinstance(encoder, Vp8Encoder):
            real_packetize = encoder._packetize

            def packetize(buffer: bytes, picture_id: int) -> list[bytes]:
                frames.append(bytes(buffer))
                return real_packetize(buffer, picture_id)

            encoder._packetize = packetize  # type: ignore[method-assign]
        elif isinstance(encoder, OpusEncoder):
            real_encode = encoder.encode

            def encode(frame: Any, force_keyframe: bool = False) -> Any:
                payloads, timestamp = real_encode(frame, force_keyframe)
                frames.extend(payloads)
                return payloads, timestamp

            encoder.encode = encode  # type: ignore[method-assign]
        return encoder

    def get_decoder(codec: Any) -> Any:
        ledger.decoders.append(codec)
        return real_get_decoder(codec)

    monkeypatch.setattr(rtcrtpsender, "get_encoder", get_encoder)
    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", get_decoder)
    return ledger


@pytest.fixture
async def sfu():
    server = Sfu(SfuConfig(announced_addresses=("127.0.0.1",), bind_address="127.0.0.1", port_min=worker_port(42000), port_max=worker_port(42999)))
    yield server
    await server.close()
