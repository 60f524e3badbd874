"""deploy/turnserver.conf run by a real coturn: a relay to a private address is refused."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from signaling.turn import turn_credential
from tests.conftest import skip_or_fail
from tests.parallel import worker_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "turnserver.conf"
SECRET = "harden-test-secret"


def denied_ranges() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    ranges = []
    for line in CONF.read_text().splitlines():
        m = re.fullmatch(r"denied-peer-ip=([^-\s]+)(?:-(\S+))?", line.strip())
        if m:
            low = ipaddress.ip_address(m.group(1))
            ranges.append((low, ipaddress.ip_address(m.group(2) or m.group(1))))
    return ranges


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1"],
)
def test_the_conf_denies_loopback_and_private_ranges(address):
    ip = ipaddress.ip_address(address)
    assert any(low.version == ip.version and low <= ip <= high for low, high in denied_ranges()), address


@pytest.mark.parametrize("address", ["8.8.8.8", "41.111.0.1", "2a00:1450::1"])
def test_the_conf_lets_public_addresses_through(address):
    ip = ipaddress.ip_address(address)
    assert not any(low.version == ip.version and low <= ip <= high for low, high in denied_ranges())


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_coturn(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("turnserver")
    if not binary:
        skip_or_fail("no turnserver (apt-get install coturn)")
    port = free_udp_port()
    conf = tmp_path / f"turnserver-{port}.conf"
    lines = [l for l in CONF.read_text().splitlines() if not l.startswith(("static-auth-secret", "realm"))]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "--static-auth-secret", SECRET, "--realm", "hirfa.test",
         "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
         "--min-port", str(worker_port(49160)), "--max-port", str(worker_port(49200)), "--no-tls", "--no-dtls", "--no-tcp",
         "--pidfile", str(tmp_path / f"turn-{port}.pid"), "--log-file", "stdout", "--simple-log", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return proc, port


async def permission_answer(port: int, peer: str) -> str:
    from aioice.stun import TransactionFailed
    from aioice.turn import TurnClientUdpProtocol

    username = f"{int(time.time()) + 600}:7:m1"
    loop = asyncio.get_running_loop()
    transport, turn = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", port), username=username,
                                      password=turn_credential(secret=SECRET, username=username),
                                      lifetime=600, channel_refresh_time=300),
        remote_addr=("127.0.0.1", port),
    )
    try:
        for _ in range(20):  # coturn takes a moment to listen
            try:
                await asyncio.wait_for(turn.connect(), 2)
                break
            except (TimeoutError, ConnectionError, OSError, TransactionFailed):
                await asyncio.sleep(0.5)
        else:
            pytest.fail("coturn did not allocate")
        try:
            await asyncio.wait_for(turn.send_data(b"x", (peer, 9)), 5)
        except TransactionFailed as exc:
            return str(exc.response.attributes.get("ERROR-CODE", exc))
        return "allowed"
    finally:
        transport.close()


@pytest.mark.parametrize("peer", ["10.255.255.1", "192.168.77.1"])
async def test_coturn_refuses_to_relay_to_a_private_address(tmp_path, peer):
    proc, port = start_coturn(tmp_path)
    try:
        answer = await permission_answer(port, peer)
        assert "403" in answer, answer
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # The control: the same server told to allow that address relays to it.
    proc, port = start_coturn(tmp_path, "--allowed-peer-ip", peer)
    try:
        assert await permission_answer(port, peer) == "allowed"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
