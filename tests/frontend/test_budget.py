"""The room page stays light for phones on rural connections: the page, its
stylesheet and every ES module it loads weigh under 150 KB, uncompressed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from rooms import services

BUDGET_BYTES = 150 * 1024
STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "hirfa"


def static_bytes(url: str) -> tuple[int, str]:
    path = finders.find(url.removeprefix("/static/"))
    assert path, f"{url} is not a static file"
    data = Path(path).read_bytes()
    return len(data), data.decode("utf-8", errors="replace")


def module_closure(url: str, seen: set[str]) -> int:
    """Bytes of an ES module and of every module it imports, each counted once."""
    if url in seen:
        return 0
    seen.add(url)
    size, text = static_bytes(url)
    base = url.rsplit("/", 1)[0]
    for spec in re.findall(r'^\s*import\s[^;]*?from\s+"(\./[^"]+)"', text, re.MULTILINE):
        size += module_closure(f"{base}/{spec[2:]}", seen)
    return size


@pytest.mark.django_db
def test_room_page_first_load_is_under_150_kb(client, amina, yacine, guild):
    for i in range(30):
        services.send_buckets.reset()  # the rate limit is not what this test measures
        services.message_post(
            user=yacine, room_id=guild.pk, client_id=f"c{i}", text="Salam, le four est prêt. " * 8
        )
    client.force_login(amina)
    response = client.get(reverse("room", args=[guild.pk]))
    html = response.content.decode()
    total = len(response.content)
    seen: set[str] = set()
    for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', html):
        total += static_bytes(href)[0]
    scripts = re.findall(r'<script type="module" src="([^"]+)"', html)
    assert scripts, "the room page loads its module"
    for src in scripts:
        total += module_closure(src, seen)
    assert {"/static/hirfa/room.js", "/static/hirfa/socket.js", "/static/hirfa/markdown.js"} <= seen
    assert total < BUDGET_BYTES, f"first load is {total} bytes"
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html  # no CDN


def test_stylesheet_uses_logical_properties_only():
    css = (STATIC / "hirfa.css").read_text(encoding="utf-8")
    physical = re.findall(
        r"(?:margin|padding|border)-(?:left|right)\b|(?<![\w-])(?:left|right)\s*:"
        r"|text-align\s*:\s*(?:left|right)|float\s*:\s*(?:left|right)|clear\s*:\s*(?:left|right)",
        css,
    )
    assert physical == []


def test_no_script_writes_html():
    for path in STATIC.glob("*.js"):
        text = path.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_every_main_page_first_load_is_under_150_kb_compressed(language):
    """What docs/performance.md lists (bench/page_weight.py): each main page's HTML, stylesheets
    and module closure, gzip -6 as nginx sends them, for a member and a visitor."""
    from django.test import Client

    from bench.page_weight import BUDGET_BYTES as BENCH_BUDGET
    from bench.page_weight import first_load, site
    from tests import reference_data

    reference_data.restore()  # the wilayas the site is built in, should a flush have emptied them
    assert BENCH_BUDGET == BUDGET_BYTES
    member_user, member_pages, visitor_pages = site()
    member, visitor = Client(), Client()
    member.force_login(member_user)
    weights = {}
    for client, paths in ((visitor, visitor_pages), (member, member_pages)):
        client.cookies["django_language"] = language
        for path in paths:
            weights[path, client is member] = first_load(client, path)["total"]
    assert len(weights) == len(member_pages) + len(visitor_pages) >= 20
    over = {page: size for page, size in weights.items() if size >= BUDGET_BYTES}
    assert over == {}, over
