"""`make bench`: how fast and how far the bridge goes on this machine, against ceilings taken in the same run.

Every process is started and stopped here, each bounded in time: the emulators (`bench.emulators`),
the load generator (`bench.load`, one process per run), the baselines (`bench.baselines`), a moto S3
server, and the bridge itself as the `xypr` commands a deployment runs (`xypr serve api-gateway`,
`xypr worker NAME --index I --of N`, or `xypr run` on the embedded backends). The real services get a
fresh database `xypr_bench_<stamp>` and a namespace of their own, removed at the end.

    python -m bench.run                      # everything (≲ 15 min on 2 cores)
    python -m bench.run --quick              # a ~3 min subset
    python -m bench.run --scenario inbound --backend services

Scenarios: baselines, ingest, inbound, outbound, latency, scaling, profile (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.processes import CpuSample, Started, Supervisor, cpu_share, free_port, sample
from bench.report import baseline_table, cpu_line, profile_lines, run_line, runs_table
from bench.stats import Arrival, LoadRecords, acknowledgements, end_to_end
from xypr.topology import QUEUES

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCENARIOS = ("baselines", "ingest", "inbound", "outbound", "latency", "scaling", "profile")
WORKERS = ("inbound-transformer", "genesys-api", "outbound-transformer", "whatsapp-api")
POSTGRES_ADMIN = os.environ.get("XYPR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("XYPR_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("XYPR_TEST_REDIS", "redis://127.0.0.1:6379/0")
PARTITIONS = 4  # Settings.partitions default; the namespace clean-up removes exactly these
SATURATION_CONNECTIONS = 32
_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) * 80 + b"\xff\xd9"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How long and how large the runs are (full or quick)."""

    ingest_seconds: float  # each fixed-rate ingest run and HTTP baseline
    e2e_seconds: float  # each fixed-rate end-to-end run
    saturation_seconds: float  # target length of a saturation run at the best rate seen so far
    warm_customers: int  # customers who wrote first, for the outbound runs
    http_count: int  # requests of an HTTP baseline saturation run (upper bound)
    rabbitmq_count: int
    sqlite_count: int
    drain_idle: float  # arrivals stopped for this long: what is missing is lost
    drain_bound: float  # stop waiting this long after the load: what is missing is pending


FULL = Sizes(8.0, 3.0, 8.0, 200, 60_000, 5000, 2000, 15.0, 40.0)
QUICK = Sizes(5.0, 3.0, 5.0, 100, 30_000, 2000, 600, 10.0, 20.0)


@dataclass(frozen=True, slots=True)
class Plan:
    """Which runs a backend gets (offered rates per scenario; the saturation runs follow the flags)."""

    ingest_rates: tuple[int, ...]
    inbound_rates: tuple[int, ...]
    inbound_variants: bool  # few senders in bursts, and 10 % media, at 500/s
    outbound_rates: tuple[int, ...]
    outbound_saturation: bool
    latency_inbound_rates: tuple[int, ...]  # with 100 ms upstream latency
    latency_saturation: bool
    latency_outbound: bool
    scaling: tuple[int, ...] = ()  # processes per kind, beyond one
    scaling_latency: bool = False


PLANS: dict[tuple[str, str], Plan] = {
    ("full", "services"): Plan(
        ingest_rates=(100, 500, 1000), inbound_rates=(100, 500, 1000), inbound_variants=True,
        outbound_rates=(100, 500), outbound_saturation=True,
        latency_inbound_rates=(500,), latency_saturation=True, latency_outbound=True,
        scaling=(2, 4), scaling_latency=True,
    ),
    ("full", "embedded"): Plan(
        ingest_rates=(100, 500, 1000), inbound_rates=(100, 500), inbound_variants=True,
        outbound_rates=(500,), outbound_saturation=False,
        latency_inbound_rates=(500,), latency_saturation=False, latency_outbound=True,
    ),
    ("quick", "services"): Plan(
        ingest_rates=(500,), inbound_rates=(500,), inbound_variants=False,
        outbound_rates=(500,), outbound_saturation=False,
        latency_inbound_rates=(500,), latency_saturation=False, latency_outbound=False,
    ),
    ("quick", "embedded"): Plan(
        ingest_rates=(500,), inbound_rates=(500,), inbound_variants=False,
        outbound_rates=(500,), outbound_saturation=False,
        latency_inbound_rates=(), latency_saturation=False, latency_outbound=False,
    ),
}  # fmt: skip


@dataclass
class Deployment:
    """One way of running the bridge: its backend, environment, tenant and running processes."""

    backend: str  # services | embedded
    env: dict[str, str]
    cwd: Path
    tenant: dict[str, Any]
    processes: list[Started] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    customers: tuple[int, int] | None = None  # (first sender, count) who wrote first
    best_rate: dict[float, float] = field(default_factory=dict)  # e2e msg/s by upstream latency


def _tenant_file(tag: str) -> dict[str, Any]:
    digits = str(uuid.uuid4().int % 10**12).zfill(12)
    return {
        "name": f"Bench {tag}",
        "genesys": {
            "region": "usw2.pure.cloud",
            "client_id": f"bench-client-{tag}",
            "client_secret": secrets.token_urlsafe(18),
            "integration_id": str(uuid.uuid4()),
            "webhook_secret": secrets.token_urlsafe(24),
            "org_id": f"bench-org-{tag}",
        },
        "whatsapp": {
            "waba_id": "4" + digits,
            "phone_number_id": "5" + digits,
            "display_phone_number": "+1 555 0142",
            "access_token": "EAAG-bench-" + secrets.token_urlsafe(18),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
        },
    }


def _load_tenant(tenant: dict[str, Any]) -> dict[str, str]:
    wa, gc = tenant["whatsapp"], tenant["genesys"]
    return {
        "waba_id": wa["waba_id"],
        "phone_number_id": wa["phone_number_id"],
        "display_phone_number": wa["display_phone_number"],
        "app_secret": wa["app_secret"],
        "integration_id": gc["integration_id"],
        "webhook_secret": gc["webhook_secret"],
    }


class Bench:
    """One bench run: infrastructure, deployments, measured runs and their results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        self.tag = f"{self.stamp}{secrets.token_hex(2)}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"xypr-bench-{self.stamp}-"))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
        base_env["PYTHONPATH"] = str(REPO)
        self.supervisor = Supervisor(self.workdir, env=base_env)
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.started_at = time.time()
        self.next_sender = 1_000
        self.run_count = 0
        self.emulators_url = ""
        self.moto_url = ""
        self.database = f"xypr_bench_{self.tag}"
        self.namespace = f"xypr-bench-{self.tag}"
        self.database_created = False
        self.results: dict[str, Any] = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "options": {
                "quick": args.quick,
                "scenarios": sorted(args.scenarios),
                "backends": args.backends,
                "log_level": args.log_level,
                "env": args.env,
                "pg_connections": args.pg_connections,
                "profiler": "py-spy" if args.py_spy else "pyinstrument",
            },
            "baselines": {},
            "runs": [],
            "profiles": {},
            "notes": [],
        }

    # -- infrastructure ----------------------------------------------------------------------------

    def xypr(self, *args: str) -> list[str]:
        """The `xypr` command of this virtual environment."""
        return [str(Path(sys.executable).parent / "xypr"), *args]

    def python(self, module: str, *args: str) -> list[str]:
        """`python -m module …` with this interpreter."""
        return [sys.executable, "-m", module, *args]

    def remaining(self) -> float:
        """Seconds left of the time budget."""
        return self.deadline - time.monotonic()

    def start_emulators(self) -> None:
        """The Meta and Genesys emulators, in their own process."""
        port = free_port()
        self.emulators_url = f"http://127.0.0.1:{port}"
        argv = self.python("bench.emulators", "--port", str(port))
        if self.args.meta_statuses:
            argv.append("--meta-statuses")
        item = self.supervisor.start("emulators", argv, health_url=f"{self.emulators_url}/_bench/health", cwd=REPO)
        self.supervisor.wait_healthy([item], timeout=60)

    def set_latency(self, milliseconds: float) -> None:
        """Upstream latency of the emulated Graph and Genesys APIs, from now on."""
        httpx.post(f"{self.emulators_url}/_bench/latency", json={"ms": milliseconds}, timeout=10).raise_for_status()

    def start_moto(self) -> None:
        """An S3 API (moto) for the services backend's media."""
        given = os.environ.get("XYPR_TEST_S3_ENDPOINT")
        if given:
            self.moto_url = given
            return
        port = free_port()
        self.moto_url = f"http://127.0.0.1:{port}"
        argv = self.python("moto.server", "-H", "127.0.0.1", "-p", str(port))
        item = self.supervisor.start("moto", argv, health_url=f"{self.moto_url}/moto-api/", cwd=self.workdir)
        self.supervisor.wait_healthy([item], timeout=60)

    def _admin(self, statement: str) -> None:
        async def run() -> None:
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=10)
            try:
                await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(run())

    def services_env(self, master_key: str) -> dict[str, str]:
        """Settings of the bridge on the real services, in the bench's own database and namespace."""
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
        if not self.database_created:
            self._admin(f'CREATE DATABASE "{self.database}"')
            self.database_created = True
        return {
            "XYPR_DATABASE_URL": f"postgresql+asyncpg://{base}/{self.database}",
            "XYPR_AMQP_URL": AMQP_URL,
            "XYPR_REDIS_URL": REDIS_URL,
            "XYPR_S3_ENDPOINT": self.moto_url,
            "XYPR_S3_BUCKET": self.namespace,
            "XYPR_S3_ACCESS_KEY": "testing",
            "XYPR_S3_SECRET_KEY": "testing",
            "XYPR_NAMESPACE": self.namespace,
            **self.common_env(master_key, "services"),
        }

    def common_env(self, master_key: str, backend: str) -> dict[str, str]:
        """Settings shared by both backends: emulators as upstreams, the master key, logging."""
        return {
            "XYPR_MASTER_KEY": master_key,
            "XYPR_DATA_DIR": str(self.workdir / f"{backend}-data"),
            "XYPR_META_GRAPH_URL": f"{self.emulators_url}/meta",
            "XYPR_GENESYS_API_URL": f"{self.emulators_url}/genesys",
            "XYPR_GENESYS_LOGIN_URL": f"{self.emulators_url}/genesys",
            "XYPR_LOG_LEVEL": self.args.log_level,
            # The load comes from one address; Meta's comes from many, each under the per-address limit.
            "XYPR_RATE_LIMIT_WEBHOOKS_PER_IP": "100000000",
            # A number upgraded to Meta's top tier (the default tier, 80/s, would cap the outbound runs).
            "XYPR_WHATSAPP_THROUGHPUT_PER_SECOND": "1000",
            **dict(item.split("=", 1) for item in self.args.env),
        }

    def prepare(self, backend: str) -> Deployment:
        """Environment, schema and tenant of one deployment (nothing running yet)."""
        master_key = self.supervisor.run("keygen", self.xypr("keygen"), timeout=60).strip().splitlines()[-1]
        env = self.services_env(master_key) if backend == "services" else self.common_env(master_key, "embedded")
        cwd = self.workdir / backend  # no stray `.env` file is read from here
        cwd.mkdir(exist_ok=True)
        tenant = _tenant_file(f"{backend}-{self.tag}")
        path = cwd / "tenant.json"
        path.write_text(json.dumps(tenant))
        self.supervisor.run("migrate", self.xypr("migrate"), timeout=120, env=env)
        self.supervisor.run("tenant", self.xypr("tenant", "create", "--file", str(path)), timeout=120, env=env)
        # The number exists at the emulators from now on; its webhook URL follows once a gateway runs.
        self.register(tenant, "http://127.0.0.1:9")
        return Deployment(backend, env, cwd, tenant)

    def create_media(self, tenant: dict[str, Any], count: int) -> list[dict[str, str]]:
        """`count` customer photos (~23 KB each) kept by the Meta emulator, each with its own media id.

        One id per media message, as on WhatsApp: Xypr copies a media id once, so reusing ids would
        measure a cache instead of the download and the upload to the object store.
        """
        media = []
        with httpx.Client(base_url=self.emulators_url, timeout=30) as client:
            for index in range(count):
                data = _JPEG + secrets.token_bytes(2048)
                answer = client.post(
                    "/meta/_sandbox/media",
                    json={"phone_number_id": tenant["whatsapp"]["phone_number_id"], "mime_type": "image/jpeg",
                          "data_base64": base64.b64encode(data).decode(), "filename": f"photo{index}.jpg"},
                )  # fmt: skip
                answer.raise_for_status()
                item = answer.json()
                media.append({"id": item["id"], "mime_type": item["mime_type"], "sha256": item["sha256"]})
        return media

    def register(self, tenant: dict[str, Any], public_url: str) -> None:
        """Point the emulators' number and integration at the bridge (upsert)."""
        from xypr.sandbox.demo import register_with_emulators

        async def run() -> None:
            async with (
                httpx.AsyncClient(base_url=f"{self.emulators_url}/meta", timeout=30) as meta,
                httpx.AsyncClient(base_url=f"{self.emulators_url}/genesys", timeout=30) as genesys,
            ):
                await register_with_emulators(meta, genesys, tenant, public_url=public_url)

        asyncio.run(run())

    # -- the bridge's processes --------------------------------------------------------------------

    def start_bridge(
        self, deployment: Deployment, *, gateways: int = 1, workers: int = 0, profile: Sequence[str] = ()
    ) -> None:
        """`gateways` processes of `xypr serve api-gateway`, `workers` of each worker (`--index I --of N`)."""
        self.stop_bridge(deployment)
        # Every process gets its share of the PostgreSQL connections the bench may use (its whole pool).
        pool = max(2, self.args.pg_connections // (gateways + workers * len(WORKERS)))
        if not any(item.startswith("XYPR_DATABASE_POOL_SIZE=") for item in self.args.env):
            deployment.env["XYPR_DATABASE_POOL_SIZE"] = str(pool)
        items: list[Started] = []
        for _ in range(gateways):
            port = free_port()
            argv = self.xypr("serve", "api-gateway", "--port", str(port))
            items.append(self._start_xypr(deployment, "gateway", argv, port, profile))
            deployment.gateways.append(f"http://127.0.0.1:{port}")
        for name in WORKERS if workers else ():
            for index in range(workers):
                port = free_port()
                argv = self.xypr("worker", name, "--index", str(index), "--of", str(workers), "--port", str(port))
                items.append(self._start_xypr(deployment, name, argv, port, profile))
        deployment.processes = items
        self.supervisor.wait_healthy(items, timeout=120)
        self.register(deployment.tenant, deployment.gateways[0])

    def start_all_in_one(self, deployment: Deployment, *, profile: bool = False) -> None:
        """`xypr run`: every service in one process on the embedded backends (no sandbox); `profile`: under
        pyinstrument (`bench.profiling`), sampling between SIGUSR1 and SIGUSR2."""
        self.stop_bridge(deployment)
        port = free_port()
        env = {**deployment.env, "XYPR_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        argv = self.xypr("run", "--port", str(port))
        if profile:
            # The whole pipeline in the one process the profiler samples (no worker process beside it).
            env["XYPR_RUN_WORKER_PROCESSES"] = "0"
            prefix = self.workdir / f"profile-{deployment.backend}-xypr-run"
            argv = self.python("bench.profiling", "--out", str(prefix), "--", *argv[1:])
        item = self.supervisor.start(
            "xypr-run", argv, env=env,  # /ready: its worker processes are up too
            health_url=f"http://127.0.0.1:{port}/ready", cwd=deployment.cwd,
        )  # fmt: skip
        deployment.processes = [item]
        deployment.gateways = [f"http://127.0.0.1:{port}"]
        self.supervisor.wait_healthy([item], timeout=120)
        self.register(deployment.tenant, deployment.gateways[0])

    def _start_xypr(
        self, deployment: Deployment, role: str, argv: list[str], port: int, profile: Sequence[str]
    ) -> Started:
        if role in profile:
            prefix = self.workdir / f"profile-{deployment.backend}-{role}"
            argv = self.python("bench.profiling", "--out", str(prefix), "--", *argv[1:])
        return self.supervisor.start(
            role, argv, env=deployment.env, health_url=f"http://127.0.0.1:{port}/health", cwd=deployment.cwd
        )

    def stop_bridge(self, deployment: Deployment) -> None:
        """Stop the deployment's processes (SIGINT, then SIGKILL after a grace period)."""
        if deployment.processes:
            self.supervisor.stop(deployment.processes, grace=20)
        deployment.processes = []
        deployment.gateways = []

    def purge(self, deployment: Deployment, queues: Sequence[str]) -> None:
        """Drop what waits in the deployment's own `queues` (deliveries in progress still finish)."""
        if deployment.backend == "embedded":
            path = Path(deployment.env["XYPR_DATA_DIR"]) / "queue.sqlite3"
            marks = ",".join("?" * len(queues))
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
                db.execute(f"DELETE FROM broker_messages WHERE queue IN ({marks})", tuple(queues))  # noqa: S608
            return

        async def run() -> None:
            import aio_pika

            connection = await aio_pika.connect(AMQP_URL, timeout=10)
            try:
                channel = await connection.channel()
                for queue_name in queues:
                    for partition in range(PARTITIONS):
                        queue = await channel.get_queue(f"{self.namespace}.{queue_name}.p{partition}", ensure=False)
                        await queue.purge()
            finally:
                await connection.close()

        asyncio.run(run())

    # -- one measured run --------------------------------------------------------------------------

    def load_spec(self, deployment: Deployment, **fields: Any) -> dict[str, Any]:
        """A load spec for this deployment's tenant and gateways (fresh senders unless told)."""
        self.run_count += 1
        spec: dict[str, Any] = {
            "targets": deployment.gateways,
            "run_id": f"{self.tag}-{self.run_count}",
            "tenant": _load_tenant(deployment.tenant),
            "out": str(self.workdir / f"load-{self.run_count}.json"),
            **fields,
        }
        if "sender_offset" not in spec:
            spec["sender_offset"] = self.next_sender
            self.next_sender += spec.get("count") or int(spec.get("rate", 100) * spec.get("duration", 5)) + 10
        return spec

    def run_load(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run the load generator process on `spec` (bounded) and return its output."""
        path = Path(spec["out"]).with_suffix(".spec.json")
        path.write_text(json.dumps(spec))
        budget = float(spec.get("duration", 5)) + 120
        self.supervisor.run("loadgen", self.python("bench.load", str(path)), timeout=budget, env={})
        output: dict[str, Any] = orjson.loads(Path(spec["out"]).read_bytes())
        return output

    def arrivals_since(self, after: int) -> tuple[int, list[list[Any]]]:
        """Rows recorded by the emulators from global index `after` on, and the next index."""
        answer = httpx.get(f"{self.emulators_url}/_bench/arrivals", params={"after": after}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        return int(body["next"]), body["rows"]

    def drain(self, records: LoadRecords, kind: str, after: int, *, bound: float) -> tuple[list[Arrival], bool]:
        """Collect arrivals until every acked one arrived or nothing moved for a while (False), or `bound` (True)."""
        acked = {key for key, status in zip(records.key, records.status, strict=True) if status == 200}
        arrivals: list[Arrival] = []
        seen: set[str] = set()
        started = last_progress = time.monotonic()
        while True:
            after, rows = self.arrivals_since(after)
            fresh = [Arrival(r[0], r[1], r[3], r[4]) for r in rows if r[2] == kind]
            arrivals.extend(fresh)
            before = len(seen)
            seen.update(a.key for a in fresh if a.key in acked)
            now = time.monotonic()
            if len(seen) > before:
                last_progress = now
            if len(seen) >= len(acked):
                time.sleep(1.0)  # a duplicate right behind the last one is still counted
                after, rows = self.arrivals_since(after)
                arrivals.extend(Arrival(r[0], r[1], r[3], r[4]) for r in rows if r[2] == kind)
                return arrivals, False
            if now - last_progress > self.sizes.drain_idle:
                return arrivals, False
            if now - started > bound or self.remaining() < 30:
                return arrivals, True
            time.sleep(0.25)

    def measure(
        self,
        deployment: Deployment,
        scenario: str,
        label: str,
        spec: dict[str, Any],
        *,
        pipeline: str | None,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """One load run (plus draining its arrivals), with counts, percentiles, ratios and CPU shares."""
        row: dict[str, Any] = {"backend": deployment.backend, "scenario": scenario, "label": label, **config}
        if self.remaining() < 60:
            row["skipped"] = "time budget"
            self.results["runs"].append(row)
            print(run_line_skipped(row), flush=True)
            return row
        after = int(httpx.post(f"{self.emulators_url}/_bench/reset", timeout=10).json()["next"])
        spec["watch"] = self.supervisor.watch_list()
        output = self.run_load(spec)
        records = LoadRecords.from_output(output)
        row["spec"] = {k: v for k, v in spec.items() if k not in ("tenant", "out", "targets", "media", "watch")}
        row["ack"] = acknowledgements(records)
        if output.get("errors"):
            row["ack"]["client_errors"] = output["errors"]
        if pipeline is not None:
            kind = "genesys" if pipeline == "inbound" else "meta"
            arrivals, cut_off = self.drain(records, kind, after, bound=self.sizes.drain_bound)
            row["e2e"] = end_to_end(records, arrivals, cut_off=cut_off)
            Path(spec["out"]).with_suffix(".arrivals.json").write_bytes(orjson.dumps(arrivals))
            rate = row["e2e"].get("e2e_rate") or 0.0
            latency = config.get("latency_ms", 0.0)
            deployment.best_rate[latency] = max(deployment.best_rate.get(latency, 0.0), rate)
        # Ingest: the load's own window; end to end: until the last arrival was collected.
        start = CpuSample.from_json(output["cpu_start"])
        end = CpuSample.from_json(output["cpu_end"]) if pipeline is None else sample(spec["watch"])
        row["cpu"] = cpu_share(start, end, extra={"loadgen": output["cpu_seconds"]})
        row["loadgen_cpu_per_request_us"] = round(1e6 * output["cpu_seconds"] / max(1, row["ack"]["sent"]), 1)
        # CPU time per message is what contention on a shared machine disturbs least.
        done = (row.get("e2e") or {}).get("arrived") if pipeline else row["ack"]["acked"]
        row["cpu_ms_per_message"] = cpu_per_message(row["cpu"], end.at - start.at, done or 0)
        row["ratios"] = self.ratios(row, deployment.backend)
        self.results["runs"].append(row)
        print(run_line(row), flush=True)
        print("    cpu (cores): " + cpu_line(row["cpu"]), flush=True)
        if (row.get("e2e") or {}).get("pending"):
            # Its backlog would eat into the next run: drop what still waits in the queues.
            self.purge(deployment, QUEUES)
        return row

    def ratios(self, row: dict[str, Any], backend: str) -> dict[str, float | None]:
        """Each figure over its same-run ceiling: bare ASGI for HTTP, the backend's broker round trip."""
        baselines = self.results["baselines"]
        http = (baselines.get("bare ASGI saturation") or {}).get("ack_rate")
        broker_name = "RabbitMQ round trip" if backend == "services" else "SQLite queue round trip"
        broker = (baselines.get(broker_name) or {}).get("rate")
        ack_rate = (row.get("ack") or {}).get("ack_rate")
        e2e_rate = (row.get("e2e") or {}).get("e2e_rate")
        out: dict[str, float | None] = {}
        if row.get("spec", {}).get("mode") == "closed" and http and ack_rate:
            out["ack_vs_http"] = round(ack_rate / http, 3)
        bare = baselines.get(f"bare ASGI at {row.get('rate')}/s") or {}
        p99, bare_p99 = ((row.get("ack") or {}).get("ack_ms") or {}).get("p99"), (bare.get("ack_ms") or {}).get("p99")
        if p99 and bare_p99:
            out["ack_p99_vs_http"] = round(p99 / bare_p99, 1)  # how many times the bare server's p99
        if http and e2e_rate:
            out["e2e_vs_http"] = round(e2e_rate / http, 4)
        if broker and e2e_rate:
            out["e2e_vs_broker"] = round(e2e_rate / broker, 3)
        return out

    # -- baselines ---------------------------------------------------------------------------------

    def baselines(self) -> None:
        """Generator ceiling, HTTP ceiling at each rate and at saturation, broker ceilings."""
        sizes = self.sizes
        dummy = Deployment("baseline", {}, self.workdir, _tenant_file("baseline"))
        for name in ("null", "bare"):
            port = free_port()
            item = self.supervisor.start(name, self.python("bench.baselines", name, "--port", str(port)), cwd=REPO)
            try:
                _wait_port(port, item)
                dummy.gateways = [f"http://127.0.0.1:{port}"]
                if name == "bare":
                    for rate in PLANS[("quick" if self.args.quick else "full", "services")].ingest_rates:
                        spec = self.load_spec(dummy, rate=rate, duration=sizes.ingest_seconds, mode="open")
                        self.baseline_http(f"bare ASGI at {rate}/s", spec, item)
                spec = self.load_spec(
                    dummy, mode="closed", count=sizes.http_count, duration=sizes.saturation_seconds,
                    connections=SATURATION_CONNECTIONS,
                )  # fmt: skip
                title = "load generator ceiling (null server)" if name == "null" else "bare ASGI saturation"
                self.baseline_http(title, spec, item)
            finally:
                self.supervisor.stop([item])
        if "services" in self.args.backends:
            self.baseline_rabbitmq()
        if "embedded" in self.args.backends:
            self.baseline_sqlite()
        print(baseline_table(self.results["baselines"]), flush=True)

    def baseline_http(self, title: str, spec: dict[str, Any], server: Started) -> None:
        """One load run against a baseline server."""
        spec["watch"] = self.supervisor.watch_list(services=False)
        output = self.run_load(spec)
        summary = acknowledgements(LoadRecords.from_output(output))
        start, end = CpuSample.from_json(output["cpu_start"]), CpuSample.from_json(output["cpu_end"])
        cpu = cpu_share(start, end, extra={"loadgen": output["cpu_seconds"]})
        summary["cpu"] = cpu
        summary["loadgen_cpu_per_request_us"] = round(1e6 * output["cpu_seconds"] / max(1, summary["sent"]), 1)
        if summary.get("ack_rate") and cpu.get("loadgen"):
            # What one core of generator would push at this cost per request.
            summary["note"] = f"generator {cpu['loadgen']:.2f} cores, {summary['loadgen_cpu_per_request_us']} µs/req"
        self.results["baselines"][title] = summary
        print(f"baseline {title}: {summary.get('ack_rate')}/s, ack {summary['ack_ms']} ms", flush=True)
        print(f"    cpu (cores): {cpu_line(cpu)}", flush=True)

    def baseline_rabbitmq(self) -> None:
        """Publish-with-confirm → consume round trip on RabbitMQ quorum queues (two processes)."""
        count = self.sizes.rabbitmq_count
        namespace = f"{self.namespace}-baseline"
        common = ["--url", AMQP_URL, "--namespace", namespace, "--partitions", str(PARTITIONS), "--count", str(count)]
        consume_out, publish_out = self.workdir / "rabbit-consume.json", self.workdir / "rabbit-publish.json"
        consumer = self.supervisor.start(
            "broker-consumer", self.python("bench.baselines", "rabbitmq-consume", *common, "--out", str(consume_out)),
            cwd=REPO,
        )  # fmt: skip
        try:
            _wait_for_line(consumer, "ready", timeout=120)
            self.supervisor.run(
                "broker-publisher",
                self.python("bench.baselines", "rabbitmq-publish", *common, "--out", str(publish_out)),
                timeout=180,
            )
            consumer.process.wait(timeout=120)
            consumed, published = json.loads(consume_out.read_text()), json.loads(publish_out.read_text())
            span = (consumed["last"] or 0) - published["first"]
            self.results["baselines"]["RabbitMQ round trip"] = {
                "rate": round(consumed["consumed"] / span, 1) if span > 0 else None,
                "published": published["published"],
                "consumed": consumed["consumed"],
                "round_trip_ms": _ms_block(consumed["round_trip"]),
                "confirm_ms": _ms_block(published["confirm"]),
                "note": f"{PARTITIONS} quorum queues, 64 publishers awaiting confirms, prefetch 64, 2 processes",
            }
        finally:
            self.supervisor.stop([consumer])
            self.supervisor.run(
                "broker-cleanup", self.python("bench.baselines", "rabbitmq-delete", *common), timeout=60
            )

    def baseline_sqlite(self) -> None:
        """Publish → consume → ack round trip through the embedded SQLite queue (one process)."""
        out = self.workdir / "sqlite.json"
        self.supervisor.run(
            "broker-sqlite",
            self.python("bench.baselines", "sqlite", "--count", str(self.sizes.sqlite_count), "--out", str(out)),
            timeout=300,
        )
        result = json.loads(out.read_text())
        span = (result["last"] or 0) - result["first"]
        self.results["baselines"]["SQLite queue round trip"] = {
            "rate": round(result["consumed"] / span, 1) if span > 0 else None,
            "published": result["published"],
            "consumed": result["consumed"],
            "round_trip_ms": _ms_block(result["round_trip"]),
            "confirm_ms": _ms_block(result["confirm"]),
            "note": "synchronous=FULL commit per publish, 64 publishers, prefetch 64, 1 process",
        }

    # -- scenarios on one deployment ---------------------------------------------------------------

    def ingest(self, deployment: Deployment) -> None:
        """Signed `POST /webhook/whatsapp`: ack rate and latency at each offered rate and at saturation."""
        # Not measured: the first requests open the broker channel, the tenant cache, the pools.
        self.run_load(self.load_spec(deployment, rate=200, duration=1.5, mode="open"))
        for rate in self.plan(deployment).ingest_rates:
            spec = self.load_spec(deployment, rate=rate, duration=self.sizes.ingest_seconds, mode="open")
            self.measure(deployment, "ingest", f"whatsapp {rate}/s", spec, pipeline=None, config={"rate": rate})
        spec = self.load_spec(
            deployment, mode="closed", count=self.sizes.http_count // 2, duration=self.sizes.saturation_seconds,
            connections=SATURATION_CONNECTIONS,
        )  # fmt: skip
        self.measure(deployment, "ingest", "whatsapp saturation", spec, pipeline=None, config={"rate": "saturation"})

    def warm_up(self, deployment: Deployment) -> None:
        """A few messages through the pipeline (tokens, caches, pools), then customers who write first."""
        self.warm_pipeline(deployment)
        count = self.sizes.warm_customers
        first = self.next_sender
        self.next_sender += count
        deployment.customers = (first, count)
        self.customers_write_first(deployment, first, count)

    def warm_pipeline(self, deployment: Deployment) -> None:
        """Fifty messages end to end, not measured: tokens, tenant caches, pools and channels get opened."""
        after = int(httpx.post(f"{self.emulators_url}/_bench/reset", timeout=10).json()["next"])
        spec = self.load_spec(deployment, rate=50, duration=1, mode="open", pattern="once")
        records = LoadRecords.from_output(self.run_load(spec))
        arrived = {a.key for a in self.drain(records, "genesys", after, bound=60)[0]}
        if len(arrived) < len(records.key):
            self.note(f"{deployment.backend}: only {len(arrived)} of {len(records.key)} warm-up messages arrived")

    def customers_write_first(self, deployment: Deployment, first: int, count: int) -> None:
        """Each customer writes through the Meta emulator (opening the 24 h window there and in Xypr)."""
        from bench.load import customer_wa_id

        number = deployment.tenant["whatsapp"]["phone_number_id"]
        wanted = {customer_wa_id(first + i) for i in range(count)}
        after = int(httpx.post(f"{self.emulators_url}/_bench/reset", timeout=10).json()["next"])

        async def write() -> None:
            limit = asyncio.Semaphore(16)
            async with httpx.AsyncClient(base_url=f"{self.emulators_url}/meta", timeout=30) as meta:

                async def one(wa_id: str) -> None:
                    async with limit:
                        answer = await meta.post(
                            f"/_sandbox/customers/{wa_id}/messages",
                            json={"phone_number_id": number, "text": "Hello, I need help", "name": "Bench Customer"},
                        )
                        answer.raise_for_status()

                await asyncio.gather(*(one(wa_id) for wa_id in sorted(wanted)))

        asyncio.run(write())
        deadline = time.monotonic() + 120
        seen: set[str] = set()
        while not wanted <= seen and time.monotonic() < deadline:
            after, rows = self.arrivals_since(after)
            seen.update(r[4] for r in rows if r[2] == "genesys")
            time.sleep(0.3)
        if not wanted <= seen:
            self.note(f"{deployment.backend}: only {len(wanted & seen)} of {count} warm-up customers reached Genesys")

    def inbound(self, deployment: Deployment, *, latency: float, rates: Sequence[int], saturation: bool) -> None:
        """End to end inbound: webhook POST → Open Messaging request at the emulated Genesys."""
        scenario = "inbound" if latency == 0 else "latency"
        for rate in rates:
            spec = self.load_spec(deployment, rate=rate, duration=self.sizes.e2e_seconds, mode="open", pattern="once")
            label = f"text, many senders once, {rate}/s, {latency:.0f} ms upstream"
            config = {"latency_ms": latency, "rate": rate}
            self.measure(deployment, scenario, label, spec, pipeline="inbound", config=config)
        if saturation:
            self.inbound_saturation(deployment, scenario, latency)

    def inbound_variants(self, deployment: Deployment) -> None:
        """Few senders writing bursts, and a mix with 10 % media, at 500/s offered."""
        rate, seconds = 500, self.sizes.e2e_seconds
        config = {"latency_ms": 0.0, "rate": rate}
        spec = self.load_spec(deployment, rate=rate, duration=seconds, mode="open", pattern="bursts", senders=10)
        label = f"text, 10 senders in bursts of 20, {rate}/s, 0 ms upstream"
        self.measure(deployment, "inbound", label, spec, pipeline="inbound", config=config)
        media = self.create_media(deployment.tenant, int(rate * seconds * 0.1) + 1)
        spec = self.load_spec(
            deployment, rate=rate, duration=seconds, mode="open", pattern="once", media_ratio=0.1, media=media
        )
        label = f"10 % media, many senders once, {rate}/s, 0 ms upstream"
        self.measure(deployment, "inbound", label, spec, pipeline="inbound", config=config)

    def inbound_saturation(self, deployment: Deployment, scenario: str, latency: float, workers: int = 1) -> None:
        """As many messages as the webhook takes, sized to ~`saturation_seconds` of the best rate seen."""
        best = deployment.best_rate.get(latency) or deployment.best_rate.get(0.0) or 200.0
        count = int(min(8000, max(600, best * self.sizes.saturation_seconds)))
        spec = self.load_spec(
            deployment, mode="closed", count=count, duration=60, pattern="once", connections=SATURATION_CONNECTIONS
        )
        label = f"text, many senders once, saturation ({count} msgs), {latency:.0f} ms upstream"
        if workers > 1:
            label += f", {workers} processes per kind"
        config = {"latency_ms": latency, "rate": "saturation", "processes_per_kind": workers}
        self.measure(deployment, scenario, label, spec, pipeline="inbound", config=config)

    def outbound(self, deployment: Deployment, *, latency: float, rates: Sequence[int], saturation: bool) -> None:
        """End to end outbound: Genesys webhook POST → Graph API send at the emulated Meta."""
        if deployment.customers is None:
            self.note(f"{deployment.backend}: outbound skipped, no customer wrote first")
            return
        first, count = deployment.customers
        scenario = "outbound" if latency == 0 else "latency"
        common = {"kind": "genesys", "pattern": "round_robin", "senders": count, "sender_offset": first}
        for rate in rates:
            spec = self.load_spec(deployment, rate=rate, duration=self.sizes.e2e_seconds, mode="open", **common)
            label = f"agent text, {count} customers, {rate}/s, {latency:.0f} ms upstream"
            config = {"latency_ms": latency, "rate": rate}
            self.measure(deployment, scenario, label, spec, pipeline="outbound", config=config)
        if saturation:
            best = deployment.best_rate.get(latency) or 200.0
            total = int(min(8000, max(600, best * self.sizes.saturation_seconds)))
            spec = self.load_spec(
                deployment, mode="closed", count=total, duration=60, connections=SATURATION_CONNECTIONS, **common
            )
            label = f"agent text, {count} customers, saturation ({total} msgs), {latency:.0f} ms upstream"
            config = {"latency_ms": latency, "rate": "saturation"}
            self.measure(deployment, scenario, label, spec, pipeline="outbound", config=config)

    def note(self, text: str) -> None:
        """A remark kept in the results and printed."""
        self.results["notes"].append(text)
        print(f"note: {text}", flush=True)

    def plan(self, deployment: Deployment) -> Plan:
        """The runs of this backend in this mode."""
        return PLANS[("quick" if self.args.quick else "full", deployment.backend)]

    # -- the two deployments -----------------------------------------------------------------------

    def services(self) -> None:
        """The real services: separate gateway and worker processes, as `docker-compose.yml` deploys them."""
        wanted = self.args.scenarios
        deployment = self.prepare("services")
        plan = self.plan(deployment)
        try:
            if "ingest" in wanted:
                self.start_bridge(deployment, gateways=1, workers=0)
                self.ingest(deployment)
                self.stop_bridge(deployment)
                self.purge(deployment, ["inbound.whatsapp"])
            if {"inbound", "outbound", "latency", "scaling"} & wanted:
                self.start_bridge(deployment, gateways=1, workers=1)
                self.warm_up(deployment)
                self.pipeline_scenarios(deployment, wanted)
            if "scaling" in wanted:
                for processes in plan.scaling:
                    self.start_bridge(deployment, gateways=processes, workers=processes)
                    self.warm_pipeline(deployment)
                    self.set_latency(0)
                    self.inbound_saturation(deployment, "scaling", 0.0, workers=processes)
                    if plan.scaling_latency:
                        self.set_latency(100)
                        self.inbound_saturation(deployment, "scaling", 100.0, workers=processes)
                        self.set_latency(0)
            if "profile" in wanted:
                self.profile(deployment)
        finally:
            self.set_latency(0)
            self.stop_bridge(deployment)

    def pipeline_scenarios(self, deployment: Deployment, wanted: set[str]) -> None:
        """Inbound, outbound and 100 ms upstream latency on a running pipeline (one process per kind)."""
        plan = self.plan(deployment)
        self.set_latency(0)
        if {"inbound", "scaling"} & wanted:
            self.inbound(deployment, latency=0.0, rates=plan.inbound_rates, saturation=True)
        if "outbound" in wanted:
            self.outbound(deployment, latency=0.0, rates=plan.outbound_rates, saturation=plan.outbound_saturation)
        if "inbound" in wanted and plan.inbound_variants:
            self.inbound_variants(deployment)
        if "latency" in wanted:
            self.set_latency(100)
            self.inbound(
                deployment, latency=100.0, rates=plan.latency_inbound_rates, saturation=plan.latency_saturation
            )
            if plan.latency_outbound:
                self.outbound(deployment, latency=100.0, rates=(500,), saturation=False)
            self.set_latency(0)

    def embedded(self) -> None:
        """The embedded backends: `xypr serve api-gateway` for ingest, then `xypr run` (one process)."""
        wanted = self.args.scenarios
        deployment = self.prepare("embedded")
        try:
            if "ingest" in wanted:
                self.start_bridge(deployment, gateways=1, workers=0)
                self.ingest(deployment)
                self.stop_bridge(deployment)
                self.purge(deployment, ["inbound.whatsapp"])
            if {"inbound", "outbound", "latency"} & wanted:
                self.start_all_in_one(deployment)
                self.warm_up(deployment)
                self.pipeline_scenarios(deployment, wanted - {"scaling"})
            if "profile" in wanted:
                self.profile(deployment)
        finally:
            self.set_latency(0)
            self.stop_bridge(deployment)

    def profile(self, deployment: Deployment) -> None:
        """The inbound path at 500/s: where the gateway, inbound-transformer and genesys-api spend their CPU
        (embedded: `xypr run`, at 100/s, below what one process keeps up with)."""
        if self.args.py_spy and deployment.backend == "services":
            self.profile_py_spy(deployment)
        else:
            self.profile_pyinstrument(deployment)
        for line in profile_lines(self.results["profiles"]):
            print(line, flush=True)

    def profile_py_spy(self, deployment: Deployment) -> None:
        """py-spy samples the running processes from outside (no overhead in them; idle time left out).

        Two windows: the inbound path at 500/s (gateway and both inbound workers), then webhook ingest at
        saturation with no worker running (the gateway alone, as in the ingest runs).
        """
        self.set_latency(0)
        self.start_bridge(deployment, gateways=1, workers=1)
        self.warm_pipeline(deployment)
        spec = self.load_spec(deployment, rate=500, duration=self.sizes.e2e_seconds, mode="open", pattern="once")
        self.py_spy_window(
            deployment, ("gateway", "inbound-transformer", "genesys-api"), "",
            lambda: self.measure(deployment, "profile", "text, many senders once, 500/s, under py-spy", spec,
                                 pipeline="inbound", config={"latency_ms": 0.0, "rate": 500}),
        )  # fmt: skip
        self.start_bridge(deployment, gateways=1, workers=0)
        self.run_load(self.load_spec(deployment, rate=200, duration=1.5, mode="open"))  # warm, not measured
        spec = self.load_spec(deployment, mode="closed", count=self.sizes.http_count // 4, duration=6.0,
                              connections=SATURATION_CONNECTIONS)  # fmt: skip
        self.py_spy_window(
            deployment, ("gateway",), " (ingest saturation)",
            lambda: self.measure(deployment, "profile", "whatsapp ingest saturation, under py-spy", spec,
                                 pipeline=None, config={"rate": "saturation"}),
        )  # fmt: skip
        self.stop_bridge(deployment)
        self.purge(deployment, ["inbound.whatsapp"])

    def py_spy_window(
        self, deployment: Deployment, roles: Sequence[str], suffix: str, work: Callable[[], object]
    ) -> None:
        """Record `roles` with py-spy while `work` runs; keep the summaries and the collapsed stacks."""
        from bench.profiling import summarize_collapsed

        rate = 250
        recorders: dict[str, tuple[Started, Path]] = {}
        for item in deployment.processes:
            if item.role in roles and item.role not in recorders:
                name = f"{item.role}{suffix}".replace(" ", "-").replace("(", "").replace(")", "")
                out = self.workdir / f"py-spy-{deployment.backend}-{name}.txt"
                argv = [self.args.py_spy, "record", "--pid", str(item.pid), "--rate", str(rate), "--format", "raw",
                        "--full-filenames", "--nonblocking", "--duration", "600", "-o", str(out)]  # fmt: skip
                recorders[item.role] = (self.supervisor.start("py-spy", argv), out)
        time.sleep(1.0)  # py-spy attaches
        started = time.time()
        work()
        wall = time.time() - started
        self.supervisor.stop([recorder for recorder, _ in recorders.values()], grace=60)  # SIGINT: py-spy writes
        for role, (_, out) in recorders.items():
            if not out.exists():
                self.note(f"py-spy wrote no profile for {role}{suffix}")
                continue
            self.results["profiles"][role + suffix] = summarize_collapsed(out, rate=rate, wall_seconds=wall)

    def profile_pyinstrument(self, deployment: Deployment) -> None:
        """pyinstrument inside the processes, sampling their CPU time during the load only."""
        self.set_latency(0)
        if deployment.backend == "embedded":
            profiled: tuple[str, ...] = ("xypr-run",)
            rate = 100
            self.start_all_in_one(deployment, profile=True)
            self.warm_up(deployment)
        else:
            profiled = ("gateway", "inbound-transformer", "genesys-api")
            rate = 500
            self.start_bridge(deployment, gateways=1, workers=1, profile=profiled)
            self.warm_pipeline(deployment)
        sampled = [item for item in deployment.processes if item.role in profiled]
        for item in sampled:
            item.process.send_signal(signal.SIGUSR1)  # sample from now on (start-up stays out)
        spec = self.load_spec(deployment, rate=rate, duration=self.sizes.e2e_seconds, mode="open", pattern="once")
        self.measure(deployment, "profile", f"text, many senders once, {rate}/s, under pyinstrument", spec,
                     pipeline="inbound", config={"latency_ms": 0.0, "rate": rate})  # fmt: skip
        for item in sampled:
            item.process.send_signal(signal.SIGUSR2)  # stop sampling and write the profile
        for role in profiled:
            prefix = self.workdir / f"profile-{deployment.backend}-{role}"
            summary_path = prefix.with_suffix(".json")
            deadline = time.monotonic() + 60
            while not summary_path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)  # the JSON file is the last one written
            if not summary_path.exists():
                self.note(f"no profile written for {role}")
                continue
            self.results["profiles"][role] = json.loads(summary_path.read_text())
            keep = RESULTS / f"{self.args.date}-pyinstrument-{deployment.backend}-{role}.txt"
            keep.write_text(prefix.with_suffix(".txt").read_text())
        self.stop_bridge(deployment)

    # -- whole run ---------------------------------------------------------------------------------

    def run(self) -> Path:
        """Every selected scenario, then the tables and the JSON file."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.start_emulators()
        if "services" in self.args.backends:
            self.start_moto()
        if {"baselines", "ingest", "inbound", "outbound", "latency", "scaling"} & self.args.scenarios:
            self.baselines()
        if "services" in self.args.backends:
            problem = _services_problem()
            if problem:
                self.note(f"services backend skipped: {problem}")
            else:
                self.guard("services", self.services)
        if "embedded" in self.args.backends:
            self.guard("embedded", self.embedded)
        out = self.save()
        print()
        print(baseline_table(self.results["baselines"]))
        print()
        print(runs_table(self.results["runs"]))
        for line in profile_lines(self.results["profiles"]):
            print(line)
        for note in self.results["notes"]:
            print(f"note: {note}")
        print(f"\nresults: {out} ({self.results['elapsed_seconds']:.0f} s)")
        return out

    def save(self, *, interrupted: bool = False) -> Path:
        """Write the results JSON (also what an interrupted run measured so far)."""
        self.results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.results["elapsed_seconds"] = round(time.time() - self.started_at, 1)
        self.results["interrupted"] = interrupted
        out: Path = self.args.out or RESULTS / f"{self.args.date}{self.args.suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(self.results, option=orjson.OPT_INDENT_2))
        return out

    def guard(self, name: str, scenario: Callable[[], None]) -> None:
        """Run one deployment's scenarios; a failure is noted and the next deployment still runs."""
        try:
            scenario()
        except Exception as exc:  # a failed deployment must not lose the figures already taken
            self.note(f"{name} stopped early: {type(exc).__name__}: {str(exc)[:1500]}")

    def cleanup(self) -> None:
        """Stop every process, drop the database, remove the namespace's queues and keys."""
        self.supervisor.stop(grace=20)
        if self.database_created:
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if "services" in self.args.backends:
            try:
                asyncio.run(asyncio.wait_for(_remove_namespace(self.namespace), timeout=60))
            except Exception as exc:  # reported, not fatal: the names are unique to this run
                print(f"could not remove namespace {self.namespace}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not self.args.keep:
            _remove_tree(self.workdir)
        else:
            print(f"kept logs and raw outputs in {self.workdir}")


BRIDGE_ROLES = frozenset({"gateway", "xypr-run", *WORKERS})
SERVICE_ROLES = frozenset({"postgres", "rabbitmq", "redis", "moto"})


def cpu_per_message(shares: dict[str, float], seconds: float, messages: int) -> dict[str, float | None]:
    """Milliseconds of CPU per message: the bridge's processes, the backing services, the emulators."""
    if messages <= 0:
        return {"bridge": None, "services": None, "emulators": None}

    def per(roles: frozenset[str]) -> float:
        return round(1000 * seconds * sum(v for k, v in shares.items() if k in roles) / messages, 2)

    return {"bridge": per(BRIDGE_ROLES), "services": per(SERVICE_ROLES), "emulators": per(frozenset({"emulators"}))}


def run_line_skipped(row: dict[str, Any]) -> str:
    """The progress line of a skipped run."""
    return f"[{row['backend']}] {row['scenario']}: {row['label']} | skipped ({row['skipped']})"


def _ms_block(block: dict[str, float | None]) -> dict[str, float | None]:
    return {k: round(v * 1000, 2) if v is not None else None for k, v in block.items()}


def _wait_port(port: int, item: Started, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if item.process.poll() is not None:
            raise RuntimeError(f"{item.role} exited with {item.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{item.role} did not listen on {port} within {timeout:.0f} s")


def _wait_for_line(item: Started, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in item.log.read_text(errors="replace"):
            return
        if item.process.poll() is not None:
            raise RuntimeError(f"{item.role} exited with {item.process.returncode}: {item.log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{item.role} did not print {text!r} within {timeout:.0f} s")


async def _remove_namespace(namespace: str) -> None:
    """Delete the bench namespace's exchanges, queues and Redis keys (nothing outside it)."""
    import aio_pika
    import redis.asyncio as aioredis

    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    try:
        channel = await connection.channel()
        for queue in QUEUES:
            for partition in range(PARTITIONS):
                with contextlib.suppress(Exception):
                    await channel.queue_delete(f"{namespace}.{queue}.p{partition}")
            with contextlib.suppress(Exception):
                await channel.exchange_delete(f"{namespace}.{queue}")
        with contextlib.suppress(Exception):
            await channel.queue_delete(f"{namespace}.dead-letters")
        with contextlib.suppress(Exception):
            await channel.exchange_delete(f"{namespace}.dead-letters")
    finally:
        await connection.close()
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=10)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{namespace}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


def _services_problem() -> str | None:
    """Why the real services cannot be used right now (each probe bounded), or None."""

    async def probe() -> str | None:
        import aio_pika
        import asyncpg
        import redis.asyncio as aioredis

        checks = {"PostgreSQL": lambda: asyncpg.connect(POSTGRES_ADMIN, timeout=10),
                  "RabbitMQ": lambda: aio_pika.connect(AMQP_URL, timeout=10)}  # fmt: skip
        for name, connect in checks.items():
            try:
                connection = await asyncio.wait_for(connect(), timeout=15)
                await connection.close()
            except Exception as exc:
                return f"{name} does not answer ({type(exc).__name__}: {exc})"
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=10)
        try:
            await client.ping()
        except Exception as exc:
            return f"Redis does not answer ({type(exc).__name__}: {exc})"
        finally:
            await client.aclose()
        return None

    return asyncio.run(probe())


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~3 minute subset")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="only these (repeatable)")
    parser.add_argument("--backend", action="append", choices=("services", "embedded"), help="only these")
    parser.add_argument("--log-level", default="INFO", help="XYPR_LOG_LEVEL of the bridge (default: as shipped)")
    parser.add_argument("--meta-statuses", action="store_true", help="the Meta emulator posts status webhooks")
    parser.add_argument("--env", action="append", default=[], metavar="XYPR_X=V", help="extra bridge setting")
    parser.add_argument("--pg-connections", type=int, default=64, help="PostgreSQL connections shared by the bridge")
    parser.add_argument("--max-minutes", type=float, default=14.0, help="start no run after this (budget)")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/<date>.json)")
    parser.add_argument("--keep", action="store_true", help="keep logs and raw outputs of the run")
    parser.add_argument(
        "--py-spy", metavar="PATH", default=shutil.which("py-spy"),
        help="profile with this py-spy (default: on PATH) instead of pyinstrument",
    )  # fmt: skip
    args = parser.parse_args(argv)
    default = set(SCENARIOS) - ({"scaling", "profile"} if args.quick else set())
    args.scenarios = set(args.scenario or default)
    args.backends = args.backend or (["services"] if args.quick else ["services", "embedded"])
    args.date = dt.date.today().isoformat()
    args.suffix = "" if not (args.quick or args.scenario or args.backend) else "-quick" if args.quick else "-partial"
    return args


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the bench like Ctrl+C, so its processes and data are cleaned up."""

    def stop(_number: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the bench; every process it started is stopped and its data removed, whatever happens."""
    bench = Bench(_parse(argv))
    try:
        with _sigterm_interrupts():
            bench.run()
    except KeyboardInterrupt:
        if bench.results["runs"] or bench.results["baselines"]:
            print(f"interrupted: partial results in {bench.save(interrupted=True)}", file=sys.stderr)
        print("interrupted: stopping every bench process", file=sys.stderr)
        sys.exit(130)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
