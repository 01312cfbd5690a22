"""A throw-away PostgreSQL 15 server for tests: a temporary cluster, reachable only through a unix
socket in its own temporary folder (no TCP listener at all), stopped and deleted at teardown.

PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and ``pg_ctl`` run as the
``postgres`` system user (``runuser``), which owns the temporary folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 54329  # only names the socket file: nothing listens on TCP
READY_SECONDS = 30.0


@dataclass(frozen=True)
class PgServer:
    socket_dir: Path
    port: int = PORT

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None."""
    if not (BIN / "initdb").exists():
        return f"PostgreSQL 15 binaries not found in {BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def _run(args: list[str], user: str | None) -> None:
    cmd = ["runuser", "-u", user, "--", *args] if user else args
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stdout}\n{done.stderr}")


@contextmanager
def pg_server() -> Iterator[PgServer]:
    """Start a server in a new temporary folder; yield it once it accepts connections."""
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="crmlens-pg-"))
    data, log = root / "data", root / "server.log"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    options = f"-k {root} -p {PORT} -c listen_addresses='' -c fsync=off -c shared_buffers=16MB"
    started = False
    try:
        _run([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
              "-E", "UTF8", "--no-locale", "--no-sync"], user)  # fmt: skip
        _run([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
              "-w", "-t", str(int(READY_SECONDS)), "start"], user)  # fmt: skip
        started = True
        server = PgServer(root)
        _wait_ready(server)
        yield server
    finally:
        if started:
            _run(
                [str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], user
            )
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PgServer) -> None:
    """Poll until a connection succeeds, for at most READY_SECONDS."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            with psycopg.connect(server.dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
