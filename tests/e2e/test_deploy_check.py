"""The deploy check: the production topology (tests/topology.py) brought up from deploy/,
then checked through nginx only, with figures.

Through ``https://localhost:<port>`` (TLS with a certificate the run makes): the
probes of every process answer ready and nginx hides the metrics; two artisans sign
in with the form; they chat across the two hubs; the job worker sends a reminder
that reaches a socket; Chromium meets with TURN relay only, one browser over UDP, the
other over TLS; the Redis primary is killed during a message run (0 lost, 0
duplicated, recovery time); the hubs are restarted one by one during a message run
and the meeting (0 lost, media back time); the database connections stay within the
pool. Everything stops at the end.

``make deploy-check`` runs it at full size (HIRFA_DEPLOY_CHECK=full) and prints the
report; the suite runs it at CI size (fewer messages).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import itertools
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from rooms.models import Message, Room, RoomKind
from tests import factories
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_meeting import MEETING_ARGS, join, wait_for_participants, write_tone
from tests.browser.test_meeting_turn import SELECTED_PAIR
from tests.conftest import skip_or_fail
from tests.e2e.test_operations import metric
from tests.hubclient import Chatter, Hubs, connect_ws, next_frame
from tests.servers import ARTIFACTS, test_database_name
from tests.topology import Topology, missing

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

FULL = os.environ.get("HIRFA_DEPLOY_CHECK") == "full"
RUN_MESSAGES = 300 if FULL else 40
#: Ten messages a second: half the frame budget of one socket (hub/consumers.py).
SEND_EVERY = 0.1
PASSWORD = "a-long-test-passphrase"
MEDIA_BACK_BUDGET_SECONDS = 5.0
#: A drained hub exits well within this (its sockets get at most 10 s, hub/shutdown.py).
DRAIN_BUDGET_SECONDS = 30.0
#: How many peer connections a page has made (a rejoin makes a new one).
PEERS = "() => window.relayOnlyPeers.length"
#: How many times a page's hub socket was lost (body[data-connection] left "online").
DROPS = "() => window.connectionDrops"

# Each page's peer connections may only relay, through the TURN URLs matching its pattern.
RELAY_ONLY = """
((pattern) => {
  const Native = window.RTCPeerConnection;
  const only = (config) => ({
    ...(config || {}),
    iceServers: ((config || {}).iceServers || []).map((s) => ({
      ...s, urls: [].concat(s.urls).filter((u) => new RegExp(pattern).test(u)),
    })).filter((s) => s.urls.length),
    iceTransportPolicy: "relay",
  });
  window.relayOnlyPeers = [];
  window.RTCPeerConnection = function (config, ...rest) {
    const pc = new Native(only(config), ...rest);
    window.relayOnlyPeers.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
  // The page hands the TURN servers over once the hub sends them (meeting_ice_servers).
  const set = Native.prototype.setConfiguration;
  Native.prototype.setConfiguration = function (config) { return set.call(this, only(config)); };
  window.connectionDrops = 0;
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(() => {
      if (document.body.dataset.connection !== "online") window.connectionDrops += 1;
    }).observe(document.body, { attributes: true, attributeFilter: ["data-connection"] });
  });
})(%s);
"""


@dataclass
class FrontDoor:
    """nginx, as a client sees it."""

    url: str
    ws_url: str
    port: int


def fetch(opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None, **headers: str):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with opener.open(request, timeout=20) as resp:
            return resp.status, resp.read().decode(errors="replace"), resp.geturl()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), url


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def sign_in(topology: Topology, username: str) -> dict[str, str]:
    """Sign in with the form through nginx; the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=topology.ssl_context()), urllib.request.HTTPCookieProcessor(jar), NoRedirect
    )
    status, page, _ = fetch(opener, f"{topology.url}/login/")
    assert status == 200, page[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the sign-in page"
    status, page, _ = fetch(
        opener, f"{topology.url}/login/",
        {"csrfmiddlewaretoken": token.group(1), "username": username, "password": PASSWORD},
        Referer=f"{topology.url}/login/", Origin=topology.url,
    )
    assert status == 302, f"sign-in of {username} answered {status}: {page[:500]}"
    cookies = {c.name: c for c in jar}
    session = cookies[settings.SESSION_COOKIE_NAME]
    assert session.secure, "the session cookie must be Secure behind TLS"
    return {"name": session.name, "value": str(session.value)}


def get_plain(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def in_thread(coroutine: Callable[[], Any]) -> Any:
    """Run an async function to completion in a thread of its own (Playwright holds this one)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = asyncio.run(coroutine())
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


class MessageRun:
    """A sender and a receiver chatting through nginx in a thread of their own, until stopped."""

    runs = itertools.count(1)

    def __init__(self, front: FrontDoor, topology: Topology, room: int, cookies: tuple[dict[str, str], dict[str, str]]) -> None:
        # Sends are idempotent on (sender, client_id): each run's ids are its own.
        self.prefix = f"run{next(MessageRun.runs)}-"
        self.sent: list[str] = []
        self.stop = threading.Event()
        self.sender = Chatter("sender", cookies[0], room, Hubs([front]), ssl_context=topology.ssl_context())
        self.receiver = Chatter("receiver", cookies[1], room, Hubs([front]), ssl_context=topology.ssl_context())
        self.started = threading.Event()
        # A daemon: if the check fails before `finish`, the run must not keep pytest alive.
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.result: dict[str, Any] = {}

    async def _run(self) -> None:
        tasks = [asyncio.create_task(self.sender.run()), asyncio.create_task(self.receiver.run())]
        try:
            await self.sender.connected.wait()
            await self.receiver.connected.wait()
            self.started.set()
            while not self.stop.is_set() and len(self.sent) < 20_000:
                client_id = f"{self.prefix}{len(self.sent)}"
                self.sent.append(client_id)
                await self.sender.send(client_id, f"{client_id} via nginx")
                await asyncio.sleep(SEND_EVERY)
            end = time.monotonic() + 90
            while time.monotonic() < end and (
                self.sender.unacked or len(self.receiver.seen) < len(self.sent)
            ):
                await asyncio.sleep(0.1)
        except BaseException as exc:
            self.result["error"] = exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ws in (self.sender.ws, self.receiver.ws):
                if ws is not None:
                    await ws.close()

    def start(self) -> MessageRun:
        self.thread.start()
        assert self.started.wait(60), "the message run did not connect"
        return self

    def finish(self, room: int) -> dict[str, Any]:
        self.stop.set()
        self.thread.join(timeout=150)
        if "error" in self.result:
            raise self.result["error"]
        stored = list(Message.objects.filter(room_id=room, client_id__in=self.sent).values_list("client_id", flat=True))
        lost = len(set(self.sent) - set(stored))
        duplicated = len(stored) - len(set(stored))
        at_receiver = sorted(self.receiver.seen.values())
        missed = len(set(self.sent) - set(at_receiver))
        missing = sorted(set(self.sent) - set(at_receiver), key=lambda c: int(c.rsplit('-', 1)[1]))
        assert (lost, duplicated, missed) == (0, 0, 0), (
            f"{lost} lost, {duplicated} duplicated, {missed} not at the receiver ({missing[:3]}…{missing[-3:]}); "
            f"unacked {list(self.sender.unacked)[:5]}, receiver closes {self.receiver.closes} rev {self.receiver.rev}, "
            f"sender closes {self.sender.closes}, errors {self.sender.errors[:3]}"
        )
        assert self.sender.errors == [] and self.receiver.errors == []
        return {"messages": len(self.sent), "closes": self.sender.closes + self.receiver.closes}


@pytest.fixture
def topology(transactional_db: None, production_static: Path) -> Iterator[Topology]:
    problem = missing()
    if problem:
        skip_or_fail(problem)
    if connection.vendor != "postgresql":
        skip_or_fail("the deploy check needs PostgreSQL (DATABASE_URL)")
    # The logs stay in test-artifacts/deploy-check/ after the run (each process's own file).
    workdir = ARTIFACTS / "deploy-check"
    shutil.rmtree(workdir, ignore_errors=True)
    topo = Topology(database_name=test_database_name(), workdir=workdir, sfu_port_min=settings.HIRFA_SFU_PORT_MIN,
                    static_root=production_static)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    tone = tmp_path / "tone.wav"
    write_tone(tone)
    # The run's certificate is its own: trusted for the pages and for TURN over TLS alike.
    extra = [f"--use-file-for-fake-audio-capture={tone}", "--ignore-certificate-errors"]
    args = list(dict.fromkeys(CHROMIUM_ARGS + MEETING_ARGS + extra))
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def browser_sign_in(browser: Any, topology: Topology, username: str, relay_pattern: str, path: str) -> Any:
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr", ignore_https_errors=True)
    context.add_init_script(RELAY_ONLY % json.dumps(relay_pattern))
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.console = []
    page.on("console", lambda msg: page.console.append(msg.text))
    page.goto(f"{topology.url}/login/?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"**{path}")
    try:
        page.wait_for_selector("body[data-connection='online']")
    except Exception as exc:
        state = page.evaluate("() => document.body.dataset.connection")
        raise AssertionError(f"{username}'s page is not online ({state}): {page.console}, {page.errors}") from exc
    return page


def frames_decoded(page: Any, key: str) -> int:
    stats = page.evaluate("() => window.hirfaMeeting.inbound()")
    return int(stats.get(key, {}).get("framesDecoded", 0))


def media_flowing(pages: list[tuple[Any, str]], *, timeout: float = 60) -> None:
    """Every page decodes new frames of its remote camera (a few, twice in a row)."""
    end = time.monotonic() + timeout
    last = {id(p): frames_decoded(p, k) for p, k in pages}
    rising = dict.fromkeys(last, 0)
    while True:
        time.sleep(0.25)
        for page, key in pages:
            now = frames_decoded(page, key)
            rising[id(page)] = rising[id(page)] + 1 if now > last[id(page)] else 0
            last[id(page)] = now
        if all(v >= 2 for v in rising.values()):
            return
        if time.monotonic() > end:
            details = [
                page.evaluate(
                    "() => window.relayOnlyPeers.map((pc) => [pc.getConfiguration(), pc.iceConnectionState,"
                    " pc.iceGatheringState])"
                )
                for page, _ in pages
            ]
            raise AssertionError(f"media did not flow: {[p.evaluate('() => window.hirfaMeeting.inbound()') for p, _ in pages]} {details}")


def _record_exit(process: Any, into: list[tuple[int, float]]) -> None:
    into.append((process.wait(), time.monotonic()))


class Report(list[str]):
    """The check's figures, printed as each step passes (a failure keeps what came before)."""

    def append(self, line: str) -> None:
        print(("\n" if not self else "  ") + line, flush=True)
        super().append(line)


def media_back(pages: list[tuple[Any, str]], before: list[tuple[int, int]], began: float, exited: list[Any]) -> float | None:
    """Seconds from `began` (a hub's SIGTERM) until the meeting's media flows again, or ``None``
    if no participant's socket was on that hub (no page lost its socket by 2 s after the
    hub exited). `before`: each page's (socket drops, peers made) at SIGTERM."""
    end = time.monotonic() + DRAIN_BUDGET_SECONDS + MEDIA_BACK_BUDGET_SECONDS * 4
    while time.monotonic() < end:
        now = [(page.evaluate(DROPS), page.evaluate(PEERS)) for page, _ in pages]
        hit = [i for i, (drops, _) in enumerate(now) if drops > before[i][0]]
        if hit and all(now[i][1] > before[i][1] for i in hit):
            media_flowing(pages)  # every page's remote video, the rejoined peers' included
            return time.monotonic() - began
        if not hit and exited and time.monotonic() - exited[0][1] > 2:
            return None
        time.sleep(0.05)
    raise AssertionError(f"the meeting did not come back: {before} -> {now}")


def test_deploy_check(topology: Topology, browser: Any) -> None:
    report = Report()
    report.append(f"deploy check ({'full' if FULL else 'CI'} size), nginx TLS on {topology.url}")
    front = FrontDoor(topology.url, topology.ws_url, topology.nginx_port)

    # --- probes: every process is ready; nginx hides the metrics -----------------------------
    for hub in topology.hubs:
        status, body = get_plain(f"{hub.url}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
    for name, port in topology.ops_ports.items():
        status, body = get_plain(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, (name, body)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=topology.ssl_context()))
    assert fetch(opener, f"{topology.url}/metrics")[0] == 404
    assert fetch(opener, f"{topology.url}/healthz")[:2] == (200, "ok\n")
    report.append(f"probes: 2 hubs, {len(topology.ops_ports)} workers ready; /metrics hidden by nginx")

    # --- people -------------------------------------------------------------------------------
    poterie, tlemcen = factories.trade(), factories.wilaya()
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    factories.yacine(pottery_=poterie)
    nadia = factories.nadia(pottery_=poterie)  # moderates the pottery guild
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie).pk
    amina_cookie, yacine_cookie = sign_in(topology, "amina"), sign_in(topology, "yacine")
    report.append("sign-in: 2 artisans through the form over TLS (Secure session cookies)")

    # --- chat across the two hubs, and a reminder from the job worker ------------------------
    from gatherings import services as gatherings

    async def chat_and_reminder() -> None:
        a = await connect_ws(front, amina_cookie, ssl_context=topology.ssl_context())
        b = await connect_ws(front, yacine_cookie, ssl_context=topology.ssl_context())
        try:
            opened = [metric(get_plain(f"{h.url}/metrics")[1], "hirfa_sockets_open") for h in topology.hubs]
            assert opened == [1, 1], f"nginx did not spread the sockets over the hubs: {opened}"
            for ws in (a, b):
                await ws.send(json.dumps({"type": "subscribe", "room": guild}))
                await next_frame(ws, "subscribed", room=guild)
            await a.send(json.dumps({"type": "send", "room": guild, "client_id": "c1", "text": "Salam من تلمسان"}))
            assert (await next_frame(b, "message", room=guild))["text"] == "Salam من تلمسان"
            await b.send(json.dumps({"type": "send", "room": guild, "client_id": "c2", "text": "Bonjour Amina"}))
            assert (await next_frame(a, "message", room=guild, client_id="c2"))["text"] == "Bonjour Amina"

            def schedule() -> int:
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
                gathering = gatherings.gathering_schedule(
                    user=nadia, room_id=guild, title="Atelier de poterie", start=start, duration=timedelta(hours=1)
                )
                gatherings.rsvp_set(user=amina, gathering_id=gathering.pk, status="going")
                return gathering.pk

            began = time.monotonic()
            await asyncio.to_thread(schedule)
            while (await next_frame(a, "notification", timeout=60))["kind"] != "reminder":
                pass
            report.append(
                f"chat: across the 2 hubs (one socket on each); reminder: sent by the job worker, "
                f"on Amina's socket {time.monotonic() - began:.1f} s after the gathering was scheduled"
            )
        finally:
            await a.close()
            await b.close()

    in_thread(chat_and_reminder)

    # --- Redis failover during a message run ----------------------------------------------
    assert topology.redis is not None
    run = MessageRun(front, topology, guild, (amina_cookie, yacine_cookie)).start()
    time.sleep(1.0)
    killed = time.monotonic()
    kill_index = len(run.sent)
    topology.redis.kill_primary()
    topology.redis.wait_for_failover()
    promoted = time.monotonic() - killed
    end = time.monotonic() + 60
    while True:
        after = set(run.sent[kill_index:]) & set(run.receiver.live_at)
        if after:
            recovered = min(run.receiver.live_at[c] for c in after) - killed
            break
        assert time.monotonic() < end, "live delivery did not come back after the failover"
        time.sleep(0.1)
    while len(run.sent) - kill_index < RUN_MESSAGES // 2:
        time.sleep(0.1)
    figures = run.finish(guild)
    report.append(
        f"Redis failover: primary killed during {figures['messages']} messages: 0 lost, 0 duplicated, "
        f"sockets closed {len(figures['closes'])}; replica promoted after {promoted:.2f} s, "
        f"live delivery back after {recovered:.2f} s"
    )
    for hub in topology.hubs:
        assert get_plain(f"{hub.url}/readyz")[0] == 200

    # --- a meeting through TURN only: UDP for Nadia, TLS for Amina -----------------------------
    path = f"/rooms/{guild}/meeting/"
    k = browser_sign_in(browser, topology, nadia.username, r"^turn:.*transport=udp", path)
    join(k)
    a = browser_sign_in(browser, topology, "amina", r"^turns:", path)
    join(a)
    wait_for_participants(k, [nadia.pk, amina.pk])
    pages = [(k, f"{amina.pk}:camera"), (a, f"{nadia.pk}:camera")]
    media_flowing(pages)
    k_pair, a_pair = k.evaluate(SELECTED_PAIR), a.evaluate(SELECTED_PAIR)
    assert k_pair and k_pair["candidateType"] == "relay" and k_pair["relayProtocol"] == "udp", k_pair
    assert a_pair and a_pair["candidateType"] == "relay" and a_pair["relayProtocol"] == "tls", a_pair
    report.append("meeting: Chromium, relay only; Nadia through TURN over UDP, Amina over TLS; media both ways")

    # --- rolling restart of the hubs during a message run and the meeting -------------------
    run = MessageRun(front, topology, guild, (amina_cookie, yacine_cookie)).start()
    restarts: list[str] = []
    for index in range(len(topology.hubs)):
        time.sleep(1.0)
        hub = topology.hubs[index]
        before = [(page.evaluate(DROPS), page.evaluate(PEERS)) for page, _ in pages]
        exited: list[tuple[int, float]] = []
        waiter = threading.Thread(target=_record_exit, args=(hub.process, exited))
        began = time.monotonic()
        hub.process.terminate()
        waiter.start()
        back = media_back(pages, before, began, exited)
        waiter.join(timeout=DRAIN_BUDGET_SECONDS)
        assert exited, f"the drained hub on {hub.port} did not exit within {DRAIN_BUDGET_SECONDS} s:\n{hub.log_tail()}"
        status, at = exited[0]
        assert status == 0, f"hub on {hub.port} exited with {status}:\n{hub.log_tail()}"
        if back is None:
            restarts.append(f"hub {index + 1}: exited 0 after {at - began:.2f} s, no participant was on it")
        else:
            assert back < MEDIA_BACK_BUDGET_SECONDS or not FULL, f"media back after {back:.2f} s"
            restarts.append(f"hub {index + 1}: exited 0 after {at - began:.2f} s, media back after {back:.2f} s")
        topology.hubs[index] = topology.start_hub(hub.port)
    while len(run.sent) < RUN_MESSAGES:
        time.sleep(0.1)
    figures = run.finish(guild)
    closes = figures["closes"]
    assert closes and set(closes) == {1012}, closes
    report.append(
        f"rolling restart of 2 hubs during {figures['messages']} messages and the meeting: 0 lost, "
        f"0 duplicated, {len(closes)} sockets closed with 1012; from SIGTERM, " + "; ".join(restarts)
    )
    for page in (k, a):
        assert page.errors == [], page.errors

    # --- the database pool ------------------------------------------------------------------
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (connections,) = cursor.fetchone()
    # Each Hirfa process (2 hubs, 2 SFU workers, the job worker) has its own pool.
    processes = len(topology.hubs) + len(topology.ops_ports)
    pool_max = int(topology.hub_env["DATABASE_POOL_MAX"])
    assert connections <= processes * pool_max, connections
    report.append(
        f"database: {connections} connections from {processes} processes, each with a pool of at most {pool_max}"
    )
    report.append("passed")
