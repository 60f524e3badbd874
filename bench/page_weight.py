"""First-load weight of each main page, compressed: what a phone downloads on a cold cache.

    .venv/bin/python bench/page_weight.py           # a table, in bytes and KB
    .venv/bin/python bench/page_weight.py --json    # {"pages": {path: {...}}, "budget_bytes": ...}

In this process, on a throw-away SQLite database, a member (a moderator with rooms,
messages, a gathering, a product and a census card, so every part of every page shows)
and an anonymous visitor request each main page through Django's test client in Arabic.
For each page it counts the HTML, every stylesheet it links and every ES module it
loads with the modules they import (each file once), each gzip-compressed at level 6
(nginx's usual `gzip_comp_level`; see deploy/). Images are not counted (lazy, and
on no page's critical path). The budget is 150 KB; the exit status is 1 when a page
goes over it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_BYTES = 150 * 1024
IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"(\./[^"]+)"', re.MULTILINE)


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def static_file(url: str) -> bytes:
    from django.contrib.staticfiles import finders

    path = finders.find(url.split("?")[0].removeprefix("/static/"))
    if not path:
        raise FileNotFoundError(url)
    return Path(path).read_bytes()


def first_load(client, path: str) -> dict[str, int]:
    """The compressed bytes of `path`'s HTML, stylesheets and module closure."""
    response = client.get(path)
    assert response.status_code == 200, f"{path}: HTTP {response.status_code}"
    html = response.content
    text = html.decode()
    sizes = {"html": gz(html), "css": 0, "js": 0, "files": 1}
    for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', text):
        sizes["css"] += gz(static_file(href))
        sizes["files"] += 1
    seen: set[str] = set()
    pending = re.findall(r'<script type="module" src="([^"]+)"', text)
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        data = static_file(url)
        sizes["js"] += gz(data)
        sizes["files"] += 1
        base = url.rsplit("/", 1)[0]
        pending += [f"{base}/{spec[2:]}" for spec in IMPORT.findall(data.decode())]
    sizes["total"] = sizes["html"] + sizes["css"] + sizes["js"]
    return sizes


def site() -> tuple[Any, list[str], list[str]]:
    """The member, his pages and the visitor's pages, written to the current database."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from gatherings import services as gathering_services
    from hub.models import Wilaya
    from registry import services as registry_services
    from rooms import services as room_services
    from rooms.models import Room, RoomKind
    from tests import factories

    tlemcen = Wilaya.objects.get(code=13)
    poterie = factories.trade()
    karim = factories.artisan("karim", trades=[poterie], wilaya_=tlemcen, display_name="Karim Benali")
    factories.moderator_of(karim, trade_=poterie)
    factories.moderator_of(karim, wilaya_=tlemcen)
    amina = factories.artisan("amina", trades=[poterie], wilaya_=tlemcen, display_name="Amina Belkacem")
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    region = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    for i in range(40):
        room_services.send_buckets.reset()
        room_services.message_post(user=amina, room_id=guild.pk, client_id=f"m{i}",
                                   text="Salam @karim, le four est prêt, on cuit demain matin. " * 3)
    product = registry_services.product_create(user=karim, title="Jarre de Nedroma", price_dzd=4500)
    registry_services.exchange_post(user=karim, kind="offer", material="clay", quantity="25", unit="kg",
                                    wilaya_id=tlemcen.pk)
    gathering = gathering_services.gathering_schedule(
        user=karim, room_id=region.pk, title="Atelier du vendredi",
        start=datetime.now(ZoneInfo("Africa/Algiers")).replace(microsecond=0) + timedelta(days=3),
        duration=timedelta(hours=2),
    )
    member = [
        "/rooms/", f"/rooms/{guild.pk}/", f"/rooms/{guild.pk}/meeting/", "/gatherings/", "/gatherings/new",
        f"/gatherings/{gathering.pk}/", "/artisans/", "/artisans/karim/", f"/products/{product.pk}/",
        "/exchange/", "/census/", "/registry/", "/notifications/", "/me/", "/profile/", "/moderation/",
    ]
    visitor = ["/login/", "/signup/", "/artisans/", "/census/"]
    return karim, member, visitor


def measure() -> dict[str, dict[str, int]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("HIRFA_DATA_DIR", tempfile.mkdtemp(prefix="hirfa-weight-"))
    os.environ["HIRFA_EMBEDDED_WORKER"] = "0"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    member_user, member_pages, visitor_pages = site()
    results: dict[str, dict[str, int]] = {}
    visitor = Client(HTTP_ACCEPT_LANGUAGE="ar")
    visitor.cookies["django_language"] = "ar"
    for path in visitor_pages:
        results[f"{path} (visitor)"] = first_load(visitor, path)
    member = Client(HTTP_ACCEPT_LANGUAGE="ar")
    member.cookies["django_language"] = "ar"
    member.force_login(member_user)
    for path in member_pages:
        results[path] = first_load(member, path)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = measure()
    over = [path for path, sizes in results.items() if sizes["total"] > BUDGET_BYTES]
    if args.json:
        print(json.dumps({"pages": results, "budget_bytes": BUDGET_BYTES, "over_budget": over}))
    else:
        print(f"{'page':34} {'html':>7} {'css':>7} {'js':>7} {'total':>8}  files   (gzip -6, bytes)")
        for path, s in results.items():
            print(f"{path:34} {s['html']:7} {s['css']:7} {s['js']:7} {s['total']:8}  {s['files']:5}"
                  f"   {s['total'] / 1024:6.1f} KB")
        print(f"budget {BUDGET_BYTES} bytes; over budget: {over or 'none'}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
