"""Private PostgreSQL, Redis and RabbitMQ instances that a fault test may stop and restart.

The shared services on 5432 / 6379 / 5672 belong to everyone working on this machine and are never
touched. Each instance here runs from a temporary directory on free ports, in its own process group,
and `PrivateServices.close` removes all of it (it is also called when a test fails).

RabbitMQ: the Debian `rabbitmq-server` wrapper switches to the `rabbitmq` user; the Erlang-level
script `/usr/lib/rabbitmq/bin/rabbitmq-server` runs as whoever calls it, with the Erlang cookie in
`$HOME`, so the node and `rabbitmqctl` share a private HOME. PostgreSQL's `initdb` refuses root, so
as root its commands run through `runuser -u postgres`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PrivateServices", "ServiceMissing", "missing_binaries"]

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


class ServiceMissing(RuntimeError):
    """A binary the private services need is not installed."""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing_binaries() -> list[str]:
    """What is missing to run the private services here (empty when everything is installed)."""
    missing = []
    if _pg_bin() is None:
        missing.append("PostgreSQL server (/usr/lib/postgresql/*/bin/initdb)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        missing.append(f"RabbitMQ ({RABBIT_BIN}/rabbitmq-server)")
    return missing


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, *, within: float, process: subprocess.Popen[bytes] | None = None, log: Path) -> None:
    deadline = time.monotonic() + within
    while not _listening(port):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before listening on {port}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {within:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def _kill_group(process: subprocess.Popen[bytes] | None, *, grace: float = 5.0) -> None:
    """SIGTERM the process group of a process we started, SIGKILL it after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class PrivateServices:
    """PostgreSQL, Redis and a RabbitMQ node of the fault suite's own, on free ports."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="xypr-faults-")))
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"xyprfault-{secrets.token_hex(4)}@localhost")
    _redis: subprocess.Popen[bytes] | None = None
    _rabbit: subprocess.Popen[bytes] | None = None
    _pg_started: bool = False

    # -- URLs --------------------------------------------------------------------------------------

    @property
    def postgres_admin(self) -> str:
        """asyncpg URL of the cluster's `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL Xypr takes for database `name` of the private cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/{name}"

    @property
    def amqp_url(self) -> str:
        """The private RabbitMQ node (guest may log in: the listener is on 127.0.0.1 only)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def redis_url(self) -> str:
        """The private Redis."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start all three (bounded: each must listen within a minute)."""
        missing = missing_binaries()
        if missing:
            raise ServiceMissing("cannot run the private services: missing " + ", ".join(missing))
        self.root.chmod(0o755)  # the postgres user must reach its data folder inside
        self._init_postgres()
        self.start_postgres()
        self.start_redis()
        self._start_rabbit()

    def close(self) -> None:
        """Stop every instance and remove the temporary folder (never raises)."""
        with contextlib.suppress(Exception):
            self._rabbitmqctl("stop", timeout=30)
        _kill_group(self._rabbit)
        _kill_group(self._redis)
        with contextlib.suppress(Exception):
            self.stop_postgres(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- PostgreSQL --------------------------------------------------------------------------------

    @property
    def _pg_data(self) -> Path:
        return self.root / "pg" / "data"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        pg_bin = _pg_bin()
        assert pg_bin is not None
        log = self.root / "pg-tools.log"
        with log.open("ab") as sink:
            subprocess.run(
                self._as_postgres([str(pg_bin / tool), *args]),
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, check=True,
                cwd=self.root,
            )  # fmt: skip

    def _init_postgres(self) -> None:
        folder = self.root / "pg"
        folder.mkdir()
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        self._pg("initdb", "-D", str(self._pg_data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start_postgres(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        options = (
            f"-p {self.pg_port} -h 127.0.0.1 -k {self.root / 'pg'} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._pg("pg_ctl", "-D", str(self._pg_data), "-l", str(self.root / "pg" / "server.log"),
                 "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        self._pg_started = True

    def stop_postgres(self, *, mode: str = "fast") -> None:
        """Stop the cluster (`fast`: clients are disconnected; `immediate`: like a crash)."""
        if self._pg_started:
            self._pg("pg_ctl", "-D", str(self._pg_data), "-m", mode, "-w", "-t", "60", "stop")
            self._pg_started = False

    # -- Redis -------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        """Start Redis without persistence (a restart empties it, as a cache may be)."""
        log = self.root / "redis.log"
        with log.open("ab") as sink:
            self._redis = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.root)],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        _wait_port(self.redis_port, within=30, process=self._redis, log=log)

    def stop_redis(self) -> None:
        """Stop Redis (SIGTERM to its process group)."""
        _kill_group(self._redis)
        self._redis = None

    # -- RabbitMQ ----------------------------------------------------------------------------------

    def _rabbit_env(self) -> dict[str, str]:
        base = self.root / "rabbit"
        return {
            **os.environ,
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        }

    def _start_rabbit(self) -> None:
        base = self.root / "rabbit"
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True)
        # The consistent-hash exchange partitions the queues; nothing else (no management listener).
        (base / "enabled_plugins").write_text("[rabbitmq_consistent_hash_exchange].\n")
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = {self.amqp_port}\nloopback_users = none\n")
        log = self.root / "rabbit.log"
        with log.open("ab") as sink:
            self._rabbit = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._rabbit_env(),
                start_new_session=True,
            )  # fmt: skip
        _wait_port(self.amqp_port, within=90, process=self._rabbit, log=log)
        self._rabbitmqctl("await_startup", timeout=90)

    def _rabbitmqctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._rabbit_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            timeout=timeout, check=True,
        )  # fmt: skip

    def rabbit_env(self, key: str, value: int | None) -> int | None:
        """Set (None: unset) one of the running node's `rabbit` settings; returns its previous value.

        Channels read `consumer_timeout` and `channel_tick_interval` when they open: a change applies to
        the channels opened afterwards.
        """
        if not re.fullmatch(r"[a-z_]+", key):
            raise ValueError(f"not a setting name: {key!r}")
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "eval", f"application:get_env(rabbit, {key})."],
            env=self._rabbit_env(), capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=True,
        )  # fmt: skip
        found = re.search(rb"\{ok,\s*(\d+)\}", done.stdout)
        change = (
            f"application:unset_env(rabbit, {key})."
            if value is None
            else f"application:set_env(rabbit, {key}, {int(value)})."
        )
        self._rabbitmqctl("eval", change)
        return int(found.group(1)) if found else None

    def rabbit_log_count(self, pattern: str) -> int:
        """How many lines of the node's logs match `pattern` (a regular expression)."""
        wanted = re.compile(pattern)
        return sum(
            1
            for path in (self.root / "rabbit" / "log").glob("*.log")
            for line in path.read_text(errors="replace").splitlines()
            if wanted.search(line)
        )

    def rabbit_stop_app(self) -> None:
        """`rabbitmqctl stop_app`: the broker closes every connection and stops listening."""
        self._rabbitmqctl("stop_app")

    def rabbit_start_app(self) -> None:
        """`rabbitmqctl start_app`, then wait until AMQP listens again."""
        self._rabbitmqctl("start_app")
        _wait_port(self.amqp_port, within=60, log=self.root / "rabbit.log")
