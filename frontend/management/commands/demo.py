"""`manage.py demo` (`make demo`, `hirfa demo`): seed a believable country (`frontend.demo`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from frontend.demo import MAKERS, seed_country
from rooms.demo import PERSONAS


class Command(BaseCommand):
    help = (
        "Seed a demonstration country (idempotent): artisans in twenty wilayas with storefronts and"
        " pieces with photos, raw-material posts, public gatherings with answers, lively rooms."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        seed_country()
        self.stdout.write(self.style.SUCCESS("Demo data is in place. Log in as:"))
        for persona in PERSONAS:
            role = " (moderator)" if persona.moderates_wilaya else ""
            self.stdout.write(
                f"  {persona.username:<8} password: {persona.password:<22} "
                f"{persona.trade}, wilaya {persona.wilaya:02d}{role}"
            )
        self.stdout.write(
            f"  and {len(MAKERS)} more artisans (password: <username>-atelier-2025), e.g. "
            f"{MAKERS[0].username} ({MAKERS[0].trade}, wilaya {MAKERS[0].wilaya:02d})."
        )
        self.stdout.write("Open / as a visitor, /artisans/?q=nhas+tlemcen, /exchange/ and /gatherings/.")
