"""SRTP protect/unprotect in pylibsrtp's own buffers (private to pylibsrtp 1.0.0)."""

from __future__ import annotations

from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib


class SrtpProcessor:
    """``Session.protect``/``unprotect`` without the per-call allocation and checks of pylibsrtp's wrapper.

    Uses the session's own 1500-byte buffer (the result is copied out at
    once, as by the wrapper) and raises :class:`pylibsrtp.Error` on failure,
    :class:`ValueError` for a packet too long for the buffer.
    """

    def __init__(self, session: pylibsrtp.Session, func: Any, trailer: int) -> None:
        self.session = session
        self._func = func
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._limit = len(session._cdata) - trailer
        self._length = _srtp_ffi.new("int *")

    def __call__(self, packet: bytes) -> bytes:
        size = len(packet)
        if size > self._limit:
            raise ValueError(f"RTP packet of {size} bytes is too long")
        self._buffer[0:size] = packet
        self._length[0] = size
        status = self._func(self._srtp, self._cdata, self._length)
        if status:
            raise pylibsrtp.Error(f"SRTP failed with status {status}")
        return self._buffer[0 : self._length[0]]


def srtp_protector(session: pylibsrtp.Session) -> SrtpProcessor:
    """SRTP protection of RTP packets for ``session`` (pylibsrtp's trailer allowance)."""
    return SrtpProcessor(session, _srtp_lib.srtp_protect, 16 + 128)


def srtp_unprotector(session: pylibsrtp.Session) -> SrtpProcessor:
    """SRTP authentication and decryption of RTP packets for ``session``."""
    return SrtpProcessor(session, _srtp_lib.srtp_unprotect, 0)
