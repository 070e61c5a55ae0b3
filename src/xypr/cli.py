"""The `xypr` command: run, serve, worker, migrate, tenant, dlq, keygen."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from xypr.app import AppPlan, create_app
from xypr.config import Settings
from xypr.core.errors import XyprError
from xypr.core.logging import configure_logging
from xypr.core.secretbox import SecretBox, generate_master_key
from xypr.services.registry import HTTP_SERVICES, SERVICES, WORKER_SERVICES

__all__ = ["main"]

cli = typer.Typer(help="Xypr: the WhatsApp ↔ Genesys Open Messaging bridge.", no_args_is_help=True)
tenant_cli = typer.Typer(help="Tenants (organisations).", no_args_is_help=True)
dlq_cli = typer.Typer(help="Dead letters: events that could not be processed.", no_args_is_help=True)
cli.add_typer(tenant_cli, name="tenant")
cli.add_typer(dlq_cli, name="dlq")
admin_cli = typer.Typer(help="Xypr administrators (platform accounts with a password).", no_args_is_help=True)
cli.add_typer(admin_cli, name="admin")


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once its socket is really listening."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


def _serve(
    settings: Settings, plan: AppPlan, *, host: str, port: int, on_listening: Callable[[], None] | None = None
) -> None:
    app = create_app(settings, plan)
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning",
        access_log=False, lifespan="on", timeout_graceful_shutdown=10,
    )  # fmt: skip
    server = _Server(config, on_listening)
    server.run()
    if not server.started:  # start-up failed (port taken, backend down): say so with the exit code
        raise typer.Exit(1)


@cli.command()
def run(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The gateway port (every endpoint is reachable here)")] = 3000,
    sandbox: Annotated[bool, typer.Option(help="Start the Meta and Genesys emulators and a demo tenant")] = False,
) -> None:
    """Run every service in one process behind the gateway (migrates the database first)."""
    settings = _settings(host=host, port=port)
    if "public_url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    plan = AppPlan(http_services=HTTP_SERVICES, worker_services=WORKER_SERVICES, run_migrations=True)
    if sandbox:
        from xypr.sandbox.demo import prepare_sandbox

        settings = prepare_sandbox(settings, plan)

    def banner() -> None:
        url = settings.public_url.rstrip("/")
        backends = "embedded" if not (settings.database_url or settings.amqp_url) else "configured"
        lines = [f"Xypr is running on {url} ({backends} backends)"]
        if sandbox:
            lines.append(f"  sandbox page  {url}/sandbox   <- play the customer and the agent here")
            lines.append(f"  log in        {url}/auth/genesys/login?next=/auth/info   (demo Genesys users)")
            lines.append(f"  agent desktop {url}/sandbox/genesys/desktop   <- the WhatsApp widget as Genesys shows it")
        lines += [
            f"  API docs      {url}/docs",
            f"  health        {url}/health  {url}/ready",
            f"  metrics       {url}/metrics",
            f"  webhooks      {url}/webhook/whatsapp  {url}/webhook/genesys",
            f"  data folder   {settings.data_dir.resolve()}",
            "Press Ctrl+C to stop.",
        ]
        typer.echo("\n".join(lines))

    _serve(settings, plan, host=host, port=port, on_listening=banner)


@cli.command()
def serve(
    name: Annotated[str, typer.Argument(help="An HTTP service, e.g. whatsapp-webhook, api-gateway")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default: the service's own port")] = None,
) -> None:
    """Run one HTTP service alone (`api-gateway` serves every HTTP service's routes)."""
    spec = SERVICES.get(name)
    if spec is None or not spec.built:
        _fail(f"unknown or not yet built HTTP service {name!r}; built: api-gateway, {', '.join(HTTP_SERVICES)}", 2)
        return
    settings = _settings()
    gateway = name == "api-gateway"
    # The gateway serves in-process every HTTP service not listed in XYPR_SERVICE_URLS, and proxies the others.
    remote = dict(settings.service_urls) if gateway else {}
    services = tuple(each for each in HTTP_SERVICES if each not in remote) if gateway else (name,)
    if spec.stages and name not in HTTP_SERVICES:
        _fail(f"{name} is a worker: use `xypr worker {name}`", 2)
    try:
        from xypr.services.gateway import upstreams_of

        upstreams_of(remote)
    except ValueError as exc:
        _fail(str(exc), 2)
    plan = AppPlan(http_services=services, public_gateway=gateway, remote_services=remote)
    _serve(settings, plan, host=host, port=port or spec.port or 0)


@cli.command()
def worker(
    name: Annotated[str, typer.Argument(help="A queue worker, e.g. inbound-transformer, whatsapp-api, all")],
    index: Annotated[int, typer.Option(help="This process's number among --of workers (partition share)")] = 0,
    of: Annotated[int, typer.Option(help="How many processes run this worker")] = 1,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of this worker's /health, /ready, /metrics (0: any free)")] = 0,
) -> None:
    """Run queue workers; several processes share the partitions and keep each conversation in order."""
    names = WORKER_SERVICES if name == "all" else (name,)
    for each in names:
        if each not in WORKER_SERVICES:
            _fail(f"unknown worker {each!r}; one of: all, {', '.join(WORKER_SERVICES)}", 2)
    if not 0 <= index < of:
        _fail("--index must be in 0 … --of - 1", 2)
    plan = AppPlan(worker_services=names, worker_index=index, worker_count=of)
    _serve(_settings(), plan, host=host, port=port)


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
            _fail("XYPR_MASTER_KEY is not set (generate one with `xypr keygen`)")
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

    if not asyncio.run(go()):
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


def main() -> None:
    """Entry point of the `xypr` console script."""
    cli(prog_name="xypr")


if __name__ == "__main__":
    main()
