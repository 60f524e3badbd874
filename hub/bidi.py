"""Bidirectional text: names cannot reorder the sentences they appear in.

A name holding U+202E (right-to-left override) or an unclosed isolate turns
"Amina was banned" into something else entirely, and on Arabic pages around Latin
names the damage is easy to miss. Names are stored without bidi controls
(`bidi_strip`), and wherever a name (or any member-chosen text) is put into a
sentence it is isolated (`bidi_isolate`: U+2068 FIRST STRONG ISOLATE … U+2069 POP
DIRECTIONAL ISOLATE), which keeps its direction to itself. Pages do the same in
the browser (`frontend/static/hirfa/dom.js: translator`).
"""

from __future__ import annotations

import re

# LRE RLE PDF LRO RLO, LRI RLI FSI PDI, LRM RLM, ALM.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
FSI, PDI = "\u2068", "\u2069"


def bidi_strip(text: str) -> str:
    """`text` without bidi control characters."""
    return BIDI_CONTROLS.sub("", text)


def bidi_isolate(text: str) -> str:
    """`text` (stripped) between FSI and PDI, ready to be put into a sentence."""
    return f"{FSI}{bidi_strip(text)}{PDI}"
