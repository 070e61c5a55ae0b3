"""Run one `xypr` command with pyinstrument ready, and write where its time went during a window.

`python -m bench.profiling --out PREFIX -- serve api-gateway --port 3009` runs `xypr serve …`;
SIGUSR1 starts sampling its main thread (every millisecond), SIGUSR2 stops it and writes
`PREFIX.txt` (the call tree, in % of the window), `PREFIX.flat.txt` (functions by own time),
`PREFIX.json` (own time grouped by library, for the bench report) and the raw session
`PREFIX.pyisession` (`pyinstrument --load`). So start-up and shutdown stay out of the profile,
which covers exactly the load the bench applies.

The clock is the thread's CPU time, not the wall clock: with uvloop the wait for I/O happens in C,
and a wall-clock sampler charges that wait (and the time the process sat preempted on a busy
machine) to whichever Python code runs first after it. CPU time charges only work actually done.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["AREAS", "area_of", "main", "own_time_by_area", "summarize_collapsed"]

# (area, path fragments); the first match wins, so specific fragments come first.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The event loop's own work (uvloop is C, so its time shows under `Runner.run`).
    ("event loop (uvloop)", ("asyncio/runners.py", "uvloop/__init__.py", "selectors.py")),
    ("database: SQLAlchemy", ("/sqlalchemy/",)),
    ("database: asyncpg", ("/asyncpg/",)),
    ("database: aiosqlite/sqlite3", ("/aiosqlite/", "/sqlite3/")),
    ("broker: aio-pika/aiormq/pamqp", ("/aio_pika/", "/aiormq/", "/pamqp/")),
    ("cache: redis", ("/redis/",)),
    ("HTTP client: httpx/httpcore", ("/httpx/", "/httpcore/", "/h11/", "/anyio/", "/sniffio/")),
    ("validation: pydantic", ("/pydantic/", "/pydantic_core/")),
    ("logging: structlog/logging", ("/structlog/", "/logging/")),
    ("JSON: json/orjson", ("/json/", "orjson")),
    ("metrics: prometheus_client", ("/prometheus_client/",)),
    ("web framework: FastAPI/Starlette", ("/fastapi/", "/starlette/")),
    ("HTTP server: uvicorn/httptools", ("/uvicorn/", "/httptools/")),
    ("crypto: hmac/cryptography", ("/hmac.py", "/cryptography/", "/hashlib.py")),
    ("xypr (our code)", ("/xypr/",)),
    ("asyncio machinery", ("/asyncio/", "/contextvars", "/contextlib.py", "/functools.py")),
)


def area_of(file_path: str | None) -> str:
    """The library area a source file belongs to."""
    path = (file_path or "").replace("\\", "/")
    for area, fragments in AREAS:
        if any(fragment in path for fragment in fragments):
            return area
    return "other"


def _frames(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        frame = stack.pop()
        yield frame
        stack.extend(frame.children)


def _source(frame: Any) -> str | None:
    """The Python file a frame's time belongs to: a C function's time belongs to its caller's file."""
    while frame is not None:
        path = frame.file_path
        if path and not path.startswith("<"):
            return str(path)
        frame = frame.parent
    return None


def _own_times(root: Any) -> Iterator[tuple[Any, float]]:
    # Synthetic "[self]" children are already inside their parent's total_self_time.
    for frame in _frames(root):
        if not frame.is_synthetic:
            own = frame.total_self_time
            if own > 0:
                yield frame, own


def own_time_by_area(root: Any) -> dict[str, float]:
    """Seconds of own (self) time per area over the whole frame tree."""
    totals: dict[str, float] = {}
    for frame, own in _own_times(root):
        area = area_of(_source(frame))
        totals[area] = totals.get(area, 0.0) + own
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def top_functions(root: Any, limit: int = 25) -> list[dict[str, Any]]:
    """The functions with the most own time (summed over every call site)."""
    totals: dict[tuple[str, str, str], float] = {}
    for frame, own in _own_times(root):
        where = frame.file_path_short or frame.file_path or "?"
        key = (frame.function or "?", where, area_of(_source(frame)))
        totals[key] = totals.get(key, 0.0) + own
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return [{"function": f, "file": p, "area": a, "seconds": round(s, 3)} for (f, p, a), s in ranked]


def summarize_collapsed(path: Path, *, rate: float, wall_seconds: float, limit: int = 25) -> dict[str, Any]:
    """The same summary from py-spy's collapsed stacks (`func (file:line);… count`, idle samples left out)."""
    areas: dict[str, float] = {}
    functions: dict[tuple[str, str, str], float] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        seconds = int(count) / rate
        leaf = stack.rsplit(";", 1)[-1]
        function, _, where = leaf.partition(" (")
        file = where.rsplit(":", 1)[0]
        area = area_of(file)
        areas[area] = areas.get(area, 0.0) + seconds
        short = "/".join(file.split("/")[-2:])
        functions[(function, short, area)] = functions.get((function, short, area), 0.0) + seconds
    ranked = sorted(functions.items(), key=lambda item: -item[1])[:limit]
    return {
        "tool": "py-spy",
        "wall_seconds": round(wall_seconds, 3),
        "sampled_cpu_seconds": round(sum(areas.values()), 3),
        "areas": {a: round(s, 3) for a, s in sorted(areas.items(), key=lambda item: -item[1])},
        "top": [{"function": f, "file": p, "area": a, "seconds": round(s, 3)} for (f, p, a), s in ranked],
    }


def write_outputs(profiler: Any, prefix: Path, wall_seconds: float) -> None:
    """The call tree, the flat list and the JSON summary next to `prefix`."""
    session = profiler.last_session
    if session is None:
        return
    session.save(str(prefix.with_suffix(".pyisession")))  # `pyinstrument --load …` renders it again
    prefix.with_suffix(".txt").write_text(profiler.output_text(time="percent_of_total", show_all=False))
    prefix.with_suffix(".flat.txt").write_text(profiler.output_text(flat=True, time="percent_of_total"))
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    areas = own_time_by_area(root) if root is not None else {}
    summary = {
        "tool": "pyinstrument",
        "wall_seconds": round(wall_seconds, 3),
        "sampled_cpu_seconds": round(total, 3),
        "areas": {area: round(seconds, 3) for area, seconds in areas.items()},
        "top": top_functions(root) if root is not None else [],
    }
    prefix.with_suffix(".json").write_text(json.dumps(summary, indent=1))


def main(argv: list[str] | None = None) -> None:
    """Profile `xypr ARGS…` until it exits."""
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    from xypr.cli import main as xypr_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output prefix (without extension)")
    parser.add_argument("--interval", type=float, default=0.001)
    parser.add_argument("xypr_args", nargs=argparse.REMAINDER, help="-- then the xypr command line")
    args = parser.parse_args(argv)
    command = [a for a in args.xypr_args if a != "--"] if args.xypr_args[:1] == ["--"] else args.xypr_args
    sys.argv = ["xypr", *command]
    # Sample the main thread only and ignore awaits: this is about CPU, not about where tasks wait.
    get_stack_sampler().timer_func = time.thread_time
    profiler = Profiler(interval=args.interval, async_mode="disabled")

    started = 0.0

    def start(_signal: int, _frame: Any) -> None:
        nonlocal started
        if not profiler.is_running:
            started = time.time()
            profiler.start()

    def stop(_signal: int, _frame: Any) -> None:
        if profiler.is_running:
            profiler.stop()
            write_outputs(profiler, args.out, time.time() - started)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    code: int | str | None = 0
    try:
        xypr_main()
    except SystemExit as exc:
        code = exc.code
    finally:
        stop(signal.SIGUSR2, None)
    sys.exit(code)


if __name__ == "__main__":
    main()
