"""Structured logging (structlog): JSON lines bound to tenant/conversation/message ids, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "redact"]

_SECRET_KEYS = re.compile(
    r"(secret|token|password|authorization|app_secret|access_token|master_key|signature|cookie)", re.I
)


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret; a log line must never carry one."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
    return event_dict


# One line is one write under this lock, from structlog and from the standard library's loggers alike: a
# driver logging from its own thread (aiosqlite) must not cut into a line of the event loop's.
_WRITE = threading.Lock()


def _write_line(line: str) -> None:
    stream = sys.stderr  # the *current* one: test runners and daemons swap it
    with _WRITE:
        stream.write(line + "\n")
        stream.flush()


class _StderrSink:
    """structlog's logger: each rendered line, whole, to standard error."""

    def msg(self, message: str) -> None:
        _write_line(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


class _StderrHandler(logging.Handler):
    """The standard library's records, rendered by the same processors, whole lines to standard error."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write_line(self.format(record))
        except Exception:
            self.handleError(record)


_SINK = _StderrSink()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route stdlib and structlog output through one JSON (or console) renderer, a whole line per write."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _SINK,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "aiormq", "aio_pika", "aiosqlite", "botocore", "aiobotocore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for one module."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]
