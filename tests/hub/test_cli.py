from __future__ import annotations

import pytest
from django.core.management import call_command

from hub import cli
from hub.models import ArtisanProfile, ModeratorScope, Notification, User
from rooms.demo import PERSONAS, seed_demo
from rooms.models import Membership, Message, Room, RoomKind

pytestmark = pytest.mark.usefixtures("reference_data")


def counts():
    return {
        "users": User.objects.count(),
        "profiles": ArtisanProfile.objects.count(),
        "rooms": Room.objects.count(),
        "memberships": Membership.objects.count(),
        "messages": Message.objects.count(),
        "scopes": ModeratorScope.objects.count(),
        "notifications": Notification.objects.count(),
    }


def test_demo_seeds_personas_rooms_and_messages_once(capsys):
    first = seed_demo()
    assert all(created for _, created in first)
    after_first = counts()
    second = seed_demo()
    assert not any(created for _, created in second)
    assert counts() == after_first

    amina = User.objects.get(username="amina")
    assert amina.check_password(PERSONAS[0].password)
    assert amina.profile.wilaya.code == 13
    assert amina.profile.trades.get().slug == "pottery-ceramics"
    yacine = User.objects.get(username="yacine")
    assert yacine.profile.wilaya.code == 25 and yacine.profile.trades.get().slug == "copperware"
    nadia = User.objects.get(username="nadia")
    assert ModeratorScope.objects.filter(user=nadia, wilaya__code=13, trade__isnull=True).exists()

    kinds = set(Room.objects.filter(messages__isnull=False).values_list("kind", flat=True))
    assert kinds == {RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION, RoomKind.GROUP, RoomKind.DIRECT}
    texts = " ".join(Message.objects.values_list("text", flat=True))
    assert "Bonjour" in texts and "مرحبا" in texts and "Hi all" in texts
    # The @karim mention notified him.
    assert Notification.objects.filter(user__username="karim", kind="mention").exists()


def test_demo_command_prints_the_passwords(capsys):
    call_command("demo")
    out = capsys.readouterr().out
    for persona in PERSONAS:
        assert persona.username in out and persona.password in out


def test_cli_demo_twice_is_idempotent(capsys):
    assert cli.main(["demo", "--no-migrate"]) == 0
    once = counts()
    assert cli.main(["demo", "--no-migrate"]) == 0
    assert counts() == once
    assert "amina" in capsys.readouterr().out


def test_createadmin_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("HIRFA_ADMIN_PASSWORD", "an-admin-passphrase-9")
    assert cli.main(["createadmin", "--username", "root", "--email", "root@example.org", "--password-from-env"]) == 0
    root = User.objects.get(username="root")
    assert root.is_superuser and root.is_staff and root.check_password("an-admin-passphrase-9")
    assert ArtisanProfile.objects.filter(user=root).exists()
    # A second time: refused, nothing changed.
    with pytest.raises(SystemExit):
        cli.main(["createadmin", "--username", "root", "--email", "x@example.org", "--password-from-env"])
    assert User.objects.filter(username="root").count() == 1


def test_createadmin_refuses_an_unset_variable_or_weak_password(monkeypatch):
    monkeypatch.delenv("ADMIN_PW", raising=False)
    with pytest.raises(SystemExit) as unset:
        cli.main(["createadmin", "--username", "root", "--email", "r@example.org", "--password-from-env", "ADMIN_PW"])
    assert "ADMIN_PW" in str(unset.value)
    monkeypatch.setenv("ADMIN_PW", "123")
    with pytest.raises(SystemExit):
        cli.main(["createadmin", "--username", "root", "--email", "r@example.org", "--password-from-env", "ADMIN_PW"])
    assert not User.objects.filter(username="root").exists()


def test_createadmin_without_a_terminal_asks_for_the_environment(monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as info:
        cli.main(["createadmin", "--username", "root", "--email", "r@example.org"])
    assert "--password-from-env" in str(info.value)


def test_worker_subcommand_runs_the_job_worker(monkeypatch):
    calls = []
    monkeypatch.setattr("hub.jobs.run_worker", lambda **kw: calls.append(kw) or 0)
    assert cli.main(["worker", "--ops-port", "45990"]) == 0
    assert calls == [{"ops_port": 45990, "tick_seconds": 30.0}]


def test_sfu_subcommand_is_the_one_signaling_registers(monkeypatch):
    calls = []
    monkeypatch.setattr("signaling.worker.main", lambda **kw: calls.append(kw) or 0)
    monkeypatch.setattr("django.conf.settings.REDIS_URL", "redis://127.0.0.1:1/0")
    assert cli.main(["sfu", "--processes", "2", "--worker-id", "w1"]) == 0
    assert calls == [{"processes": 2, "worker_id": "w1", "ops_port": 0}]


def test_manage_passes_through_to_django(capsys):
    assert cli.main(["manage", "check"]) == 0
    assert "no issues" in capsys.readouterr().out


def test_serve_options_parse():
    args = cli.build_parser().parse_args(["serve", "--port", "8123"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 8123, cli.cmd_serve)
