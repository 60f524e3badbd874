"""Web Push of notifications, through the job worker to a push endpoint run by the test.

Amina's phone subscribed (a P-256 key pair and an auth secret made here, as a
browser makes them). Yacine mentions her: the worker POSTs one encrypted push
(aes128gcm, RFC 8291) signed with the hub's VAPID key (RFC 8292) to the endpoint,
which decrypts it with the subscription's private key. A second worker run sends
nothing more; a muted kind is not pushed; a push in quiet hours is silent; a device
the push service says is gone (410) is forgotten.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from datetime import UTC, datetime, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django_tasks_db.management.commands.db_worker import Worker
from py_vapid import Vapid, b64urlencode

from hub import push
from hub.models import Notification, PushDelivery, PushPreference, PushSubscription
from rooms import services
from rooms.models import Room, RoomKind
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class PushService:
    """A push service on 127.0.0.1: keeps each request, answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 201
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                service.received.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
                self.send_response(service.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def vapid(settings):
    key = Vapid()
    key.generate_keys()
    settings.HIRFA_VAPID_PRIVATE_KEY = b64urlencode(key.private_key.private_numbers().private_value.to_bytes(32, "big"))
    settings.HIRFA_VAPID_PUBLIC_KEY = b64urlencode(
        key.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return key


@pytest.fixture
def people(transactional_db):
    poterie = factories.trade()
    amina = factories.amina(pottery_=poterie)
    yacine = factories.yacine(pottery_=poterie)
    amina.preferred_language = "fr"
    amina.save()
    return amina, yacine, Room.objects.get(kind=RoomKind.GUILD, trade=poterie)


def phone_of(user, service: PushService, name: str = "phone"):
    """A device as a browser makes it: its private key, auth secret, and the stored subscription."""
    private = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    subscription = push.push_subscribe(
        user=user, endpoint=f"{service.url}/push/{name}", p256dh=b64(public), auth=b64(auth)
    )
    return private, auth, subscription


def decrypt(request: dict, private, auth: bytes) -> dict:
    assert request["headers"]["content-encoding"] == "aes128gcm"
    return json.loads(http_ece.decrypt(request["body"], private_key=private, auth_secret=auth, version="aes128gcm"))


def run_jobs() -> None:
    Worker(
        queue_names=["default"], interval=0, batch=True, backend_name="default",
        startup_delay=False, max_tasks=None, worker_id="push-test", excluded_queue_names=[],
    ).run()


def mention(yacine, room, text: str = "@amina le four est chaud", client_id: str = "c1"):
    services.send_buckets.reset()
    services.message_post(user=yacine, room_id=room.pk, client_id=client_id, text=text)


def test_a_mention_is_pushed_encrypted_once_per_device(people, push_service, vapid):
    amina, yacine, guild = people
    private, auth, _sub = phone_of(amina, push_service)
    tablet_key, tablet_auth, _tablet = phone_of(amina, push_service, "tablet")
    mention(yacine, guild)
    run_jobs()
    assert sorted(r["path"] for r in push_service.received) == ["/push/phone", "/push/tablet"]
    phone = next(r for r in push_service.received if r["path"] == "/push/phone")
    data = decrypt(phone, private, auth)
    note = Notification.objects.get(user=amina, kind="mention")
    assert data["url"] == f"/rooms/{guild.pk}/#m-{note.data['id']}"
    assert "Yacine" in data["body"] and "@amina le four est chaud" in data["body"]
    assert "mentionné" in data["body"]  # in Amina's language
    assert data["count"] == 1 and data["silent"] is False
    tablet = next(r for r in push_service.received if r["path"] == "/push/tablet")
    assert decrypt(tablet, tablet_key, tablet_auth)["body"] == data["body"]
    # VAPID: the push service can check who sends (RFC 8292).
    authorization = phone["headers"]["authorization"]
    assert authorization.startswith("vapid t=") and f"k={vapid_public(vapid)}" in authorization.replace(" ", "")

    # Exactly once: the job again, and a second worker, send nothing more.
    push.notification_push(notification_id=note.pk)
    run_jobs()
    assert len(push_service.received) == 2
    assert PushDelivery.objects.filter(notification=note).count() == 2


def vapid_public(key: Vapid) -> str:
    return b64urlencode(
        key.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def test_muted_kinds_are_not_pushed_and_quiet_hours_are_silent(people, push_service, vapid):
    amina, yacine, guild = people
    private, auth, _sub = phone_of(amina, push_service)
    push.push_preference_set(user=amina, muted_kinds=["mention"], quiet_from=None, quiet_to=None, tz="Africa/Algiers")
    mention(yacine, guild)
    run_jobs()
    assert push_service.received == []
    assert Notification.objects.filter(user=amina, kind="mention").count() == 1  # still in the centre

    now = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Africa/Algiers"))
    start = time((now.hour - 1) % 24, 0)
    end = time((now.hour + 1) % 24, 59)
    push.push_preference_set(user=amina, muted_kinds=[], quiet_from=start, quiet_to=end, tz="Africa/Algiers")
    mention(yacine, guild, client_id="c2")
    run_jobs()
    assert len(push_service.received) == 1
    assert decrypt(push_service.received[0], private, auth)["silent"] is True


def test_quiet_hours_across_midnight():
    pref = PushPreference(quiet_from=time(22, 0), quiet_to=time(7, 0), tz="Africa/Algiers")
    assert push.in_quiet_hours(pref, datetime(2026, 1, 1, 23, 30, tzinfo=UTC))  # 00:30 in Algiers
    assert push.in_quiet_hours(pref, datetime(2026, 1, 1, 21, 30, tzinfo=UTC))  # 22:30
    assert not push.in_quiet_hours(pref, datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert not push.in_quiet_hours(None, datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


def test_a_gone_device_is_forgotten(people, push_service, vapid):
    amina, yacine, guild = people
    phone_of(amina, push_service)
    push_service.status = 410
    mention(yacine, guild)
    run_jobs()
    assert len(push_service.received) == 1
    assert not PushSubscription.objects.filter(user=amina).exists()


def test_no_keys_no_push_and_no_job(people, push_service, settings):
    amina, yacine, guild = people
    settings.HIRFA_VAPID_PRIVATE_KEY = settings.HIRFA_VAPID_PUBLIC_KEY = ""
    PushSubscription.objects.create(user=amina, endpoint=f"{push_service.url}/x", p256dh="a", auth="b")
    mention(yacine, guild)
    run_jobs()
    assert push_service.received == []
