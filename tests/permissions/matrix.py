"""Reading docs/permissions.md, and comparing what the code answered with it.

Each section `### <Surface>: <place>` holds one table: a row per action (its
key in backticks in the first column), a column per role, a word per cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.permissions.world import ROLES

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"

#: The document's column headers, in the order of `ROLES`.
HEADERS = {
    "anonymous": "anonymous",
    "member": "member",
    "other wilaya": "other_wilaya",
    "banned": "banned",
    "muted": "muted",
    "trade mod": "trade_moderator",
    "wilaya mod": "wilaya_moderator",
    "admin": "admin",
}
#: The document's places (after the colon of a heading) and the room kind each names.
PLACES = {
    "no room": "",
    "guild room": "guild",
    "region room": "region",
    "guild × region room": "guild_region",
    "private group": "group",
    "direct room": "direct",
}
#: A cell the document marks as not applicable (nothing of the kind exists there).
NOT_APPLICABLE = "—"

Table = dict[str, dict[str, str]]  # action key -> role -> word


def parse(text: str) -> dict[tuple[str, str], Table]:
    """Every table of the document, by (surface, room kind or "")."""
    tables: dict[tuple[str, str], Table] = {}
    current: Table | None = None
    roles: list[str] = []
    for line in text.splitlines():
        heading = re.match(r"^### (Socket|REST|Pages): (.+?)\s*$", line)
        if heading:
            place = heading.group(2)
            assert place in PLACES, f"unknown place in heading: {line!r}"
            current = tables.setdefault((heading.group(1), PLACES[place]), {})
            roles = []
            continue
        if line.startswith("## "):
            current = None
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not roles:
            assert [HEADERS.get(c) for c in cells[1:]] == list(ROLES), f"columns must be {list(HEADERS)}: {line!r}"
            roles = list(ROLES)
            continue
        if set(cells[0]) <= {"-", ":", " "}:
            continue
        key = re.fullmatch(r"`([^`]+)`", cells[0])
        assert key, f"the first cell names the action in backticks: {line!r}"
        assert len(cells) == len(roles) + 1, f"one word per role: {line!r}"
        current[key.group(1)] = dict(zip(roles, cells[1:], strict=True))
    return tables


def document() -> dict[tuple[str, str], Table]:
    return parse(DOC_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Answer:
    """What the hub answered to one action: `ok`, or the refusal's code and message."""

    ok: bool
    code: str = ""
    message: str = ""
    details: str = ""  # the refusal's other fields, with the ids the request named left out

    @staticmethod
    def details_of(payload: dict[str, object], asked: Iterable[object]) -> str:
        """The fields of a refusal beyond its code and message, as text.

        A field that only echoes an id the request itself named is written `#`,
        so the answers for a present and a missing object compare equal unless
        the refusal says more (such as the id of a room the request never named).
        """
        named = [a for a in asked if a is not None]
        rest = {
            k: "#" if any(v == a for a in named) else v
            for k, v in payload.items()
            if k not in ("type", "ref", "code", "message")
        }
        return json.dumps(rest, sort_keys=True, default=str)

    @classmethod
    def allowed(cls) -> Answer:
        return cls(ok=True)


OK = Answer.allowed()
LOGIN = Answer(ok=False, code="login")


def word(answer: Answer, missing: Answer | None) -> str:
    """The document's word for `answer`; `missing` is the answer for a room that does not exist.

    A refusal that names the thing as missing but differs from the answer for
    a missing one would tell an outsider that it exists: it is `leak`.
    """
    if answer.ok:
        return "ok"
    if answer.code in ("login", "forbidden"):
        return answer.code
    if missing is not None and not missing.ok and answer == missing:
        return "hidden"
    if answer.code == "not_found":
        return f"leak({answer.message})"
    return answer.code


class Results:
    """The words observed, held against the document's table, with a readable report."""

    def __init__(self, surface: str, kind: str) -> None:
        self.surface, self.kind = surface, kind
        self.observed: Table = {}

    def record(self, key: str, role: str, observed: str) -> None:
        self.observed.setdefault(key, {})[role] = observed

    def mismatches(self, expected: Table) -> list[str]:
        out = []
        for key, by_role in self.observed.items():
            for role, got in by_role.items():
                want = expected.get(key, {}).get(role)
                if want != got:
                    out.append(f"{self.surface}: {self.kind or 'no room'}: `{key}` as {role}: document says {want}, hub answers {got}")
        return out

    def table(self) -> str:
        """The observed table in the document's format (to review, then paste)."""
        header = "| action | " + " | ".join(HEADERS) + " |"
        lines = [header, "|" + "---|" * (len(HEADERS) + 1)]
        for key, by_role in self.observed.items():
            lines.append(f"| `{key}` | " + " | ".join(by_role.get(r, "?") for r in ROLES) + " |")
        return "\n".join(lines)
