"""Connection storms, presence, the cost of a send, and a Redis restart, on real
daphne processes over PostgreSQL and a Redis server of the bench's own.

    .venv/bin/python bench/storm.py --json
    .venv/bin/python bench/storm.py --members 2000 --idle 5000 --storm 2000 --json   # scaled down

Prints (see docs/performance.md, "Connection storms"):
- subscribe_s (`subscribe_10k_s` at the default 10,000): MEMBERS members of one
  room connect and subscribe, spread over client processes; with the total of
  presence frames they received (`presence_deliveries`, and per join);
- reconnect_storm_s: STORM sockets over two hub processes, one process killed
  and restarted, time until every socket of it has resumed (subscribed again);
  with the p99 delivery latency, during the storm, of members on the surviving
  process;
- idle_sockets and rss_mb: IDLE idle authenticated sockets over two hub processes (RSS summed);
- cpu_ms_per_message and messages_per_s_per_process: server CPU per persisted
  message over a burst of sends (CPU time of the daphne process / messages);
- redis_restart: messages sent before, during and after a kill and restart of
  Redis: `lost` (persisted messages some receiver never got, live or by the
  fetch a `resync` asks for), `duplicated` (messages stored twice) and
  `closed_1011`.

Clients run in their own processes (uvloop when available). Every wait is
bounded; every process started is stopped; the database is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_fanout as cf

ROOT = cf.ROOT
cf.BENCH_DB = os.environ.get("HIRFA_BENCH_DB", "hirfa_storm_bench")
PROTOCOL = int(os.environ.get("HIRFA_BENCH_PROTOCOL", "2"))
#: The hub's close code for "too many sockets opening at once here: come back after the
#: close reason's `retry_after` seconds" (docs/protocol.md).
CLOSE_BUSY = 4013


# --- servers ------------------------------------------------------------------------------


class Redis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        cf.wait_port(self.port, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


#: The listen queue of the bench's hubs (as `hirfa serve`'s): Twisted's default of 50 drops
#: the SYNs of a crowd connecting at once, and each dropped client retries 1, 3, 7, 15 s later.
LISTEN_BACKLOG = cf.LISTEN_BACKLOG


def _hub_log(port: int) -> Any:
    """Where a hub's log goes: HIRFA_BENCH_LOGS/hub-<port>.log when that is set, else nowhere."""
    folder = os.environ.get("HIRFA_BENCH_LOGS")
    if not folder:
        return subprocess.DEVNULL
    return open(Path(folder) / f"hub-{port}.log", "ab")  # the hub process holds it


#: daphne's command line writes an access-log line for every socket opening and closing at
#: its default verbosity (1); `hirfa serve` (deploy/hirfa@.service) runs daphne with none.
HUB_QUIET = ["-v", "0"]


def start_hub(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"
    proc = subprocess.Popen(
        [str(Path(cf.PYTHON).with_name("daphne")), "-e", endpoint, *HUB_QUIET, *cf.HUB_OPTIONS,
         "hub.asgi:application"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=_hub_log(port),
    )
    cf.wait_port(port, proc, seconds=60)
    return proc


def cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1e6


# --- clients (each process holds many sockets) -----------------------------------------------


class Member:
    """One socket that resumes by itself: reconnects with jittered backoff, resubscribes since its rev."""

    def __init__(self, urls: list[str], cookie: str, room: int, stats: dict[str, Any],
                 gate: asyncio.Semaphore | None = None) -> None:
        self.urls = urls
        # Openings in flight at once in this process (None: all at once).
        self.gate = gate
        self.cookie = cookie
        self.room = room
        self.stats = stats
        self.rev: int | None = None
        self.seen: dict[int, int] = {}
        self.ws: Any = None
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.server = 0
        self.closed: list[int] = []
        self.resumed_at = 0.0
        self.lost_at = 0.0

    def start(self, server: int) -> None:
        self.server = server
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        attempt = 0
        while True:
            gated = self.gate is not None and not self.subscribed.is_set()
            if gated:
                assert self.gate is not None
                await self.gate.acquire()
            try:
                self.ws = await cf._open(self.urls[self.server], self.cookie, self.urls[self.server]
                                         .replace("ws://", "http://").replace("/ws/", ""))
                await self.ws.send(json.dumps({"type": "hello", "v": PROTOCOL}))
                frame = {"type": "subscribe", "room": self.room, "ref": "s"}
                if self.rev is not None:
                    frame["since_rev"] = self.rev
                await self.ws.send(json.dumps(frame))
                attempt = 0
                async for text in self.ws:
                    self.on_frame(json.loads(text))
                    if gated and self.subscribed.is_set():
                        gated = False
                        assert self.gate is not None
                        self.gate.release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = type(exc).__name__
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status is not None:
                    name = f"{name} {status}"
                self.stats["errors"][name] = self.stats["errors"].get(name, 0) + 1
            finally:
                if gated:
                    assert self.gate is not None
                    self.gate.release()
            code = getattr(self.ws, "close_code", None) if self.ws is not None else None
            self.closed.append(code if code is not None else 1006)
            self.subscribed.clear()
            self.lost_at = time.time()
            busy = retry_after(code, getattr(self.ws, "close_reason", None) if self.ws is not None else None)
            if busy is not None:
                # The hub let others in first and said when to come back (it spreads the crowd
                # itself): that time plus a little jitter, and no escalation of the backoff.
                self.stats["busy"] += 1
                await asyncio.sleep(busy * (1 + random.random() / 4))
                continue
            attempt += 1
            cap = min(10.0, 0.5 * 2 ** min(attempt, 5))
            await asyncio.sleep(cap / 2 + random.random() * cap / 2)

    def apply(self, message: dict[str, Any]) -> None:
        self.seen[message["id"]] = self.seen.get(message["id"], 0) + 1
        self.rev = max(self.rev or 0, message["rev"])

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            if self.rev is not None and frame["rev"] > self.rev + 1:
                self.fetch()
            self.apply(frame)
            if not self.subscribed.is_set():
                # A replay of what was sent while this member was away (it comes before
                # `subscribed`): not a live delivery, its age is the outage's length.
                self.stats["replayed"] += 1
                return
            sent = frame["text"].split(" ", 1)[0]
            try:
                latency = (time.time() - float(sent)) * 1000
            except ValueError:
                return
            self.stats["latencies"].setdefault(self.server, []).append(latency)
        elif kind == "subscribed":
            self.rev = max(self.rev or 0, frame["rev"])
            self.subscribed.set()
            self.resumed_at = time.time()
        elif kind in ("presence_delta", "presence"):
            self.stats["presence_frames"] += 1
        elif kind == "resync":
            self.stats["resyncs"] += 1
            self.fetch()
        elif kind == "messages":
            for message in frame["messages"]:
                self.apply(message)
        elif kind == "error":
            code = str(frame.get("code"))
            self.stats["error_frames"][code] = self.stats["error_frames"].get(code, 0) + 1
            if frame.get("ref") == "s" and not self.subscribed.is_set():
                # The subscription was refused (a busy hub's retry_after): ask again later
                # rather than sit on an open socket that never resumes.
                asyncio.get_running_loop().create_task(self.subscribe_later(float(frame.get("retry_after") or 1.0)))

    async def subscribe_later(self, seconds: float) -> None:
        ws = self.ws
        await asyncio.sleep(seconds * (1 + random.random() / 4))
        if ws is self.ws and ws is not None and not self.subscribed.is_set():
            frame: dict[str, Any] = {"type": "subscribe", "room": self.room, "ref": "s"}
            if self.rev is not None:
                frame["since_rev"] = self.rev
            try:
                await ws.send(json.dumps(frame))
            except Exception:
                pass  # closed meanwhile: run() reconnects

    def fetch(self) -> None:
        if self.ws is not None and self.rev is not None:
            self.stats["fetches"] += 1
            asyncio.get_running_loop().create_task(
                self.ws.send(json.dumps({"type": "fetch", "room": self.room, "since_rev": self.rev}))
            )


def retry_after(code: int | None, reason: str | None) -> float | None:
    """The seconds a `4013` close asks the client to wait (its reason is `{"retry_after": s}`);
    None for any other close."""
    if code != CLOSE_BUSY:
        return None
    try:
        return max(0.0, float(json.loads(reason or "{}")["retry_after"]))
    except (ValueError, KeyError, TypeError):
        return 1.0


async def client_main(conn: Connection, urls: list[str], room: int, cookies: list[str], servers: list[int],
                      at_once: int) -> None:
    stats: dict[str, Any] = {"presence_frames": 0, "resyncs": 0, "fetches": 0, "replayed": 0,
                             "latencies": {}, "errors": {}, "error_frames": {}, "busy": 0}
    gate = asyncio.Semaphore(at_once) if at_once > 0 else None
    members = [Member(urls, cookie, room, stats, gate) for cookie in cookies]
    loop = asyncio.get_running_loop()
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "connect":
            started = time.time()
            for member, server in zip(members, servers):
                member.start(server)
                await asyncio.sleep(0)
            try:
                await asyncio.wait_for(asyncio.gather(*(m.subscribed.wait() for m in members)), arg)
            except TimeoutError:
                # Say how far it got rather than nothing: subscribed sockets, reconnects and why.
                conn.send(("timeout", {"subscribed": sum(m.subscribed.is_set() for m in members),
                                       "of": len(members), "closes": sum(len(m.closed) for m in members),
                                       "errors": stats["errors"]}))
                continue
            conn.send(("ok", time.time() - started))
        elif cmd == "reset_latency":
            # What follows (the storm) is counted apart from the connecting before it.
            stats["latencies"] = {}
            stats["errors"], stats["error_frames"], stats["busy"] = {}, {}, 0
            for m in members:
                m.closed.clear()
            conn.send(("ok", True))
        elif cmd == "wait_resumed":
            deadline = time.time() + arg["timeout"]
            on = [m for m in members if m.server == arg["server"]]
            while time.time() < deadline and not all(m.subscribed.is_set() and m.resumed_at > arg["since"] for m in on):
                await asyncio.sleep(0.05)
            done = [m.resumed_at for m in on if m.resumed_at > arg["since"]]
            # The ones not resumed: a socket open but not subscribed, or none open.
            waiting = [m for m in on if not (m.subscribed.is_set() and m.resumed_at > arg["since"])]
            open_unsubscribed = sum(1 for m in waiting if m.ws is not None and getattr(m.ws, "close_code", 0) is None)
            conn.send(("ok", {"resumed": len(done), "of": len(on), "last": max(done) if done else None,
                              "open_unsubscribed": open_unsubscribed}))
        elif cmd == "stats":
            conn.send(("ok", {
                "presence_frames": stats["presence_frames"],
                "resyncs": stats["resyncs"],
                "fetches": stats["fetches"],
                "errors": stats["errors"],
                "error_frames": stats["error_frames"],
                "busy": stats["busy"],
                "replayed": stats["replayed"],
                # Live deliveries' latencies by the hub the member is on (JSON keys are strings).
                "latencies": {str(k): list(v) for k, v in stats["latencies"].items()},
                "seen": [dict(m.seen) for m in members],
                "servers": [m.server for m in members],
                "resumed_at": [m.resumed_at for m in members],
                "closed": [c for m in members for c in m.closed],
            }))
        elif cmd == "stop":
            for m in members:
                if m.task:
                    m.task.cancel()
                if m.ws is not None:
                    await m.ws.close()
            conn.send(("ok", True))
            return


def _client_process(conn: Connection, urls: list[str], room: int, cookies: list[str], servers: list[int],
                    at_once: int) -> None:
    cf._run(client_main(conn, urls, room, cookies, servers, at_once))


class Clients:
    def __init__(self, urls: list[str], room: int, cookies: list[str], servers: list[int], procs: int,
                 at_once: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_client_process, args=(child, urls, room, cookies[i::procs], servers[i::procs],
                                                                   at_once))
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def ask(self, cmd: str, arg: Any = None, timeout: float = 600) -> list[Any]:
        return cf._ask(self.conns, cmd, arg, timeout)

    def connect(self, seconds: float) -> float:
        """Connect and subscribe every member within SECONDS; the slowest process's time."""
        answers = self.ask("connect", seconds, timeout=seconds + 30)
        if any(isinstance(a, dict) for a in answers):
            raise RuntimeError(f"not every member subscribed within {seconds} s: {json.dumps(answers)}")
        return float(max(answers))

    def stop(self) -> None:
        try:
            self.ask("stop", timeout=30)
        except Exception:
            pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


class Sender:
    """One member who posts through his own socket and retries unacknowledged sends (same client_id)."""

    def __init__(self, url: str, cookie: str, room: int) -> None:
        self.url, self.cookie, self.room = url, cookie, room

    async def post(self, count: int, rate: float, deadline: float) -> dict[str, int]:
        pending = {f"c{os.getpid()}-{i}-{random.random()}": i for i in range(count)}
        acked = 0
        while pending and time.time() < deadline:
            try:
                ws = await cf._open(self.url, self.cookie, self.url.replace("ws://", "http://").replace("/ws/", ""))
                await ws.send(json.dumps({"type": "hello", "v": PROTOCOL}))
                for client_id in list(pending):
                    await ws.send(json.dumps({"type": "send", "room": self.room, "client_id": client_id,
                                              "text": f"{time.time()} storm", "ref": client_id}))
                    async with asyncio.timeout(10):
                        while True:
                            frame = json.loads(await ws.recv())
                            if frame.get("ref") == client_id:
                                break
                    if frame["type"] == "ack":
                        pending.pop(client_id)
                        acked += 1
                    await asyncio.sleep(1 / rate)
                await ws.close()
            except Exception:
                await asyncio.sleep(0.5)
        return {"acked": acked, "unacked": len(pending)}


# --- the runs ----------------------------------------------------------------------------------


def make_users(env: dict[str, str], members: int, senders: int, index: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    maker = ctx.Process(target=cf._make_room_child, args=(child, env, members, senders, index))
    maker.start()
    if not parent.poll(900):
        maker.terminate()
        raise RuntimeError("creating the bench users timed out")
    made = parent.recv()
    maker.join(timeout=30)
    return made


def db_count(sql: str) -> int:
    import psycopg

    with psycopg.connect(f"{cf.PG_ADMIN_URL}/{cf.BENCH_DB}") as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def _codes(codes: list[int]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for code in codes:
        counted[str(code)] = counted.get(str(code), 0) + 1
    return counted


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for one in counts:
        for key, n in one.items():
            merged[key] = merged.get(key, 0) + n
    return merged


def p99(values: list[float]) -> float | None:
    return round(cf.pct(values, 0.99), 1) if values else None


def run_subscribe(env: dict[str, str], args: argparse.Namespace, index: int) -> dict[str, Any]:
    made = make_users(env, args.members, 0, index)
    hubs: list[subprocess.Popen[bytes]] = []
    clients = None
    try:
        # Several hub processes, as behind the proxy in production: member i on hub i mod hubs.
        ports = [cf.free_port() for _ in range(args.subscribe_hubs)]
        hubs = [start_hub(env, port) for port in ports]
        urls = [f"ws://127.0.0.1:{port}/ws/" for port in ports]
        servers = [i % len(hubs) for i in range(args.members)]
        clients = Clients(urls, made["room"], made["receivers"], servers, args.client_procs)
        cpu_before = sum(cpu_seconds(hub.pid) for hub in hubs)
        started = time.time()
        took = clients.connect(args.timeout)
        hub_cpu = sum(cpu_seconds(hub.pid) for hub in hubs) - cpu_before
        time.sleep(3)  # the last presence period
        stats = clients.ask("stats")
        presence = sum(s["presence_frames"] for s in stats)
        return {"members": args.members, "hubs": len(hubs), "subscribe_s": round(took, 1),
                "presence_deliveries": presence,
                "presence_deliveries_per_join": round(presence / args.members, 2),
                "hub_cpu_s": round(hub_cpu, 1), "hub_cpu_ms_per_member": round(hub_cpu * 1000 / args.members, 1),
                # Sockets that had to connect again before they subscribed, and why.
                "closes": sum(len(s["closed"]) for s in stats),
                "openings_per_member": round(1 + sum(len(s["closed"]) for s in stats) / args.members, 2),
                # When the members were in, from the start of the crowd (seconds).
                "subscribed_at_s": {f"p{q}": round(cf.pct(waited, q / 100), 1) for q in (10, 50, 90, 99)}
                if (waited := [t - started for s in stats for t in s["resumed_at"] if t]) else None,
                "close_codes": _codes([c for s in stats for c in s["closed"]]),
                "client_errors": _merged([s["errors"] for s in stats])}
    finally:
        if clients:
            clients.stop()
        for hub in hubs:
            cf.stop(hub)


def run_idle(env: dict[str, str], args: argparse.Namespace, index: int) -> dict[str, Any]:
    """IDLE sockets subscribed and idle over `--idle-hubs` hub processes (the limit of open files
    is per process: 20,000 here, so 20,000 sockets need two hubs, and clients in several
    processes); `rss_mb` is the hubs' RSS summed."""
    made = make_users(env, args.idle, 0, index)
    ports = [cf.free_port() for _ in range(args.idle_hubs)]
    hubs: list[subprocess.Popen[bytes]] = []
    clients = None
    try:
        hubs.extend(start_hub(env, p) for p in ports)
        base = sum(rss_mb(h.pid) for h in hubs)
        urls = [f"ws://127.0.0.1:{p}/ws/" for p in ports]
        clients = Clients(urls, made["room"], made["receivers"], [i % len(ports) for i in range(args.idle)],
                          args.client_procs, args.connect_at_once)
        took = clients.connect(args.timeout)
        time.sleep(2)
        each = [round(rss_mb(h.pid), 1) for h in hubs]
        total = sum(each)
        stats = clients.ask("stats")
        return {"idle_sockets": args.idle, "hubs": len(hubs), "rss_mb": round(total, 1), "rss_mb_per_hub": each,
                "rss_mb_before": round(base, 1),
                "rss_kb_per_socket": round((total - base) * 1000 / args.idle, 1),
                "connect_s": round(took, 1), "closes": sum(len(s["closed"]) for s in stats),
                "client_errors": _merged([s["errors"] for s in stats])}
    finally:
        if clients:
            clients.stop()
        for h in hubs:
            cf.stop(h)


def run_send_cost(env: dict[str, str], args: argparse.Namespace, index: int) -> dict[str, Any]:
    made = make_users(env, 10, args.senders, index)
    port = cf.free_port()
    hub = start_hub(env, port)
    clients = None
    try:
        url = f"ws://127.0.0.1:{port}/ws/"
        clients = Clients([url], made["room"], made["receivers"], [0] * 10, 1)
        clients.connect(60)
        before = cpu_seconds(hub.pid)
        started = time.time()
        per_sender = args.messages // args.senders

        async def all_senders() -> list[dict[str, int]]:
            return await asyncio.gather(*(
                Sender(url, cookie, made["room"]).post(per_sender, args.send_rate, time.time() + 300)
                for cookie in made["senders"]
            ))

        results = cf._run(all_senders())
        took = time.time() - started
        cpu = cpu_seconds(hub.pid) - before
        stored = sum(r["acked"] for r in results)
        stats = clients.ask("stats")
        return {"messages": stored, "cpu_ms_per_message": round(cpu * 1000 / max(stored, 1), 2),
                "messages_per_s_per_process": round(stored / took, 1),
                "server_cpu_percent": round(100 * cpu / took, 1),
                "receivers": 10, "receiver_fetches": sum(s["fetches"] for s in stats)}
    finally:
        if clients:
            clients.stop()
        cf.stop(hub)


def run_redis_restart(env: dict[str, str], args: argparse.Namespace, index: int, redis: Redis) -> dict[str, Any]:
    made = make_users(env, args.restart_members, 4, index)
    ports = [cf.free_port(), cf.free_port()]
    hubs = [start_hub(env, p) for p in ports]
    clients = None
    try:
        urls = [f"ws://127.0.0.1:{p}/ws/" for p in ports]
        n = args.restart_members
        clients = Clients(urls, made["room"], made["receivers"], [i % 2 for i in range(n)], args.client_procs)
        clients.connect(120)

        async def send_through_restart() -> list[dict[str, int]]:
            async def outage() -> None:
                await asyncio.sleep(2)
                redis.kill()
                await asyncio.sleep(3)
                redis.start()

            senders = [Sender(urls[i % 2], cookie, made["room"]).post(40, 5.0, time.time() + 120)
                       for i, cookie in enumerate(made["senders"])]
            _outage, *results = await asyncio.gather(outage(), *senders)
            return [r for r in results if r is not None]

        sent = cf._run(send_through_restart())
        time.sleep(8)  # recovery, resync and fetches
        stats = clients.ask("stats")
        stored = db_count(f"SELECT count(*) FROM rooms_message WHERE room_id = {made['room']}")
        distinct = db_count(f"SELECT count(DISTINCT client_id) FROM rooms_message WHERE room_id = {made['room']}")
        lost = 0
        for s in stats:
            for seen in s["seen"]:
                lost += stored - len(seen)
        closed_1011 = sum(1 for s in stats for c in s["closed"] if c == 1011)
        return {"redis_restart": {"lost": lost, "duplicated": stored - distinct, "closed_1011": closed_1011},
                "messages": stored, "acked": sum(r["acked"] for r in sent),
                "unacked": sum(r["unacked"] for r in sent),
                "resync_frames": sum(s["resyncs"] for s in stats),
                "closes": sum(len(s["closed"]) for s in stats),
                "close_codes": _codes([c for s in stats for c in s["closed"]]),
                "client_errors": [s["errors"] for s in stats]}
    finally:
        if clients:
            clients.stop()
        for h in hubs:
            cf.stop(h)


def run_reconnect_storm(env: dict[str, str], args: argparse.Namespace, index: int) -> dict[str, Any]:
    made = make_users(env, args.storm, 2, index)
    ports = [cf.free_port(), cf.free_port()]
    hubs = [start_hub(env, p) for p in ports]
    clients = None
    try:
        urls = [f"ws://127.0.0.1:{p}/ws/" for p in ports]
        n = args.storm
        clients = Clients(urls, made["room"], made["receivers"], [i % 2 for i in range(n)], args.client_procs)
        connect_s = clients.connect(args.timeout)
        clients.ask("reset_latency")
        load_before = os.getloadavg()[0]
        surviving_cpu = cpu_seconds(hubs[0].pid)
        killed_at = time.time()
        hubs[1].kill()
        hubs[1].wait(timeout=10)

        async def storm() -> list[Any]:
            async def restart() -> None:
                await asyncio.to_thread(lambda: hubs.__setitem__(1, start_hub(env, ports[1])))

            # Members on the surviving process keep receiving while the storm goes on.
            sender = Sender(urls[0], made["senders"][0], made["room"]).post(60, 4.0, time.time() + 60)
            return list(await asyncio.gather(restart(), sender))

        cf._run(storm())
        waits = clients.ask("wait_resumed", {"server": 1, "since": killed_at, "timeout": 120}, timeout=150)
        resumed = sum(w["resumed"] for w in waits)
        of = sum(w["of"] for w in waits)
        last = max((w["last"] for w in waits if w["last"]), default=None)
        storm_s = time.time() - killed_at
        surviving_cpu = cpu_seconds(hubs[0].pid) - surviving_cpu
        restarted_cpu = cpu_seconds(hubs[1].pid)
        load_after = os.getloadavg()[0]
        stats = clients.ask("stats")
        surviving = [v for s in stats for v in s["latencies"].get("0", [])]
        resumed_live = [v for s in stats for v in s["latencies"].get("1", [])]
        return {"sockets": n, "reconnect_storm_s": round(last - killed_at, 1) if last and resumed == of else None,
                "resumed": resumed, "of": of, "surviving_p99_ms": p99(surviving),
                "surviving_p50_ms": round(cf.pct(surviving, 0.5), 1) if surviving else None,
                "surviving_deliveries": len(surviving),
                # The restarted hub's members: live deliveries once resumed, and the replays of
                # what they missed (before this split, the replays' ages were in the p99 above).
                "resumed_live_p99_ms": p99(resumed_live), "replayed": sum(s["replayed"] for s in stats),
                "connect_s": round(connect_s, 1),
                "not_resumed_open_unsubscribed": sum(w["open_unsubscribed"] for w in waits),
                # From the kill to the end of the wait: each hub's CPU, the clients' reconnects and why.
                "surviving_hub_cpu_s": round(surviving_cpu, 1), "restarted_hub_cpu_s": round(restarted_cpu, 1),
                "storm_window_s": round(storm_s, 1),
                "closes": sum(len(s["closed"]) for s in stats),
                "close_codes": _codes([c for s in stats for c in s["closed"]]),
                "busy_closes": sum(s["busy"] for s in stats),
                "client_errors": _merged([s["errors"] for s in stats]),
                "error_frames": _merged([s["error_frames"] for s in stats]),
                "load_average": [round(load_before, 1), round(load_after, 1)]}
    finally:
        if clients:
            clients.stop()
        for h in hubs:
            cf.stop(h)


#: Open files the bench wants for itself and the hubs and clients it starts (they inherit
#: it): 20,000 idle sockets need 20,000 descriptors in the hub and as many in the clients.
NOFILE_WANTED = 65_536


def raise_open_files_limit() -> int:
    """Raise this process's limit of open files (soft to the hard limit; the hard limit too
    when allowed, as for root) and answer the soft limit now in force."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in ((NOFILE_WANTED, max(hard, NOFILE_WANTED)), (min(NOFILE_WANTED, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, wanted)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000, help="members subscribing at once")
    parser.add_argument("--subscribe-hubs", type=int, default=1,
                        help="hub processes the subscribing members are spread over (the subscribe run)")
    parser.add_argument("--storm", type=int, default=5_000, help="sockets in the reconnect storm")
    parser.add_argument("--idle", type=int, default=20_000, help="idle sockets, over --idle-hubs processes")
    parser.add_argument("--idle-hubs", type=int, default=2,
                        help="hub processes of the idle run (open files are limited per process)")
    parser.add_argument("--restart-members", type=int, default=200)
    parser.add_argument("--messages", type=int, default=1_000, help="messages of the send-cost run")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--send-rate", type=float, default=10.0, help="messages/s per sender")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--connect-at-once", type=int, default=0,
                        help="idle run: openings in flight at once per client process (0: all at once)")
    parser.add_argument("--redis-port", type=int, default=6375)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--only", default="subscribe,storm,idle,send,redis",
                        help="comma-separated runs: subscribe, storm, idle, send, redis")
    parser.add_argument("--protocol", type=int, default=PROTOCOL,
                        help="protocol version the clients speak (1 to measure a server from before version 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["HIRFA_BENCH_PROTOCOL"] = str(args.protocol)
    runs = set(args.only.split(","))
    redis = Redis(args.redis_port)
    redis.start()
    env = cf.bench_env(0)
    env["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/0"
    open_files = raise_open_files_limit()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "load_average": os.getloadavg()[0], "open_files_limit": open_files}}
    try:
        cf.create_database(env)
        for name, run in (("subscribe", lambda: run_subscribe(env, args, 1)),
                          ("send", lambda: run_send_cost(env, args, 2)),
                          ("redis", lambda: run_redis_restart(env, args, 3, redis)),
                          ("storm", lambda: run_reconnect_storm(env, args, 5)),
                          ("idle", lambda: run_idle(env, args, 4))):
            if name not in runs:
                continue
            try:
                results[name] = run()
            except Exception as exc:  # one run failing does not lose the others' figures
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            print(json.dumps(results[name]), file=sys.stderr, flush=True)
    finally:
        redis.kill()
        cf.drop_database()
    flat: dict[str, Any] = {}
    ok = {k: v for k, v in results.items() if "error" not in v}  # failed runs keep their error above
    if "subscribe" in ok:
        s = ok["subscribe"]
        flat["subscribe_10k_s" if s["members"] == 10_000 else f"subscribe_{s['members']}_s"] = s["subscribe_s"]
        flat["presence_deliveries"] = s["presence_deliveries"]
    if "storm" in ok:
        flat["reconnect_storm_s"] = ok["storm"]["reconnect_storm_s"]
        flat["surviving_p99_ms"] = ok["storm"]["surviving_p99_ms"]
    if "idle" in ok:
        flat["idle_sockets"] = ok["idle"]["idle_sockets"]
        flat["rss_mb"] = ok["idle"]["rss_mb"]
        flat["rss_kb_per_socket"] = ok["idle"]["rss_kb_per_socket"]
    if "send" in ok:
        flat["cpu_ms_per_message"] = ok["send"]["cpu_ms_per_message"]
        flat["messages_per_s_per_process"] = ok["send"]["messages_per_s_per_process"]
    if "redis" in ok:
        flat["redis_restart"] = ok["redis"]["redis_restart"]
    results["summary"] = flat
    print(json.dumps(results, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in flat.items()))


if __name__ == "__main__":
    main()
