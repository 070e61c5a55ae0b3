"""`xypr up`: the service table of ARCHITECTURE §2 as processes on one machine, kept alive by supervisord.

Every service the registry knows with a port runs as `xypr serve NAME` on that port (shifted by
`port_base - 3000`), the gateway proxies to them (`XYPR_SERVICE_URLS`), and N `xypr worker all`
processes share the partitions. supervisord (not honcho) runs them: honcho, like foreman, stops every
process as soon as one exits, while supervisord restarts a process that dies (`autorestart`) and
stops them all, process group included, on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from xypr.services.registry import SERVICES, ServiceSpec

__all__ = [
    "GUIDE_PORT_BASE",
    "Program",
    "http_services",
    "plan_programs",
    "s3_port",
    "service_port",
    "supervisord_config",
    "worker_port",
]

# The ports of the service table; `xypr up --port-base B` moves the whole table to B.
GUIDE_PORT_BASE = 3000
_S3_OFFSET = 40  # the local S3 server (moto) of `xypr up --local`
_WORKER_OFFSET = 50  # workers' /health, /ready, /metrics: base + 50 + index


@dataclass(frozen=True, slots=True)
class Program:
    """One supervised process: its command, the port it answers on, extra environment."""

    name: str
    argv: tuple[str, ...]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    # supervisord starts lower priorities first and stops them last (the S3 server before the rest).
    priority: int = 100
    # Where the output goes: supervisord's own (mixed with the others') or a file of its own in the run folder.
    own_log: bool = False
    health_path: str = "/health"


def http_services() -> list[ServiceSpec]:
    """Every built service with a port of its own, the gateway excepted, in the registry's order."""
    return [spec for spec in SERVICES.values() if spec.built and spec.port is not None and spec.name != "api-gateway"]


def service_port(spec: ServiceSpec, port_base: int) -> int:
    """Where `spec` listens when the table starts at `port_base`."""
    assert spec.port is not None
    return port_base + spec.port - GUIDE_PORT_BASE


def worker_port(index: int, port_base: int) -> int:
    """The health port of worker process `index`."""
    return port_base + _WORKER_OFFSET + index


def s3_port(port_base: int) -> int:
    """The port of the local S3 server."""
    return port_base + _S3_OFFSET


def plan_programs(
    *, xypr: tuple[str, ...], port_base: int, workers: int, host: str, s3_server: tuple[str, ...] | None = None
) -> list[Program]:
    """The processes of the layout; `xypr` is the command that runs the CLI, `s3_server` a local S3 server's."""
    loopback = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    programs: list[Program] = []
    if s3_server is not None:
        # moto logs every request (each /ready probes the bucket): to its own file, not among the services' logs.
        programs.append(Program("s3", s3_server, s3_port(port_base), priority=10, own_log=True, health_path="/"))
    routed: dict[str, str] = {}
    for spec in http_services():
        port = service_port(spec, port_base)
        programs.append(Program(spec.name, (*xypr, "serve", spec.name, "--host", host, "--port", str(port)), port))
        if spec.paths:
            routed[spec.name] = f"http://{loopback}:{port}"
    gateway_port = service_port(SERVICES["api-gateway"], port_base)
    programs.append(
        Program(
            "api-gateway",
            (*xypr, "serve", "api-gateway", "--host", host, "--port", str(gateway_port)),
            gateway_port,
            env={"XYPR_SERVICE_URLS": json.dumps(routed, separators=(",", ":"))},
            priority=200,
        )
    )
    for index in range(workers):
        port = worker_port(index, port_base)
        argv = (*xypr, "worker", "all", "--index", str(index), "--of", str(workers), "--host", host)
        programs.append(Program(f"worker-{index}", (*argv, "--port", str(port)), port))
    return programs


def _quoted_env(env: dict[str, str]) -> str:
    # supervisord splits `environment=` with a non-POSIX shlex and strips the quotes around each value:
    # single quotes keep a JSON value (double quotes, commas, colons) whole.
    for key, value in env.items():
        if "'" in value or "%" in value:
            raise ValueError(f"{key}: a value for supervisord may hold neither ' nor %")
    return ",".join(f"{key}='{value}'" for key, value in env.items())


def supervisord_config(programs: list[Program], *, run_dir: Path) -> str:
    """A supervisord configuration running `programs` in the foreground, their output on its own."""
    run_dir = run_dir.resolve()
    lines = [
        "; Written by `xypr up`; it is rewritten at every start. Secrets come from the environment, not this file.",
        "[supervisord]",
        "nodaemon=true",
        f"logfile={run_dir / 'supervisord.log'}",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"childlogdir={run_dir}",
        "loglevel=info",
        "",
        "[unix_http_server]",
        f"file={run_dir / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run_dir / 'supervisor.sock'}",
    ]
    for program in programs:
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={shlex.join(program.argv)}",
            f"priority={program.priority}",
            "autostart=true",
            # Restart whatever exits, also right after start (a backend still booting).
            "autorestart=true",
            "startsecs=2",
            "startretries=20",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
        ]
        if program.own_log:
            lines += [f"stdout_logfile={run_dir / (program.name + '.log')}", "stdout_logfile_maxbytes=10MB"]
        else:
            lines += ["stdout_logfile=/dev/stdout", "stdout_logfile_maxbytes=0"]
        if program.env:
            lines.append(f"environment={_quoted_env(program.env)}")
    return "\n".join(lines) + "\n"
