"""A meeting through coturn when only TURN over TCP gets out (networks that block UDP).

Nadia's browser may only relay (``iceTransportPolicy: "relay"``) and is given
one TURN URL, ``turn:…?transport=tcp`` on the port deploy/turnserver.conf
serves TLS and TCP on (443 in production): his media reaches the SFU only
through coturn over TCP. Amina joins directly. Each decodes the other's video
and hears the other; Nadia's selected ICE pair is a relay candidate over TCP.
coturn runs on loopback with deploy/turnserver.conf, its ports, addresses,
secret and certificate overridden on the command line (the SFU is on
127.0.0.1 here, which the deployment's denials would refuse).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.test_meeting import (  # noqa: F401  (fixtures)
    DESKTOP,
    PHONE,
    WAIT_MS,
    join,
    meeting_browser,
    open_page,
    people,
    wait_for_media,
    wait_for_participants,
)
from tests.conftest import skip_or_fail
from tests.parallel import worker_port
from tests.servers import ROOT, DaphneServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TURNSERVER = "/usr/bin/turnserver"
SECRET = "netlab-test-secret"

# Every RTCPeerConnection of the page may only use relay candidates.
RELAY_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  window.relayOnlyPeers = [];
  window.RTCPeerConnection = function (config, ...rest) {
    const pc = new Native({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
    window.relayOnlyPeers.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""

SELECTED_PAIR = """
async () => {
  const pc = window.relayOnlyPeers[window.relayOnlyPeers.length - 1];
  const stats = await pc.getStats();
  for (const s of stats.values()) {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      return { candidateType: local.candidateType, relayProtocol: local.relayProtocol,
               protocol: local.protocol, bytesReceived: pair.bytesReceived };
    }
  }
  return null;
}
"""


def open_relay_only_page(browser, server: DaphneServer, cookie, path: str, *, language: str, viewport):
    """A page (as the meeting tests open them) whose peer connections may only use relay candidates."""
    context = browser.new_context(viewport=viewport, locale=language)
    context.add_init_script(RELAY_ONLY)
    context.add_cookies(
        [
            {"name": cookie["name"], "value": cookie["value"], "url": server.url},
            {"name": "django_language", "value": language, "url": server.url},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(f"{server.url}{path}")
    page.wait_for_selector("body[data-connection='online']")
    return page


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """coturn on 127.0.0.1 from deploy/turnserver.conf; the port it serves TCP and TLS on."""
    if not Path(TURNSERVER).exists():
        skip_or_fail(f"no coturn at {TURNSERVER} (apt-get install coturn)")
    if not shutil.which("openssl"):
        skip_or_fail("openssl is needed for coturn's test certificate")
    cert, key = tmp_path / "turn.pem", tmp_path / "turn.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    port, relay = free_port(), free_port()
    log = tmp_path / "turnserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [TURNSERVER, "-c", str(ROOT / "deploy" / "turnserver.conf"),
             "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={relay}", f"--tls-listening-port={port}",
             f"--static-auth-secret={SECRET}", "--realm=hirfa.test",
             f"--cert={cert}", f"--pkey={key}",
             "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1",
             f"--min-port={worker_port(47000)}", f"--max-port={worker_port(47999)}",
             f"--pidfile={tmp_path / 'turnserver.pid'}", f"--userdb={tmp_path / 'turndb'}",
             "--log-file=stdout", "--no-cli"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"turnserver did not listen on {port}: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        print(log.read_text()[-3000:])


@pytest.fixture
def turn_server(coturn: int, daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    return daphne_factory(
        {
            "HIRFA_SFU_PLACEMENT": "embedded",
            "HIRFA_SFU_ANNOUNCE_ADDRESSES": "127.0.0.1",
            "HIRFA_SFU_BIND_ADDRESS": "127.0.0.1",
            "HIRFA_TURN_URLS": f"turn:127.0.0.1:{coturn}?transport=tcp",
            "HIRFA_TURN_SECRET": SECRET,
        }
    )


def test_a_browser_that_can_only_relay_over_tcp_still_meets(people, turn_server, meeting_browser):  # noqa: F811 (fixtures)
    server, browser = turn_server, meeting_browser
    guild = people["guild"]
    karim_cookie, karim_id = people["nadia"]
    amina_cookie, amina_id = people["amina"]
    path = f"/rooms/{guild}/meeting/"

    k = open_relay_only_page(browser, server, karim_cookie, path, language="fr", viewport=DESKTOP)
    join(k)
    assert k.evaluate("() => window.relayOnlyPeers.length") > 0  # the page's peer is the relay-only one
    a = open_page(browser, server, amina_cookie, path, language="ar", viewport=PHONE)
    join(a)
    wait_for_participants(k, [karim_id, amina_id])

    frames = wait_for_media(a, f"{karim_id}:camera", "framesDecoded")
    wait_for_media(a, f"{karim_id}:camera", "framesDecoded", above=frames)
    wait_for_media(a, f"{karim_id}:mic", "packetsReceived")
    frames = wait_for_media(k, f"{amina_id}:camera", "framesDecoded")
    wait_for_media(k, f"{amina_id}:camera", "framesDecoded", above=frames)
    wait_for_media(k, f"{amina_id}:mic", "totalSamplesReceived")

    pair = k.evaluate(SELECTED_PAIR)
    assert pair and pair["candidateType"] == "relay" and pair["relayProtocol"] == "tcp", pair
    assert pair["bytesReceived"] > 0, pair
    for page in (k, a):
        assert page.errors == [], page.errors
