"""Authenticity tags as QR codes (segno, pure Python): an SVG to print on a piece's tag."""

from __future__ import annotations

import io

import segno
from django.utils.safestring import SafeString, mark_safe


def qr_svg(url: str, *, title: str) -> SafeString:
    """An inline SVG QR code of `url` (error correction M: a tag survives a scratch)."""
    code = segno.make(url, error="m")
    out = io.BytesIO()
    code.save(out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, title=title, svgclass="qr")
    # segno escapes the title; the rest is its own markup.
    return mark_safe(out.getvalue().decode())
