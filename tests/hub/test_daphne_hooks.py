"""The daphne/Twisted/autobahn internals behind direct socket writes: each
private name still exists in the pinned versions, and other versions are
refused at import."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import string
from pathlib import Path

import pytest

from hub import daphne_hooks


def _owner(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    owner = getattr(importlib.import_module(module), name, None)
    return owner if owner is not None else importlib.import_module(dotted)  # type: ignore[return-value]


def _assigned_somewhere(cls: type, name: str) -> bool:
    pattern = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=]+)?=")
    for klass in cls.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if pattern.search(source):
            return True
    return False


@pytest.mark.parametrize(
    "owner,name", daphne_hooks.PRIVATE_NAMES, ids=[f"{o.rsplit('.', 1)[1]}.{n}" for o, n in daphne_hooks.PRIVATE_NAMES]
)
def test_each_private_name_exists_in_the_pinned_version(owner: str, name: str) -> None:
    cls = _owner(owner)
    assert hasattr(cls, name) or _assigned_somewhere(cls, name), f"{owner} has no {name} any more"


def test_another_version_is_refused_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda package: "0.0.1" if package == "autobahn" else real(package)
    )
    path = Path(daphne_hooks.__file__)
    spec = importlib.util.spec_from_file_location("hub._daphne_hooks_probe", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match="autobahn 26.10.2"):
        spec.loader.exec_module(module)


def test_pyproject_pins_the_versions_the_module_checks() -> None:
    text = (Path(daphne_hooks.__file__).resolve().parent.parent / "pyproject.toml").read_text()
    for package, wanted in daphne_hooks.PINNED.items():
        assert re.search(rf'"{re.escape(package)}=={re.escape(wanted)}"', text, re.IGNORECASE), package


def test_autobahn_formats_a_debug_line_only_when_it_is_written() -> None:
    """It pretty-printed its options on every connection, for a debug line nobody wrote."""
    from autobahn.websocket import protocol as autobahn_protocol

    class Counted:
        reprs = 0

        def __repr__(self) -> str:
            Counted.reprs += 1
            return "counted"

    line = autobahn_protocol.pformat([("option", Counted(), "Factory")])
    assert Counted.reprs == 0
    assert f"{line}" == "[('option', counted, 'Factory')]" and Counted.reprs == 1
    timings = autobahn_protocol.Timings()
    timings.track("opened")
    assert str(timings).startswith("{'opened':")


def test_autobahn_styles_a_debug_line_s_arguments_only_when_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every received chunk, sent frame and connection built coloured log arguments (click.style)
    for debug lines nobody wrote: hltype and hlval are evaluated before the log level is checked."""
    import click
    from autobahn import util as autobahn_util
    from autobahn.twisted import websocket as autobahn_twisted
    from autobahn.websocket import protocol as autobahn_protocol

    expected = {
        "hltype": autobahn_util.hltype(autobahn_protocol.WebSocketProtocol.sendData),
        "hlval": autobahn_util.hlval("tcp4:127.0.0.1:5000"),
    }
    styled = 0
    real_style = click.style

    def counted_style(*args: object, **kwargs: object) -> str:
        nonlocal styled
        styled += 1
        return real_style(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(click, "style", counted_style)
    for module in (autobahn_protocol, autobahn_twisted):
        line_type = module.hltype(autobahn_protocol.WebSocketProtocol.sendData)
        line_val = module.hlval("tcp4:127.0.0.1:5000")
        assert styled == 0, module.__name__
        # As a log line is written (Twisted's formatEvent formats through string.Formatter).
        assert string.Formatter().format("{t} {v}", t=line_type, v=line_val) == (
            f"{expected['hltype']} {expected['hlval']}"
        )
        assert str(line_val) == expected["hlval"]
        styled = 0
