"""A PostgreSQL primary and its streaming hot-standby replica, made by a test on loopback.

The machine's own PostgreSQL may not accept replication connections, so the test makes
its own pair: `initdb` for the primary, `pg_basebackup -R` for the replica, each on a free
port of 127.0.0.1, in a temporary directory, run as the `postgres` system user when the test
runs as root. `stop()` stops both and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port


def _bin_dir() -> Path | None:
    """Where initdb, pg_ctl and pg_basebackup are (Debian keeps them off the PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def missing() -> str:
    """Why a pair cannot be made here ("" when it can)."""
    if _bin_dir() is None:
        return "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
    return ""


@dataclass
class PgPair:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hirfa-pg-pair-")))
    primary_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)

    def url(self, which: str, database: str = "hirfa") -> str:
        port = self.primary_port if which == "primary" else self.replica_port
        return f"postgres://postgres@127.0.0.1:{port}/{database}"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        command = [str(bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def _start(self, data: Path, port: int) -> None:
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / f"{data.name}.log"), "-o", options, "-w", "start")

    def start(self) -> PgPair:
        """Make and start both; if any step fails, stop what started and remove the directory."""
        try:
            return self._make()
        except BaseException:
            self.stop()
            raise

    def _make(self) -> PgPair:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        primary, replica = self.root / "primary", self.root / "replica"
        self._run("initdb", "-D", str(primary), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self._start(primary, self.primary_port)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", "hirfa")
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(replica), "-R", "-X", "stream", "--no-sync", "-c", "fast")
        self._start(replica, self.replica_port)
        return self

    def sql(self, which: str, statement: str, database: str = "hirfa") -> str:
        port = self.primary_port if which == "primary" else self.replica_port
        done = self._run("psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database,
                         "-Atc", statement)
        return done.stdout.strip()

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.sql("primary", "SELECT pg_current_wal_lsn()")
        end = time.monotonic() + timeout
        while self.sql("replica", f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
            if time.monotonic() > end:
                raise AssertionError(f"the replica did not replay up to {target} within {timeout} s")
            time.sleep(0.1)

    def stop_replica(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "replica"), "-m", "immediate", "stop", check=False)

    def stop(self) -> None:
        for name in ("replica", "primary"):
            if (self.root / name / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.root / name), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
