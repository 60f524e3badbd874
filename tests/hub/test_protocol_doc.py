"""docs/protocol.md must describe every frame, error code and close code."""

import re
import typing
from pathlib import Path

from hub import protocol
from hub.errors import CloseCode, ErrorCode

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
HEADINGS = set(re.findall(r"^### `([a-z_]+)`", DOC, flags=re.MULTILINE))


def _union_types(union: object) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {m.model_fields["type"].annotation.__args__[0] for m in members}


def test_declared_client_types_match_the_union():
    assert set(protocol.CLIENT_FRAME_TYPES) == _union_types(protocol.AnyClientFrame)


def test_declared_server_types_match_the_models():
    declared = {
        cls.model_fields["type"].default
        for cls in vars(protocol).values()
        if isinstance(cls, type) and issubclass(cls, protocol.ServerFrame) and "type" in cls.model_fields
    }
    assert set(protocol.SERVER_FRAME_TYPES) == declared


def test_every_frame_type_is_documented():
    missing = [t for t in protocol.CLIENT_FRAME_TYPES + protocol.SERVER_FRAME_TYPES if t not in HEADINGS]
    assert not missing, f"frame types missing from docs/protocol.md: {missing}"


def test_every_error_code_is_documented():
    missing = [c.value for c in ErrorCode if f"| `{c.value}` |" not in DOC]
    assert not missing, f"error codes missing from docs/protocol.md: {missing}"
    assert "| `unsupported_version` |" in DOC


def test_every_close_code_is_documented():
    missing = [c.value for c in CloseCode if f"| `{c.value}` |" not in DOC]
    assert not missing, f"close codes missing from docs/protocol.md: {missing}"
