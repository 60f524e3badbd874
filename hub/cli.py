"""The `hirfa` command: serve the hub, create the first admin, seed a demo, run manage commands.

    hirfa serve [--host 127.0.0.1] [--port 8000]   migrate, then run daphne
    hirfa createadmin [--username U] [--email E] [--password-from-env [VAR]]
    hirfa demo                                      seed a demonstration country
    hirfa manage <command> [args...]                any Django management command
    hirfa worker                                    the background job worker (hub/jobs.py)
    hirfa sfu [--processes N] [--worker-id ID]      SFU workers for meetings (needs REDIS_URL)
    hirfa sfu --status                              each worker's participants and UDP ports in use

Settings come from the environment (see hub/settings.py); with nothing set the
hub runs on the embedded default (SQLite in ./data, in-memory channel layer).
Commands of the apps above the hub (`sfu`, registered by signaling) are added with
`command_register` from their `AppConfig.ready()`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PASSWORD_ENV = "HIRFA_ADMIN_PASSWORD"
#: Connections waiting to be accepted (kernel listen queue; capped by net.core.somaxconn).
LISTEN_BACKLOG = 4096
#: How long a websocket's opening may wait for the hub (its session read, its socket slot)
#: before it is dropped. daphne's 5 s dropped the openings of a crowd waiting behind each
#: other; each client came back a second later and queued again, so the crowd grew
#: instead of draining (docs/performance.md, "Connection storms").
OPENING_SECONDS = 30


@dataclass(frozen=True)
class CliCommand:
    """A ``hirfa`` subcommand an app adds: `configure` adds its arguments, `run` runs it
    (Django is set up) and answers the exit status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_commands: dict[str, CliCommand] = {}


def command_register(command: CliCommand) -> None:
    """Add (or replace) a subcommand; call from `AppConfig.ready()`."""
    _commands[command.name] = command


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    import django

    django.setup()


def _migrate(verbosity: int = 1) -> None:
    """Bring the database up to date, saying so in one line when there is something to do
    (Django's line per migration only at verbosity 2). A database that cannot be reached
    ends the command with one line naming it, not a traceback."""
    from django.core.management import call_command
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        steps = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        if steps and verbosity:
            print(f"Preparing the database: {steps} migration steps…", flush=True)
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
    except DatabaseError as error:
        settings = connection.settings_dict
        where = settings.get("NAME") if connection.vendor == "sqlite" else (
            f"{settings.get('NAME')} on {settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 5432}"
        )
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SystemExit(
            f"hirfa: cannot use the database {where}: {first_line}\n"
            "Create it (for PostgreSQL: createdb NAME) or fix DATABASE_URL; without DATABASE_URL "
            "Hirfa keeps its data in SQLite under data/."
        ) from None


def _admin_hint() -> str:
    from hub.models import User

    if User.objects.filter(is_superuser=True).exists():
        return ""
    # The command as this shell can run it: `make run` does not put .venv/bin on PATH.
    command = _own_command()
    return (
        "No admin yet. Create the first one with:\n"
        f"    {command} createadmin\n"
        f"or, without prompts: {DEFAULT_PASSWORD_ENV}=... {command} createadmin "
        "--username admin --email admin@example.org --password-from-env\n"
    )


def _own_command() -> str:
    """`hirfa` when it is on PATH, else its path relative to the working directory."""
    import shutil

    beside = Path(sys.executable).with_name("hirfa")
    if shutil.which("hirfa") == str(beside) or not beside.exists():
        return "hirfa"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def _is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) only ever binds the loopback interface."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrate, then serve HTTP and websockets with daphne until interrupted."""
    _setup_django()
    from daphne.endpoints import build_endpoint_description_strings
    from django.conf import settings

    if not settings.PRODUCTION and not _is_loopback(args.host):
        # The embedded default runs with DEBUG, a public SECRET_KEY and no HTTPS: fine on
        # the loopback of a laptop, an open door on a public address.
        raise SystemExit(
            f"hirfa: refusing to serve the embedded default on {args.host}, which is not a "
            "loopback address. Set HIRFA_ENV=production with DATABASE_URL, REDIS_URL and "
            "SECRET_KEY (see deploy/hirfa.env.example), or serve on 127.0.0.1."
        )
    if not args.no_migrate:
        _migrate(verbosity=0 if args.quiet else 1)
        if settings.HIRFA_STATIC_FINGERPRINTS:
            # A hub that prepares its database prepares its static files too (hashed names,
            # compressed copies); several hubs behind nginx do both once, before (--no-migrate).
            from django.core.management import call_command

            call_command("collectstatic", interactive=False, verbosity=0)
    from hub.asgi import application

    # Static files are served by the hub's middleware (hub/static_files.py), nginx or not.
    app = application
    hint = _admin_hint()
    if hint:
        print(hint)
    from hub.shutdown import finish_exit, graceful_server

    # SIGTERM drains: sockets close with 1012 once their frame in hand is done (hub/shutdown.py).
    server = graceful_server(
        # Said once the socket listens: a supervisor (or a test) may take the line as ready.
        listening=lambda: print(f"Hirfa listens on http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True),
        application=app,
        # A listen queue for a crowd: Twisted's default of 50 drops the SYNs of clients
        # reconnecting at once after a restart, and each retries 1, 3, 7, 15 s later.
        endpoints=[
            f"{endpoint}:backlog={LISTEN_BACKLOG}"
            for endpoint in build_endpoint_description_strings(host=args.host, port=args.port)
        ],
        websocket_handshake_timeout=OPENING_SECONDS,
        websocket_connect_timeout=OPENING_SECONDS,
        # Idle sockets are pinged so that dead ones are found and closed.
        ping_interval=settings.HIRFA_PING_SECONDS,
        ping_timeout=settings.HIRFA_PING_SECONDS + 5,
        proxy_forwarded_address_header="X-Forwarded-For" if args.proxy_headers else None,
        proxy_forwarded_port_header="X-Forwarded-Port" if args.proxy_headers else None,
        proxy_forwarded_proto_header="X-Forwarded-Proto" if args.proxy_headers else None,
        verbosity=0 if args.quiet else 1,
    )
    server.run()
    if server.listen_failure:  # a port held by another process: not serving is a failure
        raise SystemExit(f"hirfa: cannot listen on {args.host}:{args.port}: {server.listen_failure}")
    if server.stopping:  # drained: the process ends now (hub/shutdown.py)
        finish_exit(server.loop)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_from_env:
        password = os.environ.get(args.password_from_env, "")
        if not password:
            raise SystemExit(f"hirfa: the environment variable {args.password_from_env} is empty or unset")
        return password
    if not sys.stdin.isatty():
        raise SystemExit(
            f"hirfa: no terminal to ask for a password; use --password-from-env "
            f"(reads ${DEFAULT_PASSWORD_ENV})"
        )
    while True:
        first = getpass.getpass("Password: ")
        if first and first == getpass.getpass("Password (again): "):
            return first
        print("The passwords differ or are empty; try again.", file=sys.stderr)


def cmd_createadmin(args: argparse.Namespace) -> int:
    """Create a superuser (with an artisan profile) from options, the environment or prompts."""
    _setup_django()
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from hub.models import User
    from hub.services import profile_ensure

    username = args.username or input("Username: ").strip()
    email = args.email if args.email is not None else input("Email: ").strip()
    if not username:
        raise SystemExit("hirfa: a username is required")
    if User.objects.filter(username__iexact=username).exists():
        raise SystemExit(f"hirfa: the user {username!r} exists already")
    password = _read_password(args)
    try:
        validate_password(password, user=User(username=username, email=email))
    except ValidationError as exc:
        raise SystemExit("hirfa: " + " ".join(exc.messages)) from exc
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email=email, password=password)
        profile_ensure(user=user)
    print(f"Admin {username!r} created; the admin site is at /admin/.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Migrate, then seed the demonstration data (idempotent)."""
    _setup_django()
    from django.core.management import call_command

    if not args.no_migrate:
        _migrate(verbosity=0)
    call_command("demo")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the background job worker until SIGTERM/SIGINT."""
    _setup_django()
    from hub import jobs

    return int(
        jobs.run_worker(
            ops_port=args.ops_port,
            tick_seconds=float(os.environ.get("HIRFA_JOBS_TICK_SECONDS", jobs.TICK_SECONDS)),
        )
        or 0
    )


def cmd_manage(argv: Sequence[str]) -> int:
    """Pass `argv` to Django's management commands, as manage.py would."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["hirfa manage", *argv])
    return 0


BUILT_IN = frozenset({"serve", "createadmin", "demo", "manage", "worker"})


def build_parser(*, with_apps: bool = True) -> argparse.ArgumentParser:
    """The parser of the hub's commands and, `with_apps`, of the apps' (this sets Django up)."""
    parser = argparse.ArgumentParser(
        prog="hirfa", description="Hirfa, the community hub of Algeria's artisans."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate, then serve the hub with daphne")
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; another one needs HIRFA_ENV=production)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--static", action="store_true", help="(kept for old unit files: the hub always serves static files)"
    )
    serve.add_argument(
        "--proxy-headers", action="store_true", help="trust X-Forwarded-* from a reverse proxy"
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate first (several hubs: migrate once, before the new code; docs/operations.md)",
    )
    serve.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    serve.set_defaults(func=cmd_serve)

    admin = sub.add_parser(
        "createadmin",
        help="create an admin account",
        description="Create an admin account (asked for what is not given). An admin moderates every"
        " wilaya and trade and, in /admin/, gives others a moderator scope (a wilaya, a trade, or both).",
    )
    admin.add_argument("--username", help="the admin's user name (asked when missing)")
    admin.add_argument("--email", help="the admin's e-mail address (asked when missing)")
    admin.add_argument(
        "--password-from-env",
        nargs="?",
        const=DEFAULT_PASSWORD_ENV,
        default=None,
        metavar="VAR",
        help=f"read the password from this environment variable (default {DEFAULT_PASSWORD_ENV})",
    )
    admin.set_defaults(func=cmd_createadmin)

    demo = sub.add_parser("demo", help="seed a demonstration country (artisans, pieces, exchange, gatherings, rooms)")
    demo.add_argument("--no-migrate", action="store_true", help="do not run migrations first")
    demo.set_defaults(func=cmd_demo)

    sub.add_parser("manage", help="run a Django management command (hirfa manage help)")
    worker = sub.add_parser("worker", help="run the background job worker (reminders, e-mail)")
    worker.add_argument(
        "--ops-port",
        type=int,
        default=int(os.environ.get("HIRFA_OPS_PORT", "0")),
        help="serve /healthz, /readyz and /metrics on this loopback port (default: $HIRFA_OPS_PORT, 0: none)",
    )
    worker.set_defaults(func=cmd_worker)
    if not with_apps:
        return parser
    # The apps' commands: registered when Django sets up.
    _setup_django()
    for command in _commands.values():
        added = sub.add_parser(command.name, help=command.help)
        command.configure(added)
        added.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hirfa` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "manage":
        # Everything after `manage` belongs to Django, options included.
        return cmd_manage(argv[1:])
    args = build_parser(with_apps=not argv or argv[0] not in BUILT_IN).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    # Through the module `hub.cli`, whose command registry the apps fill (this file,
    # run as __main__, is a second copy of it).
    from hub.cli import main as hub_main

    sys.exit(hub_main())
