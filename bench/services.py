"""The servers a county deployment runs beside the product, started here on 127.0.0.1 for tests and benchmarks:
a milvus-lite server (a separate process, as a Milvus standalone is reached), PostgreSQL from Debian's
`postgresql` package (the log replicas share), and `kb serve` itself as a process with its own settings.

Each is a context manager that stops what it started; nothing listens beyond loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from kb.config import PROJECT_ROOT

#: How long milvus-lite may take to open its port.
MILVUS_START_SECONDS = 60
#: How long `kb serve` may take to answer /readyz (it loads the model and the store).
SERVE_READY_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MilvusLite:
    """A milvus-lite server in its own process on a fixed port and data folder, which can be stopped and started
    again on both (a restart keeps the data)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data = root / "data"
        self.log_path = root / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data), "--host", "127.0.0.1",
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + MILVUS_START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"milvus-lite exited: {self.log_path.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("milvus-lite did not open its port in time")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@contextmanager
def milvus_lite(root: Path) -> Iterator[MilvusLite]:
    server = MilvusLite(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def postgresql_bindir() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian's layout), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@contextmanager
def postgresql() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (its socket in a temp folder); yields the URL of its `postgres`
    database. initdb refuses root, so as root the server runs as `nobody`. RuntimeError when not installed."""
    bindir = postgresql_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="kb-postgresql-"))  # a folder `nobody` can enter
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", free_port()
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "kb", "--auth=trust", "-E", "UTF8",
                        "--locale=C"], check=True, capture_output=True)
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off", "start"],
                       check=True, capture_output=True)
        yield f"postgresql://kb@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def wait_ready(base: str, server: subprocess.Popen, limit: float = SERVE_READY_SECONDS) -> float:
    """Seconds until `server` answers /readyz with 200; RuntimeError if it exits or takes longer than `limit`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if server.poll() is not None:
            raise RuntimeError("kb serve exited before it was ready")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("kb serve was not ready in time")


@dataclass(frozen=True)
class Served:
    """A running `kb serve`: where it answers, its process, and how long it took to be ready."""

    base: str
    process: subprocess.Popen
    ready_s: float


@contextmanager
def kb_serve(env: Mapping[str, str], args: tuple[str, ...] = (), log: Path | None = None) -> Iterator[Served]:
    """`kb serve` in its own process on 127.0.0.1 and a free port, with these settings over the environment's;
    yields it once /readyz answers, and stops it afterwards."""
    port = free_port()
    with open(log or os.devnull, "a") as output:
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port",
                                   str(port), *args], env={**os.environ, **env}, cwd=PROJECT_ROOT, stdout=output,
                                  stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            yield Served(base, server, wait_ready(base, server))
        finally:
            server.terminate()
            server.wait(timeout=30)
