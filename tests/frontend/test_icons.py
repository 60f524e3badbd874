"""One icon set: the interface draws its icons from the SVG sprite (static/hirfa/icons.svg,
Lucide), never with emoji, which render differently (or as empty boxes) from one phone to
the next. Emoji stay where people write them: messages and reactions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from rooms import services

ROOT = Path(__file__).resolve().parents[2]
EMOJI = re.compile("[\U0001f300-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
SCRIPTS = [
    "room.js", "online.js", "rooms.js", "voice.js", "dom.js", "socket.js", "badge.js", "push.js", "pwa.js",
    "meeting.js", "meeting-peer.js", "meeting-banner.js", "meeting-stats.js", "lip-sync.js",
]


def _without_data(body: str) -> str:
    """The page without its JSON blobs (messages and the reaction choices are people's emoji)."""
    return re.sub(r'<script id="(config|i18n)" type="application/json">.*?</script>', "", body, flags=re.DOTALL)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["rooms", "me", "moderation", "room", "meeting"])
def test_pages_draw_icons_from_the_sprite_not_emoji(client, nadia, guild, name):
    services.message_post(user=nadia, room_id=guild.pk, client_id="c", text="Salam 👍🎉")
    client.force_login(nadia)
    url = reverse(name, args=[guild.pk]) if name in ("room", "meeting") else reverse(name)
    body = client.get(url).content.decode()
    found = EMOJI.findall(_without_data(body))
    assert not found, f"{name}: emoji in the interface: {found}"
    assert "icons.svg#" in body
    if name == "room":
        config = json.loads(re.search(r'<script id="config" type="application/json">(.*?)</script>', body, re.DOTALL).group(1))
        assert "👍" in config["reactions"] and "🎉" in config["messages"][-1]["text"]  # people's emoji stay


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_draw_no_emoji(script):
    text = (ROOT / "frontend" / "static" / "hirfa" / script).read_text(encoding="utf-8")
    assert not EMOJI.findall(text), f"{script} draws emoji: {EMOJI.findall(text)}"


def test_every_icon_used_is_in_the_sprite():
    sprite = (ROOT / "frontend" / "static" / "hirfa" / "icons.svg").read_text(encoding="utf-8")
    symbols = set(re.findall(r'<symbol id="([\w-]+)"', sprite))
    used: set[str] = set()
    for path in ROOT.glob("*/templates/**/*.html"):
        used |= set(re.findall(r'{% icon "([\w-]+)"', path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"icons\.svg' %}#([\w-]+)", path.read_text(encoding="utf-8")))
    for script in SCRIPTS:
        used |= set(re.findall(r'icon\([^,]+, "([\w-]+)"\)', (ROOT / "frontend" / "static" / "hirfa" / script).read_text()))
    assert used and used <= symbols, f"not in the sprite: {sorted(used - symbols)}"
