"""The hub's CPU per live delivery, in-process: one room, N sockets, no clients.

    .venv/bin/python bench/fanout_cpu.py                  # 1,000 sockets, 300 events
    .venv/bin/python bench/fanout_cpu.py --sockets 100 --no-send --json

N real hub consumers (`hub.consumers.HubConsumer` with the apps' parts, each following the
room with its replay over) sit on kernel socket pairs behind the daphne and autobahn objects
that `hub.daphne_hooks.DirectSocket` finds under daphne (a daphne `Server`, an autobahn
protocol with its factory, a Twisted-shaped transport). Each event is published to the room
through the fan-out (`Fanout.dispatch`, as the bus reader does) and the process's CPU time of
that call is summed; the readers are drained between events, outside the time. `--no-send`
replaces the kernel `send()` by a no-op to show the Python alone. What `bench/chat_fanout.py`
measures end to end (loopback TCP, the clients, the database) is not here: this isolates the
per-socket cost, so that two commits compare on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
os.environ["REDIS_URL"] = ""  # the in-process bus: only the fan-out is measured


class NoSend:
    def send(self, data: bytes) -> int:
        return len(data)


async def measure(sockets: int, events: int, send: bool) -> dict[str, Any]:
    import django

    django.setup()
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.server import Server

    from hub import consumers, realtime
    from hub import sockets as socket_parts
    from hub.protocol import PROTOCOL_VERSION
    from rooms.consumers import RoomSub
    from tests.daphne_fakes import daphne_send

    realtime.reset_backend()
    server = Server.__new__(Server)
    server.connections = {}
    factory = WebSocketServerFactory()
    group = "room.970999999"
    pairs = []
    fan = realtime.fanout()
    for i in range(sockets):
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        send_callable, _protocol = daphne_send(left if send else NoSend(), server, factory)
        consumer = consumers.HubConsumer()
        consumer.base_send = send_callable
        consumer.outbox = deque()
        consumer.closing = False
        consumer.wake = asyncio.Event()
        consumer.user = type("Member", (), {"pk": i + 1})()
        consumer.protocol_version = PROTOCOL_VERSION
        consumer.bus_groups = set()
        consumer.lanes = {}
        consumer.parts = [factory_(consumer) for factory_ in socket_parts.part_factories()]
        rooms_part: Any = consumer.parts[0]
        room = RoomSub(replaying=False)
        rooms_part.rooms[970999999] = room
        rooms_part.room_groups[group] = room
        await consumer.join_group(group)
        pairs.append((left, right))
    texts = [
        realtime.Event(
            "message",
            json.dumps({"type": "message", "room": 970999999, "id": n, "rev": n, "seq": n,
                        "author": {"id": 1, "name": "Amina"}, "text": f"bench {time.time()} salam"}),
            n,
        )
        for n in range(1, events + 1)
    ]

    def drain() -> None:
        for _left, right in pairs:
            try:
                while right.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    spent = 0.0
    for n, event in enumerate(texts):
        start = time.process_time()
        fan.dispatch(group, event)
        spent += time.process_time() - start
        if n % 10 == 0:
            drain()
    for left, right in pairs:
        left.close()
        right.close()
    return {
        "sockets": sockets,
        "events": events,
        "send": send,
        "cpu_us_per_delivery": round(spent / (sockets * events) * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--no-send", action="store_true", help="a no-op instead of the kernel send()")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(args.sockets, args.events, not args.no_send))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['sockets']} sockets, {result['events']} events: "
              f"{result['cpu_us_per_delivery']} us of CPU per delivery"
              + ("" if result["send"] else " (send() a no-op)"))


if __name__ == "__main__":
    main()
