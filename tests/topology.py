"""The production topology on loopback, from the files in deploy/ and Debian's packages
(`make deploy-check`, tests/e2e/test_deploy_check.py):

nginx (deploy/nginx.conf) terminating TLS with a certificate made here and proxying
HTTP and websockets to two hubs (``hirfa serve``, production mode, psycopg's pool);
two SFU workers and the job worker (``hirfa sfu``, ``hirfa worker``) with their
operations ports; coturn (deploy/turnserver.conf) with the shared secret, over UDP
and TLS; Redis primary, replica and three Sentinels (deploy/redis-sentinel.conf);
PostgreSQL is the test database. Everything listens on 127.0.0.1 and stops with
`stop()`.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.redis_ha import RedisHA
from tests.servers import ARTIFACTS, ROOT, DaphneServer, free_port, server_env

NGINX = "/usr/sbin/nginx"
TURNSERVER = "/usr/bin/turnserver"
TURN_SECRET = secrets.token_urlsafe(24)
START_SECONDS = 60
#: A hub that is still starting (alive, not yet listening) is waited for this long: on two
#: cores shared with Chromium in a call and another worker's tests (load 12-18), the CPU
#: second or two of its start can take a minute of wall time.
HUB_START_SECONDS = 180
#: A restarted hub whose port is held (an outgoing connection may be given a port a hub
#: just let go) tries again until this long after its first try.
HUB_PORT_RETRY_SECONDS = 30


def missing() -> str:
    """What this machine lacks to bring the topology up, or ""."""
    for path in (NGINX, TURNSERVER, "/usr/bin/openssl"):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install nginx coturn openssl)"
    return RedisHA.missing()


def wait_http(url: str, *, ok: int = 200, deadline: float = START_SECONDS, context=None) -> None:
    end = time.monotonic() + deadline
    last = ""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == ok:
                    return
                last = f"{resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:500]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        if time.monotonic() > end:
            raise RuntimeError(f"{url} did not answer {ok} within {deadline} s (last: {last})")
        time.sleep(0.2)


def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"nothing listens on {port}:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


class PortHeld(RuntimeError):
    """A hub could not listen: its port is held by another socket."""


def process_state(pid: int) -> str:
    """The CPU seconds a process used, its state and where it waits in the kernel (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        return f"{cpu:.1f} s of CPU, state {fields[0]}, waiting in {wchan or '-'}"
    except (OSError, IndexError, ValueError):
        return "its state is unknown"


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until a process's operations port listens and its /readyz answers 200."""
    wait_port(port, process, log)
    wait_http(f"http://127.0.0.1:{port}/readyz")


@dataclass
class Topology:
    database_name: str
    workdir: Path
    sfu_port_min: int
    #: Static files already collected as production does (tests/conftest.py, production_static),
    #: served from here instead of collecting them again (a minute of CPU); None collects.
    static_root: Path | None = None
    redis: RedisHA | None = None
    hubs: list[DaphneServer] = field(default_factory=list)
    hub_log_starts: dict[int, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)
    nginx_port: int = 0
    turn_port: int = 0
    turns_port: int = 0
    cert: Path = Path()
    hub_env: dict[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    @property
    def url(self) -> str:
        return f"https://localhost:{self.nginx_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://localhost:{self.nginx_port}/ws/"

    def ssl_context(self):  # type: ignore[no-untyped-def]
        import ssl

        return ssl.create_default_context(cafile=str(self.cert))

    # --- bring-up -----------------------------------------------------------------

    def start(self) -> Topology:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._certificate()
        self.redis = RedisHA(workdir=self.workdir / "redis", ports=free_port).start()
        self.nginx_port, self.turn_port, self.turns_port = free_port(), free_port(), free_port()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.static_root is not None:
            (data / "static").symlink_to(self.static_root, target_is_directory=True)
        else:
            (data / "static").mkdir()
        self.hub_env = {
            **self.redis.env(),
            "HIRFA_ENV": "production",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "localhost",
            "CSRF_TRUSTED_ORIGINS": self.url,
            "HIRFA_DATA_DIR": str(data),
            "HIRFA_ACCEL_REDIRECT": "1",
            "HIRFA_SFU_PLACEMENT": "workers",
            "HIRFA_SFU_HEARTBEAT_SECONDS": "0.5",
            "HIRFA_SFU_ANNOUNCE_ADDRESSES": "127.0.0.1",
            "HIRFA_SFU_BIND_ADDRESS": "127.0.0.1",
            "HIRFA_TURN_URLS": f"turn:127.0.0.1:{self.turn_port}?transport=udp,"
            f"turns:localhost:{self.turns_port}?transport=tcp",
            "HIRFA_TURN_SECRET": TURN_SECRET,
            "DATABASE_POOL_MAX": "4",
            "HIRFA_JOBS_TICK_SECONDS": "1",
            # The check sends faster than a person may.
            "HIRFA_RATE_BURST": "1000",
            "HIRFA_RATE_PER_SECOND": "100",
        }
        if self.static_root is None:
            self._manage("collectstatic", "--noinput", "--verbosity", "0")
        self._coturn()
        # Each Python process spends its first seconds importing: they start together.
        ready = [self._sfu(index) for index in range(2)] + [self._worker()]
        self.hubs = [self._spawn_hub(free_port()) for _ in range(2)]
        for wait in ready:
            wait()
        for hub in self.hubs:
            self._wait_hub(hub)
        self._nginx(data)
        return self

    def _certificate(self) -> None:
        self.cert, key = self.workdir / "tls.pem", self.workdir / "tls.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True, timeout=60,
        )
        self.key = key

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = server_env(self.database_name, {**self.hub_env, **(extra or {})})
        return env

    def _manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "hub.cli", "manage", *args], cwd=ROOT, env=self._env(), check=True, timeout=300,
            capture_output=True,
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process, log

    def _coturn(self) -> None:
        process, log = self._spawn(
            "coturn",
            [TURNSERVER, "-c", str(ROOT / "deploy" / "turnserver.conf"),
             "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={self.turn_port}", f"--tls-listening-port={self.turns_port}",
             f"--static-auth-secret={TURN_SECRET}", "--realm=localhost",
             f"--cert={self.cert}", f"--pkey={self.key}",
             # The SFU is on 127.0.0.1 here, which the deployment's denials refuse.
             "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1",
             f"--min-port={self.sfu_port_min + 400}", f"--max-port={self.sfu_port_min + 499}",
             f"--pidfile={self.workdir / 'turnserver.pid'}", f"--userdb={self.workdir / 'turndb'}",
             "--log-file=stdout", "--no-cli"],
            dict(os.environ),
        )
        wait_port(self.turns_port, process, log)

    def _sfu(self, index: int) -> Callable[[], None]:
        port = free_port()
        low = self.sfu_port_min + 100 * index
        name = f"sfu-{index}"
        self.ops_ports[name] = port
        process, log = self._spawn(
            name,
            [sys.executable, "-m", "hub.cli", "sfu", "--processes", "1", "--worker-id", f"check-{index}-{os.getpid()}",
             "--ops-port", str(port)],
            self._env({"HIRFA_SFU_PORT_MIN": str(low), "HIRFA_SFU_PORT_MAX": str(low + 99)}),
        )
        return lambda: wait_ready(port, process, log)

    def _worker(self) -> Callable[[], None]:
        port = free_port()
        self.ops_ports["worker"] = port
        process, log = self._spawn(
            "worker", [sys.executable, "-m", "hub.cli", "worker", "--ops-port", str(port)], self._env()
        )
        return lambda: wait_ready(port, process, log)

    def start_hub(self, port: int | None = None) -> DaphneServer:
        """A hub as production runs it (``hirfa serve --proxy-headers``), on `port` or a free one,
        once it is ready. A port still held (``hirfa serve`` then exits at once saying it
        cannot listen) is tried again for HUB_PORT_RETRY_SECONDS."""
        port = port or free_port()
        end = time.monotonic() + HUB_PORT_RETRY_SECONDS
        while True:
            hub = self._spawn_hub(port)
            try:
                self._wait_hub(hub)
                return hub
            except PortHeld:
                if time.monotonic() > end:
                    raise
                time.sleep(1.0)
            except Exception:
                hub.stop()  # not yet in `hubs`: stop() would not find it
                raise

    def _spawn_hub(self, port: int) -> DaphneServer:
        log = self.workdir / f"hub-{port}.log"
        env = self._env()
        # A restarted hub writes after its predecessor's lines: it is read from here.
        self.hub_log_starts[port] = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--proxy-headers", "--no-migrate", "--quiet"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        return DaphneServer(port=port, process=process, log_path=log, env=env)

    def _wait_hub(self, hub: DaphneServer) -> None:
        """Until `hub` says it listens (``hirfa serve`` says so once its socket does) and its
        /readyz answers 200. Raises PortHeld if it could not listen, RuntimeError if it
        exits or is not listening after HUB_START_SECONDS (with its CPU time and state,
        which tell a slow start from a stuck one)."""
        said = f"Hirfa listens on http://127.0.0.1:{hub.port}/"
        start = self.hub_log_starts.get(hub.port, 0)
        end = time.monotonic() + HUB_START_SECONDS
        while True:
            with open(hub.log_path, "rb") as log:
                log.seek(start)
                output = log.read().decode(errors="replace")
            if said in output:
                break
            if hub.process.poll() is not None:
                hub.process.wait()
                if "cannot listen on" in output and "Address already in use" in output:
                    raise PortHeld(output)
                raise RuntimeError(f"the hub on {hub.port} exited with {hub.process.returncode}:\n{output[-3000:]}")
            if time.monotonic() > end:
                raise RuntimeError(
                    f"the hub on {hub.port} is not listening after {HUB_START_SECONDS} s "
                    f"({process_state(hub.process.pid)}; load {os.getloadavg()}):\n{output[-3000:]}"
                )
            time.sleep(0.1)
        wait_http(f"{hub.url}/readyz")

    def _nginx(self, data: Path) -> None:
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        # The file's server lines, on the hubs' ports (their parameters kept).
        params = re.search(r"upstream hirfa \{\n    least_conn;\n    server 127\.0\.0\.1:\d+([^;]*);", site)
        assert params, "deploy/nginx.conf: no upstream block"
        upstreams = "".join(f"    server 127.0.0.1:{hub.port}{params.group(1)};\n" for hub in self.hubs)
        site = re.sub(r"(upstream hirfa \{\n    least_conn;\n)(    server [^\n]+\n)+", r"\g<1>" + upstreams, site)
        assert all(f"127.0.0.1:{hub.port}" in site for hub in self.hubs), "deploy/nginx.conf: no upstream block"
        site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{self.nginx_port} ssl;")
        site = site.replace("server_name hirfa.example.dz;", "server_name localhost;")
        site = site.replace(
            "# ssl_certificate / ssl_certificate_key: your certificates",
            f"ssl_certificate {self.cert};\n    ssl_certificate_key {self.key};",
        )
        site = site.replace("/var/lib/hirfa/", f"{data}/")
        temp = self.workdir / "nginx"
        temp.mkdir(exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            ""
            # As root, the workers would drop to `nobody`, who may not read the run's directory.
            + ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
            "events { worker_connections 256; }\n"
            "http {\n    include /etc/nginx/mime.types;\n"
            f"    access_log {temp}/access.log;\n"
            + "".join(
                f"    {kind}_temp_path {temp}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + site
            + "\n}\n"
        )
        process, log = self._spawn("nginx", [NGINX, "-c", str(conf), "-p", str(temp)], dict(os.environ))
        wait_port(self.nginx_port, process, log)

    # --- operations ---------------------------------------------------------------

    def restart_hub(self, index: int) -> float:
        """SIGTERM hub `index`, check it exits 0, start it again on its port; answers the drain's seconds."""
        hub = self.hubs[index]
        began = time.monotonic()
        hub.process.terminate()
        status = hub.process.wait(timeout=30)
        drained = time.monotonic() - began
        if status != 0:
            raise AssertionError(f"hub on {hub.port} exited with {status}:\n{hub.log_tail()}")
        self.hubs[index] = self.start_hub(hub.port)
        return drained

    def logs(self) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")) + sorted((self.workdir / "nginx").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)

    def stop(self) -> None:
        for hub in self.hubs:
            hub.stop()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.redis is not None:
            self.redis.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "deploy-check.log").write_text(self.logs())

