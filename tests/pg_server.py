"""A throwaway PostgreSQL server on loopback for the multi-worker tests.

Starts the real server (Debian's ``postgresql`` package, installed by ``.ci/run`` when
missing) in a temporary directory with ``initdb`` + ``pg_ctl``; as root it runs as the
``postgres`` system user, because PostgreSQL refuses to run as root. When no server can be
started, :func:`start` raises :class:`Unavailable` with the reason, and the tests skip with it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here (the reason is the message)."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise Unavailable(f"{name} not found (install Debian's postgresql package)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    root: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/nasblocks"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                _bin("pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> Server:
    try:
        import psycopg2  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"psycopg2 is not installed: {e}") from None
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="nasblocks-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user") from None
        if not runuser:
            raise Unavailable("running as root and runuser is missing")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chmod(root, 0o700)
        run_as = [runuser, "-u", "postgres", "--"]
    data = root / "data"
    init = subprocess.run(
        [*run_as, _bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
    proc = subprocess.run(
        [
            *run_as,
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    server = Server(root, port, run_as)
    if proc.returncode:
        log = (root / "log").read_text() if (root / "log").exists() else proc.stderr
        server.stop()
        raise Unavailable(f"pg_ctl start failed: {log.strip()[-300:]}")
    deadline = time.time() + 30
    while True:
        made = subprocess.run(
            [
                *run_as,
                _bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "nasblocks",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if made.returncode == 0:
            return server
        if time.time() > deadline:
            server.stop()
            raise Unavailable(f"createdb failed: {made.stderr.strip()[-300:]}")
        time.sleep(0.5)
