"""Pages whose reads may lag go to a real PostgreSQL streaming replica (hub/replica.py).

A primary and its hot standby are made by the test (tests/pg_replica.py); a real daphne hub
runs on them with ``DATABASE_REPLICA_URL``. The replica's replay is paused so that it lags
on purpose: what the hub then shows proves which database each read came from.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import skip_or_fail
from tests.pg_replica import PgPair, missing
from tests.servers import ROOT, DaphneServer, server_env, start_daphne

SEED = """
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from tests import factories
user = factories.artisan({username!r}, display_name={name!r}, trades=[factories.pottery()],
                         wilaya_=factories.tlemcen())
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print("SESSION", session.session_key)
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def seed(env: dict[str, str], username: str, name: str) -> str:
    """Make an artisan of Tlemcen on the primary; the key of a signed-in session of his."""
    out = manage(env, "shell", "-c", SEED.format(username=username, name=name))
    return next(line.split()[1] for line in out.splitlines() if line.startswith("SESSION "))


def get(server: DaphneServer, path: str, cookies: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(server.url + path)
    if cookies:
        request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def search(server: DaphneServer, words: str, cookies: dict[str, str] | None = None) -> str:
    status, body = get(server, "/artisans/?" + urllib.parse.urlencode({"q": words}), cookies)
    assert status == 200, body[:500]
    return body


@pytest.fixture
def pair() -> Iterator[PgPair]:
    reason = missing()
    if reason:
        skip_or_fail(reason)
    made = PgPair().start()
    try:
        yield made
    finally:
        made.stop()


@pytest.mark.timeout(600)
def test_directory_storefronts_and_census_read_the_replica_and_a_member_reads_his_own_writes(pair):
    env = server_env("hirfa", {"DATABASE_URL": pair.url("primary"), "DATABASE_REPLICA_URL": pair.url("replica")})
    manage(env, "migrate", "--noinput", "-v", "0")
    seed(env, "amina", "Amina Belkacem")
    server = start_daphne(database_name="hirfa", extra_env=env, name="daphne-replica")
    try:
        pair.wait_replayed()
        assert "Amina Belkacem" in search(server, "Amina")
        census_before = get(server, "/census/census.csv")[1]

        # The replica stops replaying: from now on it lags the primary.
        pair.sql("replica", "SELECT pg_wal_replay_pause()")
        end = time.monotonic() + 30
        while pair.sql("replica", "SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < end, "the replica's replay did not pause"
            time.sleep(0.1)
        session = seed(env, "zoubir", "Zoubir Meziane")
        assert pair.sql("primary", "SELECT count(*) FROM hub_artisanprofile WHERE display_name = 'Zoubir Meziane'") == "1"

        # The directory, the storefront and the census are read from the replica: no Zoubir yet.
        assert "Zoubir Meziane" not in search(server, "Zoubir")
        assert get(server, "/artisans/zoubir/")[0] == 404
        assert get(server, "/census/census.csv")[1] == census_before, "the census counted the new artisan"

        # His own session and account come from the primary: he is signed in on those pages.
        signed_in = search(server, "Amina", {"sessionid": session})
        assert "data-unread-notifications" in signed_in, "the session was read from the lagging replica"

        # Just after a change of his (the cookie a successful POST sets), his reads go to the primary.
        wrote = {"hirfa_wrote": f"{time.time():.3f}"}
        status, store = get(server, "/artisans/zoubir/", wrote)
        assert status == 200 and "Zoubir Meziane" in store
        assert "Zoubir Meziane" in search(server, "Zoubir", wrote)
        stale = {"hirfa_wrote": f"{time.time() - 60:.3f}"}
        assert get(server, "/artisans/zoubir/", stale)[0] == 404

        # Replay resumes: the replica catches up and shows him.
        pair.sql("replica", "SELECT pg_wal_replay_resume()")
        pair.wait_replayed()
        assert "Zoubir Meziane" in search(server, "Zoubir")
        assert get(server, "/artisans/zoubir/")[0] == 200
        assert get(server, "/census/census.csv")[1] != census_before

        # The replica goes away: the same pages are read from the primary, not an error.
        pair.stop_replica()
        assert "Zoubir Meziane" in search(server, "Zoubir")
        assert get(server, "/artisans/zoubir/")[0] == 200
        assert get(server, "/census/census.csv")[0] == 200
    finally:
        server.stop()


def test_a_successful_change_sets_the_read_your_writes_cookie_only_with_a_replica(client, monkeypatch, amina):
    """The middleware's cookie, with and without a replica alias (no replica: nothing set)."""
    client.force_login(amina)
    response = client.post("/notifications/read", {})
    assert response.status_code < 400 and "hirfa_wrote" not in response.cookies
    monkeypatch.setattr("hub.replica.replica_configured", lambda: True)
    response = client.post("/notifications/read", {})
    assert response.status_code < 400, response.status_code
    assert "hirfa_wrote" in response.cookies
    assert abs(float(response.cookies["hirfa_wrote"].value) - time.time()) < 60
    refused = client.post("/artisans/nobody/contact", {})
    assert refused.status_code == 404 and "hirfa_wrote" not in refused.cookies

