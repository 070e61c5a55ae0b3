"""Worker processes for multi-process tests: `xypr worker NAME --index I --of N` as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from xypr.config import Settings

__all__ = ["WorkerProcess", "settings_env", "spawn_workers"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that recreates `settings` in a child process (XYPR_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:  # unset: the child's default
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"XYPR_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """One running worker process, with its output kept in a file for diagnosis."""

    def __init__(self, name: str, index: int, of: int, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.index, self.of = name, index, of
        self.log_path = log_dir / f"{name}-{index}-of-{of}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xypr.cli", "worker", name, "--index", str(index), "--of", str(of)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """Kill -9: the worker dies without settling its deliveries (a crash)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Ask the worker to stop (SIGTERM), then force it after ten seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        """What the worker printed so far (last 5 000 characters)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]


@contextmanager
def spawn_workers(settings: Settings, names: Sequence[str], *, count: int = 2) -> Iterator[list[WorkerProcess]]:
    """Start `count` processes of each named worker sharing the partitions; stop them all at the end."""
    env = settings_env(settings)
    with tempfile.TemporaryDirectory(prefix="xypr-workers-") as log_dir:
        workers = [WorkerProcess(name, index, count, env, Path(log_dir)) for name in names for index in range(count)]
        try:
            time.sleep(0.2)
            for worker in workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"{worker.name} #{worker.index} exited at start:\n{worker.output()}")
            yield workers
        finally:
            for worker in workers:
                worker.stop()
