"""The installable app in headless Chromium, on a phone: the manifest in the page's
language, an installable page (no installability error from the browser), the service
worker keeping the shell and the rooms read lately, and, with the server stopped,
the room still readable and any other page the offline page.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid, b64urlencode

from hub.models import User
from rooms import services as room_services
from rooms.models import Room, RoomKind
from tests import factories
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.hub.test_push import PushService, decrypt, phone_of, run_jobs
from tests.servers import session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
WAIT_MS = 30_000
NAMES = {"ar": "حرفة", "fr": "Hirfa", "kab": "Hirfa", "en": "Hirfa"}
OFFLINE = {"ar": "لا يوجد اتصال", "fr": "Pas de connexion", "kab": "Ulac tuqqna", "en": "No connection"}
LANGUAGES = ["ar", "fr", "kab"]


@pytest.fixture
def amina_in_her_guild(transactional_db):
    poterie = factories.trade()
    amina = factories.amina(pottery_=poterie)
    yacine = factories.yacine(pottery_=poterie)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    room_services.message_post(user=yacine, room_id=guild.pk, client_id="k1", text="Le four est chaud ce soir")
    return session_cookie(amina), guild.pk


@pytest.mark.parametrize("language", LANGUAGES)
def test_installable_and_readable_offline(amina_in_her_guild, daphne_factory, browser, language):  # noqa: F811
    cookie, room_id = amina_in_her_guild
    server = daphne_factory({"HIRFA_EMBEDDED_WORKER": "0"})
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    room_url = f"{server.url}/rooms/{room_id}/"
    page.goto(room_url)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")

    manifest = page.evaluate("() => fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
    assert manifest["short_name"] == NAMES[language] and manifest["lang"] == language
    assert manifest["dir"] == ("rtl" if language == "ar" else "ltr")
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
    cdp = context.new_cdp_session(page)
    # Playwright's contexts are incognito, where Chromium never offers to install: that
    # is the harness, not the app; any other reason would be the app's.
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []
    assert cdp.send("Page.getAppManifest")["errors"] == []

    # Pages now pass through the worker, which keeps the room and the list as last seen.
    page.goto(f"{server.url}/rooms/")
    page.goto(room_url)
    page.wait_for_selector(".msg-text:has-text('Le four est chaud ce soir')")
    server.stop()

    page.goto(room_url)
    page.wait_for_selector(".msg-text:has-text('Le four est chaud ce soir')")
    page.goto(f"{server.url}/rooms/")
    assert page.locator(".room-row").count() >= 1
    page.goto(f"{server.url}/gatherings/new")
    assert page.locator("h1").inner_text() == OFFLINE[language]
    assert page.get_attribute("html", "lang") == language
    context.close()


@pytest.fixture
def mention_pushed(amina_in_her_guild, settings, language):
    """Yacine mentions Amina, who reads Hirfa in `language`; the job worker pushes it to her
    phone (a push endpoint of this test), which decrypts it: the JSON her service worker
    will receive."""
    key = Vapid()
    key.generate_keys()
    settings.HIRFA_VAPID_PRIVATE_KEY = b64urlencode(key.private_key.private_numbers().private_value.to_bytes(32, "big"))
    settings.HIRFA_VAPID_PUBLIC_KEY = b64urlencode(
        key.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    cookie, room_id = amina_in_her_guild
    service = PushService()
    try:
        amina, yacine = User.objects.get(username="amina"), User.objects.get(username="yacine")
        amina.preferred_language = language
        amina.save(update_fields=["preferred_language"])
        private, auth, _sub = phone_of(amina, service)
        room_services.send_buckets.reset()
        room_services.message_post(user=yacine, room_id=room_id, client_id="k2", text="@amina tu viens ?")
        run_jobs()
        assert len(service.received) == 1
        payload = decrypt(service.received[0], private, auth)
    finally:
        service.close()
    return cookie, room_id, payload


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_service_worker_shows_a_pushed_mention(mention_pushed, daphne_factory, browser, language):  # noqa: F811
    cookie, room_id, payload = mention_pushed
    # The push speaks the member's language: the app's name, and the words around the names.
    from django.utils import translation

    with translation.override(language):
        said = translation.gettext("%(name)s mentioned you in %(room)s: %(excerpt)s")
    assert payload["title"] == NAMES[language]
    assert said.split("%(name)s")[1].split("%(room)s")[0].strip() in payload["body"]
    server = daphne_factory({"HIRFA_EMBEDDED_WORKER": "0"})
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/notifications/")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    cdp = context.new_cdp_session(page)
    # This server's registrations only: the browser is shared with the tests before, whose
    # registrations (other servers, other ports) the protocol may list too. An earlier test's
    # server may have had this very port (in another browser context): the push goes to every
    # registration of this origin, and this page's context shows it.
    scope = server.url.rstrip("/") + "/"
    registrations: list[str] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(
               r["registrationId"] for r in event["registrations"]
               if r["scopeURL"].startswith(scope) and not r.get("isDeleted")
               and r["registrationId"] not in registrations
           ))
    cdp.send("ServiceWorker.enable")
    deadline = 50
    while not registrations and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    assert registrations, "the page has a service worker registration"
    page.wait_for_timeout(300)  # the rest of the listing, when it comes in several events
    for registration in registrations:
        cdp.send("ServiceWorker.deliverPushMessage",
                 {"origin": server.url, "registrationId": registration, "data": json.dumps(payload)})
    # Polled from here: wait_for_function takes a returned promise as truthy at once, so it
    # would not wait for the push to be handled.
    shown: list = []
    for _ in range(WAIT_MS // 200):
        shown = page.evaluate(
            "() => navigator.serviceWorker.ready.then(r => r.getNotifications())"
            ".then(ns => ns.map(n => ({title: n.title, body: n.body, url: n.data.url})))"
        )
        if shown:
            break
        page.wait_for_timeout(200)
    assert shown == [{"title": payload["title"], "body": payload["body"], "url": payload["url"]}]
    assert "@amina tu viens ?" in shown[0]["body"] and shown[0]["url"].startswith(f"/rooms/{room_id}/#m-")
    context.close()


def test_the_outbox_is_sent_by_the_worker_when_the_link_returns_with_the_tab_closed(
    amina_in_her_guild, daphne_factory, browser  # noqa: F811
):
    """Amina writes with no link, closes the tab; when the hub answers again the service
    worker's background sync sends it (driven through the DevTools protocol, as the
    browser does when it sees the network come back), once."""
    from rooms.models import Message

    cookie, room_id = amina_in_her_guild
    server = daphne_factory({"HIRFA_EMBEDDED_WORKER": "0"})
    context = browser.new_context(viewport=PHONE, locale="ar", is_mobile=True, has_touch=True)
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    room_url = f"{server.url}/rooms/{room_id}/"
    page.goto(room_url)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.wait_for_selector(".msg-text:has-text('Le four est chaud ce soir')")

    server.stop()
    page.fill("#text", "الطين جاهز غدا")
    page.click("#send")
    page.wait_for_selector(".msg.pending")
    stored = page.evaluate(
        """() => new Promise((resolve) => {
             const open = indexedDB.open("hirfa", 1);
             open.onsuccess = () => {
               const get = open.result.transaction("outbox").objectStore("outbox").getAll();
               get.onsuccess = () => resolve(get.result.map((i) => [i.room, i.text]));
             };
           })"""
    )
    assert stored == [[room_id, "الطين جاهز غدا"]]
    page.close()  # the tab is closed before the link returns

    daphne_factory({"HIRFA_EMBEDDED_WORKER": "0"}, port=server.port)
    watcher = context.new_page()
    cdp = context.new_cdp_session(watcher)
    registrations: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    watcher.wait_for_timeout(500)  # the registrations arrive as events
    (registration,) = [r for r in registrations if r["scopeURL"] == f"{server.url}/" and not r["isDeleted"]]
    cdp.send("ServiceWorker.dispatchSyncEvent", {"origin": server.url, "registrationId": registration["registrationId"],
                                                 "tag": "hirfa-outbox", "lastChance": False})
    deadline = time.monotonic() + WAIT_MS / 1000
    while not Message.objects.filter(room_id=room_id, text="الطين جاهز غدا").exists():
        assert time.monotonic() < deadline, "the worker did not send the outbox"
        time.sleep(0.2)
    # Sent once, and gone from the outbox: a second sync sends nothing.
    cdp.send("ServiceWorker.dispatchSyncEvent", {"origin": server.url, "registrationId": registration["registrationId"],
                                                 "tag": "hirfa-outbox", "lastChance": False})
    watcher.goto(room_url)
    watcher.wait_for_selector(".msg-text:has-text('الطين جاهز غدا')")
    assert watcher.locator(".msg.pending").count() == 0
    assert Message.objects.filter(room_id=room_id, text="الطين جاهز غدا").count() == 1
    context.close()


def test_fingerprinted_static_files_on_a_phone(amina_in_her_guild, daphne_factory, browser, production_static):  # noqa: F811
    """The static files as production has them (HIRFA_STATIC_FINGERPRINTS, hub/static_files.py):
    the room's modules find each other under their hashed names, the hub sends each one
    compressed and to be kept a year, the service worker keeps the hashed shell, and the
    room works (a message goes out)."""
    from tests.servers import PRODUCTION_STATIC

    cookie, room_id = amina_in_her_guild
    env = {"HIRFA_EMBEDDED_WORKER": "0", **PRODUCTION_STATIC, "HIRFA_STATIC_ROOT": str(production_static)}
    server = daphne_factory(env)
    context = browser.new_context(viewport=PHONE, locale="kab", is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": "kab", "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    statics: list = []
    page.on("response", lambda r: statics.append(r) if "/static/" in r.url else None)
    page.goto(f"{server.url}/rooms/{room_id}/")
    page.wait_for_selector("body[data-connection='online']")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.fill("#text", "Azul, ad d-aseɣ azekka")
    page.click("#send")
    page.wait_for_selector(".msg:not(.pending) .msg-text:has-text('Azul, ad d-aseɣ azekka')")

    hashed = r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$"
    seen = {r.url.split("#")[0] for r in statics}
    assert {"outbox", "socket", "room", "dom"} <= {
        re.search(r"/hirfa/([\w-]+)\.[0-9a-f]{12}\.js$", url).group(1) for url in seen if url.endswith(".js")
    }
    for response in statics:
        url = response.url.split("#")[0]
        assert re.search(hashed, url), f"{url} has no hash in its name"
        if response.from_service_worker:
            continue
        assert response.status == 200, url
        assert "immutable" in response.headers["cache-control"] and "max-age=315360000" in response.headers["cache-control"]
        if url.endswith((".js", ".css", ".svg")):
            assert response.headers.get("content-encoding") in ("br", "gzip"), url
    kept = page.evaluate(
        """async () => {
             const names = (await caches.keys()).filter((n) => n.startsWith("hirfa-static-"));
             const cache = await caches.open(names[0]);
             return (await cache.keys()).map((r) => new URL(r.url).pathname);
           }"""
    )
    statics_kept = [url for url in kept if url.startswith("/static/")]
    assert len(statics_kept) >= 10 and all(re.search(hashed, url) for url in statics_kept), kept
    assert any(re.search(r"/hirfa/outbox\.[0-9a-f]{12}\.js$", url) for url in statics_kept)
    assert errors == []
    context.close()
