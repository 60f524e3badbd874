"""A Join tapped while the camera is still opening (a slow phone, a loaded machine) publishes
the camera all the same.

The meeting page enables Join before its preview's devices are open. A tap in between joined
with what was open so far, the microphone: the camera, opened a moment later, showed in the
preview but was never published, and nobody else ever saw it (the deploy check's Amina, relayed
over TLS, got Nadia's voice and never her camera). Here Chromium's camera takes 3 s to open and
Nadia taps Join as soon as it is enabled.
"""

from __future__ import annotations

import pytest

from tests.browser.test_meeting import (  # noqa: F401  (fixtures)
    DESKTOP,
    WAIT_MS,
    join,
    meeting_browser,
    meeting_server,
    people,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SLOW_CAMERA = """
(() => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    if (constraints && constraints.video) await new Promise((resolve) => setTimeout(resolve, 3000));
    return open(constraints);
  };
})();
"""

PUBLISHES = "(source) => window.hirfaMeeting.mlines().some((m) => m.direction === 'publish' && m.source === source)"


def test_a_join_tapped_while_the_camera_opens_publishes_the_camera(people, meeting_server, meeting_browser):  # noqa: F811
    cookie, _nadia = people["nadia"]
    context = meeting_browser.new_context(viewport=DESKTOP, locale="fr")
    context.add_init_script(SLOW_CAMERA)
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": meeting_server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{meeting_server.url}/rooms/{people['guild']}/meeting/")
    page.wait_for_selector("body[data-connection='online']")

    join(page)  # as soon as Join is enabled: the camera is still opening
    page.wait_for_function(PUBLISHES, arg="mic")
    page.wait_for_function(PUBLISHES, arg="camera")
    assert errors == []
