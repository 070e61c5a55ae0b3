"""The `xypr` command: run, up, serve, worker, migrate, tenant, dlq, keygen, admin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
import uvicorn
from pydantic import SecretStr, ValidationError

try:  # typer 0.2x carries its own copy of click: its commands raise that copy's exceptions
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - typer on the installed click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from xypr.app import AppPlan, StartupHook, create_app
from xypr.config import Settings
from xypr.core.errors import XyprError
from xypr.core.logging import configure_logging
from xypr.core.secretbox import SecretBox, generate_master_key, key_file
from xypr.sandbox import SANDBOX_KEY_FILE
from xypr.services.registry import HTTP_SERVICES, SERVICES, WORKER_SERVICES

if TYPE_CHECKING:
    from fastapi import FastAPI

    from xypr.runtime import Runtime

__all__ = ["main"]

# Errors are one line (see `main` and `CliError`): no rich error panels, no traceback printer.
_PLAIN: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None, "pretty_exceptions_enable": False}
cli = typer.Typer(help="Xypr: the WhatsApp ↔ Genesys Open Messaging bridge.", **_PLAIN)
tenant_cli = typer.Typer(help="Tenants (organisations).", **_PLAIN)
dlq_cli = typer.Typer(help="Dead letters: events that could not be processed.", **_PLAIN)
cli.add_typer(tenant_cli, name="tenant")
cli.add_typer(dlq_cli, name="dlq")
admin_cli = typer.Typer(help="Xypr administrators (platform accounts with a password).", **_PLAIN)
cli.add_typer(admin_cli, name="admin")


class CliError(click_errors.ClickException):
    """A failure the command reports in one line on stderr (exit code `code`), never as a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = code  # 1: a failure, 2: a wrong name or option

    def show(self, file: Any = None) -> None:
        """`error: <message>` on stderr (click would write `Error: …`)."""
        typer.echo(f"error: {self.message}", err=True)


def _settings(*, sandbox_key: bool = True, **overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format)
    if sandbox_key and not settings.master_key.get_secret_value() and not settings.database_url:
        # Next to a sandbox (same data folder, its SQLite database), its tenants are sealed with its key.
        found = key_file(settings.data_dir / SANDBOX_KEY_FILE, create=False)
        if found:
            settings = settings.model_copy(update={"master_key": SecretStr(found)})
    return settings


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _silence_amqp_client() -> Callable[[], None]:
    """Mute the AMQP client's own log of failed connection attempts; returns what undoes it.

    While a command connects, the one line it prints on failure already says why.
    """
    loggers = [logging.getLogger(name) for name in ("aiormq", "aio_pika")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.CRITICAL)

    def restore() -> None:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)

    return restore


@contextlib.contextmanager
def _using(what: str, url: str) -> Iterator[None]:
    """Turns a backend failure (refused connection, missing database, …) into one line naming it."""
    restore = _silence_amqp_client()
    try:
        yield
    except (CliError, XyprError):
        raise
    except Exception as exc:
        raise CliError(f"{what} at {_without_password(url)}: {_one_line(exc)}") from exc
    finally:
        restore()


_NO_MASTER_KEY = (
    "XYPR_MASTER_KEY is not set: export one made by `xypr keygen` "
    "(or run `xypr run --sandbox` once in this folder and its key is used)"
)


def _require_master_key(settings: Settings) -> None:
    if not settings.master_key.get_secret_value():
        raise CliError(_NO_MASTER_KEY)


def _fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once its socket is really listening."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


class _StartupErrors(logging.Filter):
    """Holds back uvicorn's error records until the server is listening (a start-up traceback becomes one line)."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = False
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.listening or record.levelno < logging.ERROR:
            return True
        lines = [line for line in record.getMessage().strip().splitlines() if line.strip()]
        if record.exc_info and record.exc_info[1] is not None:
            lines.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        if lines and not lines[-1].startswith("Application startup failed"):
            self.last = _exception_line(lines[-1].strip())  # a traceback's last line: the exception and message
        return False


def _exception_line(line: str) -> str:
    """`xypr.x.y.SomeError: message` → `message` (ours say it all); `pkg.OtherError: m` → `OtherError: m`."""
    name, separator, message = line.partition(": ")
    if not separator or not re.fullmatch(r"[\w.]+", name):
        return line
    return message if name.startswith("xypr.") else f"{name.rsplit('.', 1)[-1]}: {message}"


def _serve(
    settings: Settings, plan: AppPlan, *, host: str, port: int, on_listening: Callable[[], None] | None = None
) -> None:
    _require_master_key(settings)
    app = create_app(settings, plan)
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning",
        access_log=False, lifespan="on", timeout_graceful_shutdown=10,
    )  # fmt: skip
    errors = _StartupErrors()

    restore_amqp_log = _silence_amqp_client()

    def listening() -> None:
        errors.listening = True
        restore_amqp_log()  # from now on a lost connection is worth a log line
        if on_listening is not None:
            on_listening()

    server = _Server(config, listening)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(errors)
    try:
        server.run()
    except SystemExit:  # uvicorn exits on a port it cannot bind, after logging why
        pass
    finally:
        uvicorn_log.removeFilter(errors)
        restore_amqp_log()
    if not server.started:  # start-up failed (port taken, backend down): say so with the exit code
        raise CliError(f"could not start on {host}:{port}: {errors.last or 'see the log above'}")


@cli.command()
def run(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: XYPR_HOST, 127.0.0.1]")] = None,
    port: Annotated[
        int | None, typer.Option(help="The gateway port, every endpoint is reachable here [default: XYPR_PORT, 3000]")
    ] = None,
    sandbox: Annotated[bool, typer.Option(help="Start the Meta and Genesys emulators and a demo tenant")] = False,
) -> None:
    """Run every service behind the gateway (migrates the database first); the queue workers run in a process
    of their own where two cores or more are usable (XYPR_RUN_WORKER_PROCESSES)."""
    settings = _settings(host=host, port=port)
    host, port = settings.host, settings.port
    if "public_url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    from xypr.worker_processes import WorkerProcesses, default_worker_processes

    processes = default_worker_processes(settings)
    if processes and not settings.redis_url:
        # The processes share dedupe marks, rate windows and tokens: the in-process cache would not.
        settings = settings.model_copy(update={"embedded_cache": "file"})
    # `GET /` leads a browser to the admin dashboard; the sandbox sends it to its own page instead.
    plan = AppPlan(
        http_services=HTTP_SERVICES,
        worker_services=() if processes else WORKER_SERVICES,
        run_migrations=True,
        home="/admin",
    )
    if sandbox:
        from xypr.sandbox.demo import prepare_sandbox

        settings = prepare_sandbox(settings, plan)
    children = WorkerProcesses(settings, processes)
    if processes:
        # Started once this process has migrated the database (and made the sandbox's tenant), stopped with it.
        async def start_children(_app: FastAPI, runtime: Runtime) -> None:
            runtime.companions = children.urls
            await children.start()

        plan.on_startup.append(start_children)
        plan.on_shutdown.append(lambda _app, _runtime: children.stop())

    def banner() -> None:
        url = settings.public_url.rstrip("/")
        backends = "embedded" if not (settings.database_url or settings.amqp_url) else "configured"
        workers = f"queue workers in {processes} more process{'es' if processes > 1 else ''}" if processes else ""
        lines = [f"Xypr is running on {url} ({', '.join(filter(None, [f'{backends} backends', workers]))})"]
        if sandbox:
            lines.append(f"  sandbox page  {url}/sandbox   <- play the customer and the agent here")
            lines.append(f"  log in        {url}/auth/genesys/login?next=/auth/info   (demo Genesys users)")
            from xypr.sandbox.demo import DEMO_ADMIN_EMAIL, sandbox_admin_password

            lines.append(
                f"  dashboard     {url}/admin   <- sign in as {DEMO_ADMIN_EMAIL} / {sandbox_admin_password(settings)}"
                " (or with Genesys Cloud as a demo person)"
            )
        else:
            lines.append(f"  dashboard     {url}/admin   (create an administrator: xypr admin create --email …)")
            lines.append(f"  agent desktop {url}/sandbox/genesys/desktop   <- the WhatsApp widget as Genesys shows it")
        lines += [
            f"  API docs      {url}/docs",
            f"  health        {url}/health  {url}/ready",
            f"  metrics       {url}/metrics" + ("   (this process and its queue workers)" if children.ports else ""),
            f"  webhooks      {url}/webhook/whatsapp  {url}/webhook/genesys",
            f"  data folder   {settings.data_dir.resolve()}",
            "Press Ctrl+C to stop.",
        ]
        typer.echo("\n".join(lines))

    _serve(settings, plan, host=host, port=port, on_listening=banner)


# `xypr up --local`: the services `make test` starts on this machine (scripts/services.sh).
_LOCAL_BACKENDS = {
    "database_url": "postgresql+asyncpg://postgres@127.0.0.1:5432/xypr",
    "amqp_url": "amqp://guest:guest@127.0.0.1:5672/",
    "redis_url": "redis://127.0.0.1:6379/0",
}
_LOCAL_KEY_FILE = "local-master.key"


@cli.command()
def up(
    port_base: Annotated[
        int, typer.Option(help="Port of the gateway; the others keep their offsets (3009 → +9)")
    ] = 3000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="`xypr worker all` processes sharing the partitions")] = 2,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: XYPR_HOST, 127.0.0.1]")] = None,
    local: Annotated[
        bool,
        typer.Option(
            help="Fill what is not set with this machine's PostgreSQL, RabbitMQ and Redis, a local S3 server (moto) "
            "and a master key kept in XYPR_DATA_DIR"
        ),
    ] = False,
    print_config: Annotated[bool, typer.Option(help="Print the process manager's configuration and exit")] = False,
) -> None:
    """Start every service of the service table as its own process, plus the workers; restart any that dies."""
    from xypr.layout import plan_programs, s3_port, supervisord_config

    settings = _settings(host=host, sandbox_key=False)  # its database is never the sandbox's
    updates: dict[str, Any] = {}
    s3_server: tuple[str, ...] | None = None
    if local:
        updates = {key: value for key, value in _LOCAL_BACKENDS.items() if not getattr(settings, key)}
        if not settings.s3_endpoint:
            s3_server = _moto_server(s3_port(port_base))
            updates |= {
                "s3_endpoint": f"http://127.0.0.1:{s3_port(port_base)}",
                "s3_access_key": SecretStr("local"),
                "s3_secret_key": SecretStr("local"),
            }
        if not settings.master_key.get_secret_value():
            updates["master_key"] = SecretStr(key_file(settings.data_dir / _LOCAL_KEY_FILE, create=True) or "")
    if "public_url" not in settings.model_fields_set:
        updates["public_url"] = f"http://127.0.0.1:{port_base}"
    settings = settings.model_copy(update=updates)
    missing = [
        f"XYPR_{key.upper()}"
        for key in ("database_url", "amqp_url", "redis_url", "s3_endpoint")
        if not getattr(settings, key)
    ]
    if missing:
        raise CliError(
            f"`xypr up` runs each service as its own process on shared backends: set {', '.join(missing)} "
            "(or add --local for this machine's; `xypr run` is the one-process, embedded-backend way)"
        )
    _require_master_key(settings)
    programs = plan_programs(
        xypr=_xypr_command(), port_base=port_base, workers=workers, host=settings.host, s3_server=s3_server
    )
    run_dir = (settings.data_dir / "up").resolve()
    config = supervisord_config(programs, run_dir=run_dir)
    if print_config:
        typer.echo(config, nl=False)
        return

    _migrate_once(settings, create_database=local)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "supervisord.conf"
    path.write_text(config)
    environment = {**os.environ, **_settings_environment(settings, updates)}
    typer.echo(
        "\n".join(
            [f"Xypr: {len(programs)} processes under supervisord ({path}); Ctrl+C stops them all"]
            + [f"  {program.name:<22} http://127.0.0.1:{program.port}{program.health_path}" for program in programs]
            + [f"  status: {Path(sys.executable).parent / 'supervisorctl'} -c {path} status"]
        )
    )
    sys.stdout.flush()
    # supervisord takes this process's place: Ctrl+C and SIGTERM reach it directly, and it stops every program.
    supervisord = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(path)]
    os.execve(sys.executable, supervisord, environment)  # noqa: S606 - our own interpreter, no shell


def _xypr_command() -> tuple[str, ...]:
    """How the child processes run this CLI: the `xypr` script beside this Python, else `python -m xypr.cli`."""
    script = Path(sys.executable).parent / "xypr"
    return (str(script),) if script.exists() else (sys.executable, "-m", "xypr.cli")


def _moto_server(port: int) -> tuple[str, ...]:
    """The command of a local S3 server (moto, a development dependency)."""
    import importlib.util

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise CliError(
            "--local needs moto[server] for its S3 server (`make install` brings it) or XYPR_S3_ENDPOINT set"
        )
    return (sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port))


def _settings_environment(settings: Settings, updates: dict[str, Any]) -> dict[str, str]:
    """The XYPR_* variables the child processes need for the values `xypr up` filled in itself."""
    environment: dict[str, str] = {}
    for key in updates:
        value = getattr(settings, key)
        environment[f"XYPR_{key.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return environment


def _migrate_once(settings: Settings, *, create_database: bool) -> None:
    """Bring the schema up to date before any process starts (they then never race on it)."""
    from xypr.backends.db import create_database as open_database
    from xypr.backends.db import migrate as run_migrations

    async def go() -> None:
        if create_database:
            await _create_postgres_database(settings.database_url)
        database = open_database(settings.effective_database_url)
        try:
            await run_migrations(database)
        finally:
            await database.close()

    with _using("the database", settings.effective_database_url):
        asyncio.run(go())


async def _create_postgres_database(url: str) -> None:
    """Create the database a PostgreSQL URL names when it does not exist yet (local set-ups)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql") or not parsed.database:
        return
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database):
            await connection.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await connection.close()


@cli.command()
def serve(
    name: Annotated[str, typer.Argument(help="An HTTP service, e.g. whatsapp-webhook, api-gateway")],
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: XYPR_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Default: the service's own port")] = None,
) -> None:
    """Run one HTTP service alone (`api-gateway` serves every HTTP service's routes)."""
    spec = SERVICES.get(name)
    servable = sorted(n for n, s in SERVICES.items() if s.built and s.port is not None)
    if spec is None or not spec.built:
        raise CliError(f"unknown or not yet built HTTP service {name!r}; one of: {', '.join(servable)}", 2)
    if spec.port is None:
        raise CliError(f"{name} is a queue worker without an HTTP side: use `xypr worker {name}`", 2)
    settings = _settings(host=host)
    gateway = name == "api-gateway"
    # The gateway serves in-process every HTTP service not listed in XYPR_SERVICE_URLS, and proxies the others.
    remote = dict(settings.service_urls) if gateway else {}
    services = tuple(each for each in HTTP_SERVICES if each not in remote) if gateway else (name,)
    try:
        from xypr.services.gateway import upstreams_of

        upstreams_of(remote)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    plan = AppPlan(http_services=services, public_gateway=gateway, remote_services=remote)
    if gateway:
        plan.home = "/admin"
    _serve(settings, plan, host=settings.host, port=port or spec.port)


@cli.command()
def worker(
    name: Annotated[str, typer.Argument(help="A queue worker, e.g. inbound-transformer, whatsapp-api, all")],
    index: Annotated[
        int,
        typer.Option(
            envvar="XYPR_WORKER_INDEX",
            help="This process's number among --of workers (partition share); Kubernetes sets it from the pod index",
        ),
    ] = 0,
    of: Annotated[int, typer.Option(envvar="XYPR_WORKER_COUNT", help="How many processes run this worker")] = 1,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: XYPR_HOST, 127.0.0.1]")] = None,
    port: Annotated[int, typer.Option(help="Port of this worker's /health, /ready, /metrics (0: any free)")] = 0,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop once this process is gone (xypr run's children)")
    ] = None,
) -> None:
    """Run queue workers; several processes share the partitions and keep each conversation in order."""
    names = WORKER_SERVICES if name == "all" else (name,)
    for each in names:
        if each not in WORKER_SERVICES:
            raise CliError(f"unknown worker {each!r}; one of: all, {', '.join(WORKER_SERVICES)}", 2)
    if not 0 <= index < of:
        raise CliError(
            f"--index (XYPR_WORKER_INDEX) must be in 0 … {of - 1} for --of {of} (XYPR_WORKER_COUNT), not {index}", 2
        )
    settings = _settings(host=host)
    plan = AppPlan(worker_services=names, worker_index=index, worker_count=of)
    if parent_pid is not None:
        plan.on_startup.append(_watching_parent(parent_pid))
    _serve(settings, plan, host=settings.host, port=port)


def _watching_parent(parent_pid: int) -> StartupHook:
    """A start-up hook: this worker stops itself once the `xypr run` that started it is gone."""
    from xypr.worker_processes import watch_parent

    watchers: set[asyncio.Task[None]] = set()

    async def hook(_app: FastAPI, _runtime: Runtime) -> None:
        watcher = asyncio.create_task(watch_parent(parent_pid))
        watchers.add(watcher)
        watcher.add_done_callback(watchers.discard)

    return hook


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from xypr.backends.db import create_database
    from xypr.backends.db import migrate as run_migrations

    settings = _settings()

    async def go() -> None:
        database = create_database(settings.effective_database_url)
        try:
            await run_migrations(database)
        finally:
            await database.close()

    with _using("the database", settings.effective_database_url):
        asyncio.run(go())
    typer.echo("database is up to date")


@cli.command()
def keygen() -> None:
    """Print a new master key for `XYPR_MASTER_KEY`."""
    typer.echo(generate_master_key())


@tenant_cli.command("create")
def tenant_create(file: Annotated[Path, typer.Option("--file", help="The tenant JSON file")]) -> None:
    """Create a tenant from a file; prints it as JSON (with its id, never a secret)."""
    from xypr.tenants.service import create_tenant, parse_tenant_file, tenant_view

    settings = _settings()
    try:
        raw = json.loads(file.read_text())
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        _fail(f"{file} is not valid JSON: {exc}")
    try:
        spec = parse_tenant_file(raw)
        key = settings.master_key.get_secret_value()
        if not key:
            _fail(_NO_MASTER_KEY)
        box = SecretBox(key)
    except XyprError as exc:
        _fail(exc.message)
        return

    async def create(database: Any) -> str:
        return tenant_view(await create_tenant(database, box, spec)).model_dump_json(indent=2)

    _on_database(create)


@dlq_cli.command("list")
def dlq_list(limit: Annotated[int, typer.Option(help="At most this many")] = 100) -> None:
    """List dead letters as JSON lines (id, queue, error, time, body)."""
    from xypr.backends.broker import create_broker

    settings = _settings()

    async def go() -> None:
        broker = create_broker(settings)
        await broker.connect()
        try:
            for letter in await broker.dead_letters(limit=limit):
                typer.echo(
                    json.dumps(
                        {
                            "id": letter.id,
                            "queue": letter.queue,
                            "key": letter.key,
                            "error": letter.error,
                            "dead_at": letter.dead_at.isoformat(),
                            "body": letter.body.decode("utf-8", "replace"),
                        }
                    )
                )
        finally:
            await broker.close()

    with _using("the broker", settings.amqp_url or "embedded"):
        asyncio.run(go())


@dlq_cli.command("replay")
def dlq_replay(dead_letter_id: Annotated[str, typer.Argument(help="The id shown by `xypr dlq list`")]) -> None:
    """Publish a dead letter again to its original queue."""
    from xypr.backends.broker import create_broker

    settings = _settings()

    async def go() -> bool:
        broker = create_broker(settings)
        await broker.connect()
        try:
            return await broker.replay(dead_letter_id)
        finally:
            await broker.close()

    with _using("the broker", settings.amqp_url or "embedded"):
        replayed = asyncio.run(go())
    if not replayed:
        _fail(f"no dead letter {dead_letter_id}")
    typer.echo(f"replayed {dead_letter_id}")


def _read_password() -> str:
    """The new password: prompted twice on a terminal, else the first line of stdin (for scripts)."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def _on_database(action: Callable[[Any], Awaitable[str]]) -> None:
    """Run `action(database)` on a migrated database; a refused input exits 1 with its message."""
    from xypr.backends.db import create_database
    from xypr.backends.db import migrate as run_migrations

    settings = _settings()

    async def go() -> str:
        database = create_database(settings.effective_database_url)
        try:
            await run_migrations(database)
            return await action(database)
        finally:
            await database.close()

    try:
        with _using("the database", settings.effective_database_url):
            typer.echo(asyncio.run(go()))
    except XyprError as exc:
        _fail(exc.message)


@admin_cli.command("create")
def admin_create(
    email: Annotated[str, typer.Option("--email", help="The administrator's email (their login)")],
    name: Annotated[str | None, typer.Option("--name", help="Display name")] = None,
) -> None:
    """Create a Xypr administrator; the password is prompted for, or read from stdin (argon2id-hashed)."""
    from xypr.auth.service import create_admin

    password = _read_password()

    async def create(database: Any) -> str:
        user = await create_admin(database, email=email, password=password, name=name)
        return json.dumps({"id": user.id, "email": user.email, "role": user.role})

    _on_database(create)


@admin_cli.command("set-password")
def admin_set_password(
    email: Annotated[str, typer.Option("--email", help="The administrator's email")],
) -> None:
    """Give an administrator a new password (prompted, or read from stdin); their sessions end."""
    from xypr.auth.service import set_admin_password

    password = _read_password()

    async def change(database: Any) -> str:
        await set_admin_password(database, email=email, password=password)
        return f"password changed for {email.strip().lower()}"

    _on_database(change)


def _one_line(exc: BaseException) -> str:
    """What went wrong, in one line, for an error no command turned into a `CliError` itself."""
    if isinstance(exc, XyprError):
        return exc.message
    if isinstance(exc, ValidationError):  # a setting that does not parse (Settings reads XYPR_* variables)
        first = exc.errors()[0]
        where = "_".join(str(part) for part in first["loc"]).upper()
        return f"invalid setting XYPR_{where}: {first['msg']}" if where else str(first["msg"])
    original = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error; its own text adds a URL
    if isinstance(original, BaseException):
        return _one_line(original)
    if isinstance(exc, OSError) or type(exc).__module__.startswith("xypr."):
        return " ".join(str(exc).split())  # connection refused, unknown host, BrokerUnavailable: they say it all
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


def main() -> None:
    """Entry point of the `xypr` console script: every failure is one line on stderr and a non-zero exit."""
    try:
        code = cli(prog_name="xypr", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # `xypr` or `xypr tenant` alone: the help, as click does
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:  # a wrong option or argument: the reason and where the help is
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except CliError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("XYPR_TRACEBACK"):
            raise
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
