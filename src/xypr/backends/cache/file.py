"""The embedded cache shared by the processes of one machine: a SQLite file beside the database.

`xypr run` uses it when it starts worker processes next to the one answering HTTP (the in-process
cache would give each process its own dedupe marks, rate windows and tokens). Same contract as Redis:

- values with an optional expiry (wall-clock seconds, the one clock every process shares);
- `set_nx`, `incr` and `hit` are atomic across processes: each is one statement or one `BEGIN IMMEDIATE`
  transaction, made in one call without awaiting in between;
- pub/sub is a table of messages that subscribers poll every `poll_interval` seconds (starting after the
  newest message when they subscribe); messages older than a minute are dropped.

Statements run on the event loop, not in a thread: each takes microseconds (WAL, `synchronous=NORMAL`,
no fsync per commit), less than a hand-off to a thread and back. A writer of another process holds the
lock only for its own statement; the busy timeout makes this one wait for it rather than fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Final

from xypr.backends.cache.base import Cache, RateDecision
from xypr.core.logging import get_logger

__all__ = ["FileCache"]

log = get_logger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cache_values (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_values_expiring ON cache_values (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS cache_hits (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_hits_by_key ON cache_hits (key, at);
CREATE INDEX IF NOT EXISTS cache_hits_expiring ON cache_hits (until);

CREATE TABLE IF NOT EXISTS cache_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    message BLOB NOT NULL,
    at REAL NOT NULL
);
"""

_BUSY_TIMEOUT_MS: Final = 5000
# Expired values and hits are deleted every this many writes of this process (and at least this often).
_PURGE_EVERY_WRITES: Final = 2000
_PURGE_EVERY_SECONDS: Final = 30.0
# Rows deleted per table and purge: the write lock, which the other processes wait for, is held briefly.
_PURGE_BATCH: Final = 5000
# Published messages are kept this long: long enough for every subscriber's next poll.
_MESSAGES_KEPT_SECONDS: Final = 60.0


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive")


class FileCache(Cache):
    """`Cache` in a SQLite file, shared by every process that opens the same file (one machine)."""

    def __init__(
        self,
        path: Path,
        *,
        namespace: str = "xypr",
        poll_interval: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Tokens and login states live here: readable by this user only (SQLite gives its -wal and -shm files
        # the database file's mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._path = path
        self._prefix = f"{namespace}:"
        self._poll_interval = poll_interval
        self._clock = clock
        # Autocommit mode: every statement outside an explicit BEGIN commits by itself.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writes = 0
        self._purged_at = clock()
        self._closed = asyncio.Event()

    def _key(self, key: str) -> str:
        return self._prefix + key

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (`BEGIN IMMEDIATE`): what it reads nobody changes before it commits."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _wrote(self, now: float) -> None:
        """Count a write of this process; now and then delete what expired, a bounded batch at a time."""
        self._writes += 1
        if self._writes < _PURGE_EVERY_WRITES and now - self._purged_at < _PURGE_EVERY_SECONDS:
            return
        self._writes, self._purged_at = 0, now
        try:  # the caller's write is committed: a purge that cannot run now must not fail it
            with self._transaction() as db:
                db.execute(
                    "DELETE FROM cache_values WHERE key IN "
                    "(SELECT key FROM cache_values WHERE expires_at <= ? LIMIT ?)",
                    (now, _PURGE_BATCH),
                )
                db.execute(
                    "DELETE FROM cache_hits WHERE id IN (SELECT id FROM cache_hits WHERE until <= ? LIMIT ?)",
                    (now, _PURGE_BATCH),
                )
                db.execute("DELETE FROM cache_messages WHERE at <= ?", (now - _MESSAGES_KEPT_SECONDS,))
        except sqlite3.Error as exc:
            log.warning("cache.purge_failed", error=str(exc))

    @staticmethod
    def _live(db: sqlite3.Connection, key: str, now: float) -> bytes | None:
        row = db.execute(
            "SELECT value FROM cache_values WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", (key, now)
        ).fetchone()
        return None if row is None else bytes(row[0])

    async def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""
        return self._live(self._db, self._key(key), self._clock())

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store `value`, expiring after `ttl` seconds when given."""
        _check_ttl(ttl)
        now = self._clock()
        self._db.execute(
            "INSERT OR REPLACE INTO cache_values (key, value, expires_at) VALUES (?, ?, ?)",
            (self._key(key), bytes(value), None if ttl is None else now + ttl),
        )
        self._wrote(now)

    async def set_nx(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only if absent (or expired); True when this call stored it."""
        _check_ttl(ttl)
        now = self._clock()
        # One statement: an expired value is replaced, a live one left alone (rowcount 0).
        cursor = self._db.execute(
            "INSERT INTO cache_values (key, value, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at "
            "WHERE cache_values.expires_at IS NOT NULL AND cache_values.expires_at <= ?",
            (self._key(key), bytes(value), None if ttl is None else now + ttl, now),
        )
        self._wrote(now)
        return cursor.rowcount == 1

    async def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored); a rate window of the same name is reset too."""
        if not keys:
            return
        names = [self._key(key) for key in keys]
        marks = ", ".join("?" * len(names))
        with self._transaction() as db:
            db.execute(f"DELETE FROM cache_values WHERE key IN ({marks})", names)  # noqa: S608 (placeholders)
            db.execute(f"DELETE FROM cache_hits WHERE key IN ({marks})", names)  # noqa: S608 (placeholders)
        self._wrote(self._clock())

    @classmethod
    def _add(cls, db: sqlite3.Connection, key: str, amount: int, ttl: float | None, now: float) -> int:
        current = cls._live(db, key, now)
        if current is None:
            db.execute(
                "INSERT OR REPLACE INTO cache_values (key, value, expires_at) VALUES (?, ?, ?)",
                (key, str(amount).encode(), None if ttl is None else now + ttl),
            )
            return amount
        try:
            total = int(current) + amount
        except ValueError as exc:
            raise ValueError(f"cache key {key!r} does not hold an integer") from exc
        # The expiry of an existing counter is kept, as INCRBY does.
        db.execute("UPDATE cache_values SET value = ? WHERE key = ?", (str(total).encode(), key))
        return total

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add to an integer counter and return the new value; `ttl` is set when the key is created."""
        _check_ttl(ttl)
        now = self._clock()
        with self._transaction() as db:
            total = self._add(db, self._key(key), amount, ttl, now)
        self._wrote(now)
        return total

    async def incr_many(self, amounts: Mapping[str, int], *, ttl: float) -> list[int]:
        """`incr` of several counters in one transaction (an amount of 0 reads one); the new values, in order."""
        _check_ttl(ttl)
        now = self._clock()
        with self._transaction() as db:
            totals = [self._add(db, self._key(key), amount, ttl, now) for key, amount in amounts.items()]
        self._wrote(now)
        return totals

    async def hit(self, key: str, *, limit: int, window: float) -> RateDecision:
        """Count one event in a sliding window of `window` seconds allowing `limit` events."""
        if window <= 0:
            raise ValueError("window must be positive")
        name, now = self._key(key), self._clock()
        with self._transaction() as db:
            # Same boundary as the Redis script: a hit exactly `window` old has left the window.
            db.execute("DELETE FROM cache_hits WHERE key = ? AND at <= ?", (name, now - window))
            count, oldest = db.execute("SELECT count(*), min(at) FROM cache_hits WHERE key = ?", (name,)).fetchone()
            if count < limit:
                db.execute("INSERT INTO cache_hits (key, at, until) VALUES (?, ?, ?)", (name, now, now + window))
        self._wrote(now)
        if count < limit:
            return RateDecision(allowed=True, remaining=limit - count - 1, retry_after=0.0)
        retry_after = oldest + window - now if oldest is not None else window
        return RateDecision(allowed=False, remaining=0, retry_after=max(0.0, retry_after))

    async def publish(self, channel: str, message: bytes) -> None:
        """Broadcast `message` to every subscriber of `channel` in every process sharing the file."""
        now = self._clock()
        self._db.execute(
            "INSERT INTO cache_messages (channel, message, at) VALUES (?, ?, ?)",
            (self._key(channel), bytes(message), now),
        )
        self._wrote(now)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published to `channel` once iteration has started, until closed (or `close()`)."""
        name = self._key(channel)
        (last,) = self._db.execute("SELECT coalesce(max(id), 0) FROM cache_messages").fetchone()
        while not self._closed.is_set():
            rows = self._db.execute(
                "SELECT id, message FROM cache_messages WHERE id > ? AND channel = ? ORDER BY id", (last, name)
            ).fetchall()
            for row_id, message in rows:
                last = row_id
                yield bytes(message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._poll_interval)

    async def ping(self) -> bool:
        """True when the file answers a query."""
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    async def close(self) -> None:
        """End every subscription and close the file (its keys stay for the other processes)."""
        self._closed.set()
        await asyncio.sleep(0)  # subscribers waiting on the event see it before the connection goes
        self._db.close()
