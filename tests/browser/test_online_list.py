"""The online list of a large room, a page at a time, in Chromium at 360 px.

A crowd of potters is online in the pottery guild through hub sockets of their own
(held in a thread with its event loop while Playwright drives the page from this
one). The room counts as large from 50 online (``HIRFA_PRESENCE_LARGE_ROOM``), so its
presence deltas name nobody: Amina's page must ask for the names. She lists the
next page on demand, and when the crowd thins out her open list is read again
instead of keeping the names of those who left; while her list is closed, her page
asks for nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import translation

from frontend.i18n import JS_STRINGS
from tests import factories
from tests.servers import (
    ARTIFACTS,
    DaphneServer,
    hub_socket,
    open_signed_in,
    session_cookie,
    ws_subscribe,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
WAIT_MS = 30_000
LANGUAGES = [code for code, _name in django_settings.LANGUAGES]
CROWD = 120
SHOW_MORE = "Show more people online"

# The page's presence requests, counted as they leave, and what it hears of presence (`hubLog`,
# for a failure's message; `lastDelta`, when the last delta came).
COUNT_PRESENCE_REQUESTS = """() => {
  const hub = window.hirfaHub;
  window.presenceAsked = 0;
  window.presenceOffsets = [];
  window.hubLog = [];
  const t0 = Date.now();
  const note = (what) => window.hubLog.push(`${Date.now() - t0}ms ${what}`);
  hub.on("status", (f) => note(`status ${f.state}`));
  hub.on("subscribed", (f) => note(`subscribed ${f.online.length}/${f.online_count}`));
  window.lastDelta = 0;
  hub.on("presence_delta", (f) => {
    window.lastDelta = Date.now();
    note(`delta +${f.joined.length} -${f.left.length} more=${f.more} count=${f.online_count}`);
  });
  hub.on("presence_list", (f) => note(`list @${f.offset} ${f.online.length}/${f.online_count}`));
  const raw = hub.raw.bind(hub);
  hub.raw = (frame) => {
    if (frame.type === 'presence') { note(`ask @${frame.offset}`); window.presenceAsked++; window.presenceOffsets.push(frame.offset); }
    return raw(frame);
  };
}"""

LISTED = "() => [...document.querySelectorAll('#online li .person')].map((el) => el.textContent)"


class Crowd:
    """Members' hub sockets, opened and closed from this thread, served by an event loop in
    another (Playwright's sync API keeps one in this thread)."""

    def __init__(self, server: DaphneServer, room_id: int) -> None:
        self.server, self.room_id = server, room_id
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sockets: dict[str, Any] = {}

    def _run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def join(self, cookies: dict[str, dict[str, str]]) -> None:
        """Each named member opens a socket and subscribes to the room (one at a time: the
        hub admits a few openings at once)."""

        async def join_all() -> None:
            for name, cookie in cookies.items():
                ws = await hub_socket(self.server, cookie)
                await ws_subscribe(ws, self.room_id)
                self.loop.create_task(self._drain(ws))
                self.sockets[name] = ws

        self._run(join_all())

    async def _drain(self, ws: Any) -> None:
        try:
            async for _frame in ws:
                pass
        except Exception:  # the socket closed: nothing more to read
            pass

    def leave(self, names: list[str]) -> None:
        async def leave_all() -> None:
            for name in names:
                await self.sockets.pop(name).close()

        self._run(leave_all())

    def close(self) -> None:
        self.leave(list(self.sockets))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def large_guild(transactional_db: None) -> tuple[Any, dict[str, str], dict[str, dict[str, str]]]:
    """The pottery guild with Amina and a crowd of potters: the room, her session, theirs."""
    names = [f"potter{i:03d}" for i in range(CROWD + 10)]
    guild, amina, *potters = factories.guild_with("amina", *names)
    return guild, session_cookie(amina), {p.username: session_cookie(p) for p in potters}


@pytest.fixture
def crowd_server(daphne_factory: Any) -> DaphneServer:
    return daphne_factory(
        {"HIRFA_PRESENCE_LARGE_ROOM": "50", "HIRFA_PRESENCE_LARGE_ROOM_SECONDS": "1", "HIRFA_EMBEDDED_WORKER": "0"}
    )


@pytest.fixture
def crowd(crowd_server: DaphneServer, large_guild: Any) -> Iterator[Crowd]:
    guild, _amina, _cookies = large_guild
    online = Crowd(crowd_server, guild.pk)
    yield online
    online.close()


def open_room(browser: Any, server: DaphneServer, cookie: dict[str, str], room_id: int, language: str) -> Any:
    return open_signed_in(
        browser, server, cookie, f"/rooms/{room_id}/", language=language, viewport=PHONE, is_mobile=True, has_touch=True
    )


def wait_listed(page: Any, count: int, timeout_ms: int = WAIT_MS) -> None:
    try:
        page.wait_for_function(
            f"() => document.querySelectorAll('#online li .person').length === {count}", timeout=timeout_ms
        )
    except Exception as exc:
        state = page.evaluate(
            "() => [document.querySelectorAll('#online li .person').length,"
            " document.querySelector('#online-count').textContent, window.presenceAsked, window.hubLog]"
        )
        raise AssertionError(f"{count} not listed: listed, count, presence asked = {state}") from exc


def test_a_large_room_lists_more_on_demand_and_refreshes_an_open_list(
    browser: Any, crowd_server: DaphneServer, large_guild: Any, crowd: Crowd
) -> None:
    guild, amina, cookies = large_guild
    first, later = dict(list(cookies.items())[:CROWD]), dict(list(cookies.items())[CROWD:])
    crowd.join(first)

    # Amina, on a phone in Arabic (right to left): the first page, then the rest on demand.
    page = open_room(browser, crowd_server, amina, guild.pk, "ar")
    page.evaluate(COUNT_PRESENCE_REQUESTS)
    page.wait_for_function(f"() => document.querySelector('#online-count').textContent.includes('{CROWD + 1}')")
    page.click(".side-toggle")
    wait_listed(page, 100)
    more = page.locator("#online-more")
    assert more.is_visible()
    with translation.override("ar"):
        assert more.inner_text().strip() == translation.gettext(SHOW_MORE)
        hint = str(JS_STRINGS["onlineListed"]).replace("%(shown)s", "100").replace("%(count)s", str(CROWD + 1))
    assert page.locator("#online-listed").inner_text().replace("\u2068", "").replace("\u2069", "") == hint
    # One request for the next page. (On a loaded machine the crowd's arrival may be announced
    # after her page opened, and the stale list read again: the count starts here.)
    asked = page.evaluate("() => window.presenceAsked")
    more.click()
    wait_listed(page, CROWD + 1)
    assert not more.is_visible()
    # The next page, from where the list ended (a delta read meanwhile would ask from 0).
    assert 100 in page.evaluate(f"() => window.presenceOffsets.slice({asked})")

    # Thirty leave: the room's deltas carry only the count; the open list is read again.
    gone = list(first)[:30]
    crowd.leave(gone)
    wait_listed(page, CROWD + 1 - 30, timeout_ms=2 * WAIT_MS)
    listed = page.evaluate(LISTED)
    assert not set(listed) & {name.capitalize() for name in gone}
    page.wait_for_function(f"() => document.querySelector('#online-count').textContent.includes('{CROWD + 1 - 30}')")
    page.screenshot(path=str(ARTIFACTS / "online-list-ar.png"), full_page=True)

    # With the list closed, deltas ask for nothing; opened again, it is read once (the two
    # pages she had listed).
    page.click(".side-close")
    asked = page.evaluate("() => window.presenceAsked")
    crowd.join(later)
    page.wait_for_function(f"() => document.querySelector('#online-count').textContent.includes('{CROWD + 1 - 20}')")
    page.wait_for_timeout(2500)
    assert page.evaluate("() => window.presenceAsked") == asked
    # The crowd's last changes announced (a change noted as a delta went out comes in the
    # next): opened now, no delta makes her list stale again while it is read.
    page.wait_for_function("() => Date.now() - window.lastDelta > 5000", timeout=WAIT_MS)
    page.click(".side-toggle")
    wait_listed(page, CROWD + 1 - 20)
    assert {name.capitalize() for name in later} <= set(page.evaluate(LISTED))
    page.wait_for_timeout(2500)
    assert page.evaluate("() => window.presenceAsked") == asked + 2, page.evaluate("() => window.hubLog")
    assert page.errors == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_online_list_and_its_control_fit_a_phone(
    browser: Any, crowd_server: DaphneServer, large_guild: Any, crowd: Crowd, language: str
) -> None:
    guild, amina, cookies = large_guild
    crowd.join(dict(list(cookies.items())[:CROWD]))
    page = open_room(browser, crowd_server, amina, guild.pk, language)
    page.click(".side-toggle")
    more = page.locator("#online-more")
    more.wait_for()
    found = page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const box = (id) => document.getElementById(id).getBoundingClientRect();
          const inside = (r) => r.width > 0 && r.left >= -1 && r.right <= width + 1;
          return {scroll: document.documentElement.scrollWidth, width,
                  button: inside(box('online-more')), hint: inside(box('online-listed'))};
        }"""
    )
    assert found["scroll"] <= found["width"] and found["button"] and found["hint"], (language, found)
    with translation.override(language):
        label = translation.gettext(SHOW_MORE)
    assert more.inner_text().strip() == label
    if language != "en":
        assert label != SHOW_MORE
    more.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"online-list-{language}.png"))
    assert page.errors == []
