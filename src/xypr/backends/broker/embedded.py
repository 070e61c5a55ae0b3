"""The embedded broker: a durable queue in its own SQLite file, shared safely by several processes.

Every message is a row of `broker_messages`. `broker_heads` holds, per (queue, key) with messages
waiting, the oldest one (the head) and its lease: only a head can be delivered, and only while it
holds no live lease, so a key has at most one delivery in flight across all processes sharing the
file, and its messages leave in publish order. Triggers keep the heads right on every insert and
delete, so publishing and acknowledging are single statements.

- every operation (a publish, a claim, a batch of acks) is one call on the broker's own thread, on its one
  connection: a transaction's statements are never interleaved with another's, and the event loop hands
  over once per operation, not once per statement;
- publish: one committed transaction, synced to disk, before returning (the write-ahead log is synced right
  after the commit, outside the file's write lock: `_durably`); publishes made while one is being written go
  together in the next transaction (and acks in the next statement): one sync for many. Claims, acks,
  renewals and releases are not synced (`synchronous=NORMAL`; a process that dies loses nothing, as the
  file's pages are the system's): one of them lost to a power cut means a message delivered once more,
  which consumers dedupe anyway, while the write lock the other processes wait for is held for microseconds
  instead of a disk sync;
  A publisher cancelled while its batch is written does not take its message out of it (it may be committed
  though the caller saw a cancellation, as a publish whose confirm was lost: consumers dedupe);
- claim: one `BEGIN IMMEDIATE` transaction leases up to `prefetch` heads at once (oldest first),
  preceded by a read-only check so an idle consumer never writes;
- `release()` clears the lease: the message is still its key's head, so it comes back first;
- a consumer renews its leases while deliveries are unsettled; when its process dies the leases
  expire after `lease_seconds` and the messages are delivered again (`delivery_count` + 1);
- a message already delivered `delivery_limit` + 1 times without being settled (its consumers keep
  dying on it) is dead-lettered instead, like RabbitMQ's `x-delivery-limit`; a handler that raises
  instead of settling gets its delivery dead-lettered with the exception as error;
- publishers wake consumers of the same process at once, and ring the doorbell of every other process
  consuming from the file (`_Doorbell`: a datagram to its socket, on Linux): a message published by one
  process is claimed by another in well under a millisecond. Polling stays as the fallback, every
  `poll_interval` seconds while busy, backing off to `idle_poll_interval` while idle (an idle process costs
  next to no CPU; a message whose ring was lost waits at most that long).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import socket
import sqlite3
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from xypr.backends.broker.base import (
    DELIVERY_LIMIT,
    Broker,
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Delivery,
    Handler,
    OutgoingMessage,
)
from xypr.core.coalesce import Coalescer
from xypr.core.logging import get_logger
from xypr.topology import QUEUES

__all__ = ["SqliteQueueBroker"]

_log = get_logger(__name__)

_BUSY_TIMEOUT_SECONDS: Final = 5.0

T = TypeVar("T")

# A row of broker_messages as published: queue, key, body, headers (JSON), published_at.
_Row = tuple[str, str, bytes, str, float]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS broker_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    published_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS broker_messages_by_key ON broker_messages (queue, key, id);

CREATE TABLE IF NOT EXISTS broker_heads (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS broker_heads_in_order ON broker_heads (queue, message_id);

CREATE TRIGGER IF NOT EXISTS broker_messages_new_head AFTER INSERT ON broker_messages
BEGIN
    INSERT OR IGNORE INTO broker_heads (queue, key, message_id) VALUES (NEW.queue, NEW.key, NEW.id);
END;

CREATE TRIGGER IF NOT EXISTS broker_messages_next_head AFTER DELETE ON broker_messages
WHEN EXISTS (
    SELECT 1 FROM broker_heads WHERE queue = OLD.queue AND key = OLD.key AND message_id = OLD.id
)
BEGIN
    DELETE FROM broker_heads
    WHERE queue = OLD.queue AND key = OLD.key
      AND NOT EXISTS (SELECT 1 FROM broker_messages WHERE queue = OLD.queue AND key = OLD.key);
    UPDATE broker_heads
    SET message_id = (SELECT MIN(id) FROM broker_messages WHERE queue = OLD.queue AND key = OLD.key),
        lease_owner = NULL,
        lease_until = 0
    WHERE queue = OLD.queue AND key = OLD.key AND message_id = OLD.id;
END;

-- The doorbells of the processes consuming from this file (abstract socket names, `_Doorbell`).
CREATE TABLE IF NOT EXISTS broker_doorbells (
    name TEXT PRIMARY KEY,
    pid INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS broker_dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    error TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""

# Consumers of this process by (database file, queue), woken at once by a publish.
_LISTENERS: weakref.WeakValueDictionary[tuple[str, str, int], _SqliteConsumer] = weakref.WeakValueDictionary()


def _check(queue: str, headers: Mapping[str, str] | None = None) -> None:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    if headers:
        reserved = [name for name in headers if name.lower().startswith("x-")]
        if reserved:
            raise ValueError(f"header names starting with 'x-' are reserved for the broker: {reserved}")


class SqliteQueueBroker(Broker):
    """Durable queue in a SQLite file; same contract as RabbitMQ, for one machine."""

    def __init__(
        self,
        path: Path,
        *,
        partitions: int = 4,
        poll_interval: float = 0.05,
        idle_poll_interval: float = 0.5,
        lease_seconds: float = 60.0,
        delivery_limit: int = DELIVERY_LIMIT,
    ) -> None:
        # `partitions` is kept for parity with RabbitMQ: ordering here is per key, which is finer.
        self.path = path
        self.partitions = partitions
        self.poll_interval = poll_interval
        self.idle_poll_interval = max(poll_interval, idle_poll_interval)
        self.lease_seconds = lease_seconds
        self.delivery_limit = delivery_limit
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._doorbell = _Doorbell(self)
        self._synced_log = -1  # the inode of the write-ahead log whose folder entry was synced
        self._consumers: set[_SqliteConsumer] = set()
        # Publishes and acks made while one is being written go together in the next transaction: one
        # commit (one fsync) for many, and the write lock, which other processes wait for, taken once.
        self._publishes: Coalescer[tuple[str, list[_Row]], None] = Coalescer(self._publish_together)
        self._acks: Coalescer[tuple[str, int], None] = Coalescer(self._ack_together)

    @functools.cached_property
    def _file(self) -> str:
        """The file's full path, which names it among the consumers of this process (resolved once: every
        publish and ack wakes the consumers, and resolving walks the file system)."""
        return str(self.path.resolve())

    # Connection ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the file (WAL) and create the tables; the folder must exist."""
        if not self.path.parent.is_dir():
            raise BrokerUnavailable(f"queue file {self.path} unavailable (no folder {self.path.parent})")
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xypr-queue")
        try:
            self._db = await asyncio.get_running_loop().run_in_executor(thread, self._open)
        except (sqlite3.Error, OSError) as exc:
            thread.shutdown(wait=False)
            raise BrokerUnavailable(f"queue file {self.path} unavailable ({exc})") from exc
        self._thread = thread
        self._doorbell = _Doorbell(self)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # No sync at a commit: a publish syncs the log itself, after its commit (`_durably`).
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        """Stop every consumer, then close the file."""
        for consumer in list(self._consumers):
            await consumer.stop()
        await self._doorbell.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            # After whatever was submitted before: the thread runs its calls in order.
            with contextlib.suppress(sqlite3.Error):
                await asyncio.get_running_loop().run_in_executor(thread, self._close_file)
            thread.shutdown(wait=False)

    def _close_file(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the broker's thread, after every call submitted before it; a failure of the file
        raises `BrokerUnavailable`."""
        thread = self._thread
        if thread is None:
            raise BrokerUnavailable("queue file is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, self._call, work)
        except (sqlite3.Error, OSError) as exc:
            raise BrokerUnavailable(f"queue file {self.path} unavailable ({exc})") from exc

    def _durably(self, work: Callable[[sqlite3.Connection], T], db: sqlite3.Connection) -> T:
        """`work` in one transaction that is on disk when this returns: a publish.

        What `synchronous=FULL` does — sync the write-ahead log after the commit — done after the commit has
        released the file's write lock instead of under it: a disk sync takes milliseconds, and a process
        publishing continuously held the lock nearly all the time, so another process's claims and acks
        waited in SQLite's busy handler. The transaction is in the log when the sync starts (or, when a
        checkpoint has moved it into the database file meanwhile, that checkpoint synced the file before the
        log could be reused)."""
        result = _in_transaction(work, db)
        self._sync_log()
        return result

    def _sync_log(self) -> None:
        log = f"{self._file}-wal"
        try:
            fd = os.open(log, os.O_RDONLY)
        except FileNotFoundError:  # never while this connection is open; the database file then
            fd = os.open(self._file, os.O_RDONLY)
        try:
            os.fsync(fd)
            identity = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if identity != self._synced_log:
            # A new log file: its name in the folder must be on disk too (SQLite would sync the folder).
            folder = os.open(os.path.dirname(self._file), os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._synced_log = identity

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise sqlite3.ProgrammingError("queue file is closed")
        if db.in_transaction:  # never expected: every call ends its transaction
            db.execute("ROLLBACK")
        return work(db)

    def _wake(self, queue: str) -> None:
        """Something of `queue` may be ready: wake its consumers here and in the other processes."""
        self._wake_here(queue)
        self._doorbell.ring(queue)

    def _wake_here(self, queue: str) -> None:
        loop = asyncio.get_running_loop()
        for (file, listened, _), consumer in list(_LISTENERS.items()):
            if file == self._file and listened == queue and consumer.loop is loop:
                consumer.wake.set()

    # Publishing ------------------------------------------------------------------------------

    async def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish durably; returns after the rows are committed, else raises `BrokerUnavailable`."""
        for message in messages:
            _check(queue, message.headers)
        _check(queue)
        if not messages:
            return
        now = time.time()
        await self._publishes((queue, [(queue, m.key, m.body, json.dumps(dict(m.headers)), now) for m in messages]))

    async def _publish_together(self, publishes: list[tuple[str, list[_Row]]]) -> list[None]:
        """One transaction for the publishes of several callers, their rows in call order (ids ascend with it)."""
        rows = [row for _, rows in publishes for row in rows]
        await self._run(
            functools.partial(
                self._durably,
                lambda db: db.executemany(
                    "INSERT INTO broker_messages (queue, key, body, headers, published_at) VALUES (?, ?, ?, ?, ?)",
                    rows,
                ),
            )
        )
        await self._doorbell.fresh()
        for queue in {queue for queue, _ in publishes}:
            self._wake(queue)
        return [None] * len(publishes)

    # Consuming -------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Consumer:
        """Deliver messages of `queue` to `handler`, at most `prefetch` unsettled at once."""
        _check(queue)
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if self._thread is None:
            raise BrokerUnavailable("queue file is not open")
        await self._doorbell.listen()
        consumer = _SqliteConsumer(self, queue, handler, prefetch)
        self._consumers.add(consumer)
        consumer.start()
        return consumer

    async def _claim(self, queue: str, owner: str, limit: int) -> list[_SqliteDelivery]:
        """Lease up to `limit` heads without a live lease, oldest first."""
        rows, poisoned = await self._run(functools.partial(self._claim_in, queue, owner, limit))
        if poisoned:
            self._wake(queue)  # the next messages of those keys are ready now
        return [
            _SqliteDelivery(
                broker=self,
                owner=owner,
                message_id=message_id,
                queue=queue,
                key=key,
                body=bytes(body),
                headers=json.loads(headers),
                delivery_count=delivered - 1,
            )
            for message_id, key, body, headers, delivered in rows
        ]

    def _claim_in(
        self, queue: str, owner: str, limit: int, db: sqlite3.Connection
    ) -> tuple[list[tuple[int, str, bytes, str, int]], int]:
        """The claim on the thread: the leased messages (oldest first) and how many were dead-lettered instead."""
        # Read-only first: an idle consumer polls without taking the write lock.
        if (
            db.execute(
                "SELECT 1 FROM broker_heads WHERE queue = ? AND lease_until < ? LIMIT 1", (queue, time.time())
            ).fetchone()
            is None
        ):
            return [], 0
        claimed: list[tuple[int, str, bytes, str, int]] = []
        poisoned = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            ids = [
                int(row[0])
                for row in db.execute(
                    "UPDATE broker_heads SET lease_owner = ?, lease_until = ? "
                    "WHERE (queue, key) IN ("
                    "  SELECT queue, key FROM broker_heads WHERE queue = ? AND lease_until < ? "
                    "  ORDER BY message_id LIMIT ?"
                    ") RETURNING message_id",
                    (owner, now + self.lease_seconds, queue, now, limit),
                ).fetchall()
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                rows = db.execute(
                    f"UPDATE broker_messages SET deliveries = deliveries + 1 WHERE id IN ({marks}) "  # noqa: S608
                    "RETURNING id, key, body, headers, deliveries",
                    ids,
                ).fetchall()
                for message_id, key, body, headers, delivered in sorted(rows):
                    # Same rule as RabbitMQ's x-delivery-limit: more than `limit` earlier deliveries.
                    if delivered - 1 > self.delivery_limit:
                        # Claimed again and again but never settled: its consumers keep dying on it.
                        _move_to_dead_letters(db, message_id, "delivery limit exceeded")
                        poisoned += 1
                        continue
                    claimed.append((message_id, key, body, headers, delivered))
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return claimed, poisoned

    async def _ack(self, delivery: _SqliteDelivery) -> None:
        await self._acks((delivery.queue, delivery.message_id))

    async def _ack_together(self, acks: list[tuple[str, int]]) -> list[None]:
        """Settle several deliveries in one statement (deleting a settled message again is a no-op)."""
        ids = [message_id for _, message_id in acks]
        marks = ",".join("?" * len(ids))
        # The trigger moves each head (and its lease) to its key's next message.
        await self._run(lambda db: db.execute(f"DELETE FROM broker_messages WHERE id IN ({marks})", ids).close())  # noqa: S608 (placeholders)
        for queue in {queue for queue, _ in acks}:
            self._wake(queue)
        return [None] * len(acks)

    async def _dead_letter(self, delivery: _SqliteDelivery, error: str) -> None:
        await self._run(
            functools.partial(_in_transaction, lambda db: _move_to_dead_letters(db, delivery.message_id, error))
        )
        self._wake(delivery.queue)

    async def _release(self, delivery: _SqliteDelivery) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE broker_heads SET lease_owner = NULL, lease_until = 0 "
                "WHERE queue = ? AND key = ? AND message_id = ? AND lease_owner = ?",
                (delivery.queue, delivery.key, delivery.message_id, delivery.owner),
            ).close()
        )
        self._wake(delivery.queue)

    async def _renew(self, queue: str, owner: str) -> None:
        until = time.time() + self.lease_seconds
        await self._run(
            lambda db: db.execute(
                "UPDATE broker_heads SET lease_until = ? WHERE queue = ? AND lease_owner = ?", (until, queue, owner)
            ).close()
        )

    async def _release_all(self, queue: str, owner: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE broker_heads SET lease_owner = NULL, lease_until = 0 WHERE queue = ? AND lease_owner = ?",
                (queue, owner),
            ).close()
        )
        self._wake(queue)

    # Dead letters ----------------------------------------------------------------------------

    async def store_dead_letter(
        self, *, queue: str, key: str, body: bytes, headers: Mapping[str, str], error: str
    ) -> None:
        """Store a message that is no longer a delivery (a parked event) as a dead letter, committed."""
        _check(queue, headers)
        row = (uuid.uuid4().hex, queue, key, body, json.dumps(dict(headers)), error, time.time())
        await self._run(
            functools.partial(
                self._durably,
                lambda db: db.execute(
                    "INSERT INTO broker_dead_letters (id, queue, key, body, headers, error, dead_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                ),
            )
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The dead-lettered messages, oldest first."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT id, queue, key, body, headers, error, dead_at FROM broker_dead_letters ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            DeadLetter(
                id=dead_letter_id,
                queue=queue,
                key=key,
                body=bytes(body),
                headers=json.loads(headers),
                error=error,
                dead_at=datetime.fromtimestamp(dead_at, UTC),
            )
            for dead_letter_id, queue, key, body, headers, error, dead_at in rows
        ]

    async def replay(self, dead_letter_id: str) -> bool:
        """Publish a dead letter again to its original queue and remove it; False if unknown."""

        def replay_in(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT queue FROM broker_dead_letters WHERE id = ?", (dead_letter_id,)).fetchone()
            if row is None:
                return None
            # A new row: it queues behind whatever its key has waiting now.
            db.execute(
                "INSERT INTO broker_messages (queue, key, body, headers, published_at) "
                "SELECT queue, key, body, headers, ? FROM broker_dead_letters WHERE id = ?",
                (time.time(), dead_letter_id),
            )
            db.execute("DELETE FROM broker_dead_letters WHERE id = ?", (dead_letter_id,))
            return str(row[0])

        queue = await self._run(functools.partial(self._durably, replay_in))
        if queue is None:
            return False
        self._wake(queue)
        return True

    async def discard(self, dead_letter_id: str) -> bool:
        """Remove a dead letter for good; False if unknown."""
        return await self._run(
            lambda db: db.execute("DELETE FROM broker_dead_letters WHERE id = ?", (dead_letter_id,)).rowcount > 0
        )

    # Health ----------------------------------------------------------------------------------

    async def oldest_age(self, queue: str) -> float | None:
        """Seconds since the oldest message still in `queue` was published (0 when the queue is empty)."""
        _check(queue)
        row = await self._run(
            lambda db: db.execute("SELECT MIN(published_at) FROM broker_messages WHERE queue = ?", (queue,)).fetchone()
        )
        oldest = row[0] if row else None
        return max(0.0, time.time() - float(oldest)) if oldest is not None else 0.0

    async def depth(self, queue: str) -> int:
        """Messages waiting in `queue` (not counting those being processed)."""
        _check(queue)
        now = time.time()
        row = await self._run(
            lambda db: db.execute(
                "SELECT (SELECT COUNT(*) FROM broker_messages WHERE queue = ?)"
                " - (SELECT COUNT(*) FROM broker_heads WHERE queue = ? AND lease_until >= ?)",
                (queue, queue, now),
            ).fetchone()
        )
        return int(row[0])

    async def ping(self) -> bool:
        """True when the file answers a query."""
        try:
            await self._run(lambda db: db.execute("SELECT 1").fetchone())
        except BrokerUnavailable:
            return False
        return True


def _in_transaction(work: Callable[[sqlite3.Connection], T], db: sqlite3.Connection) -> T:
    """`work` in one `BEGIN IMMEDIATE` transaction (the write lock at once), rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (disk full, I/O error): keep the real error
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _move_to_dead_letters(db: sqlite3.Connection, message_id: int, error: str) -> None:
    db.execute(
        "INSERT INTO broker_dead_letters (id, queue, key, body, headers, error, dead_at) "
        "SELECT ?, queue, key, body, headers, ?, ? FROM broker_messages WHERE id = ?",
        (uuid.uuid4().hex, error, time.time(), message_id),
    )
    db.execute("DELETE FROM broker_messages WHERE id = ?", (message_id,))


class _Doorbell:
    """How one process tells the others sharing a queue file that a queue may have something ready.

    A process that consumes binds a datagram socket in Linux's abstract namespace (no file to clean up, gone
    with the process) and lists its name in `broker_doorbells`. A publishing process reads that list at most
    once every `_PEERS_TTL` seconds (dropping the rows of processes no longer alive) and sends the queue's
    name to each of the others, without waiting: a full socket buffer means that process has rings to read
    already, a refused one that it is gone. Elsewhere than on Linux there are no doorbells: consumers poll."""

    _PEERS_TTL: Final = 1.0

    def __init__(self, broker: SqliteQueueBroker) -> None:
        self._broker = broker
        self._socket: socket.socket | None = None
        self._name = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._peers_at = -self._PEERS_TTL
        self._refreshing: asyncio.Task[None] | None = None
        self._sender: socket.socket | None = None
        self._closed = False
        self._binding = False

    def _available(self) -> bool:
        return sys.platform == "linux" and not self._closed

    async def listen(self) -> None:
        """Bind this process's doorbell (once) and list it, so other processes' publishes wake its consumers."""
        if self._socket is not None or self._binding or not self._available():
            return  # bound, or being bound by a concurrent consume()
        self._binding = True
        try:
            await self._bind()
        finally:
            self._binding = False

    async def _bind(self) -> None:
        file = hashlib.sha256(self._broker._file.encode()).hexdigest()[:16]
        name = f"xypr-queue-{file}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            bell.setblocking(False)
            bell.bind("\0" + name)
            await self._broker._run(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO broker_doorbells (name, pid) VALUES (?, ?)", (name, os.getpid())
                ).close()
            )
        except (OSError, BrokerUnavailable) as exc:
            bell.close()
            _log.warning("broker_doorbell_unavailable", error=str(exc))  # consumers poll instead
            return
        except BaseException:
            bell.close()
            raise
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(bell.fileno(), self._answer, bell)
        self._socket, self._name = bell, name

    def _answer(self, bell: socket.socket) -> None:
        """Rings arrived: wake this process's consumers of the queues they name."""
        queues: set[str] = set()
        while True:
            try:
                queues.update(bell.recv(4096).decode("utf-8", "replace").split("\n"))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        for queue in queues.intersection(QUEUES):
            self._broker._wake_here(queue)

    async def fresh(self) -> None:
        """Read the list of doorbells if it is older than `_PEERS_TTL` (a publish does before it rings, so
        that its first ring after a process started consuming already reaches that process)."""
        if self._available() and time.monotonic() - self._peers_at >= self._PEERS_TTL:
            self._start_refresh()
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)

    def _start_refresh(self) -> None:
        if self._refreshing is None:
            self._peers_at = time.monotonic()
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    def ring(self, queue: str) -> None:
        """Tell every other listed process that `queue` may have something ready (never waits, never raises)."""
        if not self._available():
            return
        if time.monotonic() - self._peers_at >= self._PEERS_TTL:
            self._start_refresh()  # for the next rings
        if not self._peers:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        payload = queue.encode()
        for peer in list(self._peers):
            try:
                self._sender.sendto(payload, "\0" + peer)
            except BlockingIOError:
                pass  # its buffer is full of rings it has not read yet: it will look
            except OSError:
                self._peers.remove(peer)  # gone (refused): until the next refresh

    async def _refresh(self) -> None:
        own = self._name

        def read(db: sqlite3.Connection) -> list[str]:
            if own:  # listed again: another PID namespace sharing the folder may have taken it for gone
                db.execute("INSERT OR REPLACE INTO broker_doorbells (name, pid) VALUES (?, ?)", (own, os.getpid()))
            alive: list[str] = []
            for name, pid in db.execute("SELECT name, pid FROM broker_doorbells").fetchall():
                if _alive(int(pid)):
                    alive.append(str(name))
                else:
                    db.execute("DELETE FROM broker_doorbells WHERE name = ?", (name,))
            return alive

        try:
            self._peers = [name for name in await self._broker._run(read) if name != self._name]
        except Exception as exc:  # rings resume at the next refresh; consumers poll meanwhile
            _log.warning("broker_doorbells_unreadable", error=str(exc))
        finally:
            self._refreshing = None

    async def close(self) -> None:
        """Unlist and close the doorbell (consumers of other processes stop ringing it at their next refresh)."""
        self._closed = True
        if self._refreshing is not None:
            with contextlib.suppress(Exception):
                await self._refreshing
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        bell, self._socket = self._socket, None
        if bell is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(bell.fileno())
        bell.close()
        name = self._name
        with contextlib.suppress(BrokerUnavailable):
            await self._broker._run(
                lambda db: db.execute("DELETE FROM broker_doorbells WHERE name = ?", (name,)).close()
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


class _SqliteDelivery(Delivery):
    def __init__(
        self,
        *,
        broker: SqliteQueueBroker,
        owner: str,
        message_id: int,
        queue: str,
        key: str,
        body: bytes,
        headers: dict[str, str],
        delivery_count: int,
    ) -> None:
        self.queue = queue
        self.body = body
        self.key = key
        self.headers = headers
        self.delivery_count = delivery_count
        self.broker = broker
        self.owner = owner
        self.message_id = message_id
        self.settled = False
        # Void once its consumer stopped: the lease is gone, another consumer may own it now.
        self.void = False
        self.on_finish: Callable[[_SqliteDelivery], None] | None = None

    @property
    def owned(self) -> bool:
        """Unsettled and its consumer still running (its lease is renewed)."""
        return not self.settled and not self.void

    def _settle(self) -> bool:
        if self.settled:
            raise RuntimeError("delivery already settled")
        self.settled = True
        return not self.void

    def _finish(self) -> None:
        if self.on_finish is not None:
            self.on_finish(self)

    async def ack(self) -> None:
        """Done: remove the message for good."""
        try:
            if self._settle():
                await self.broker._ack(self)
        except BrokerUnavailable as exc:
            # The lease runs out and the message is delivered again (at-least-once).
            _log.warning("broker_ack_lost", queue=self.queue, key=self.key, error=str(exc))
        finally:
            self._finish()

    async def dead_letter(self, error: str) -> None:
        """Move the message with `error` to the dead letters (one transaction)."""
        if self.settled:
            raise RuntimeError("delivery already settled")
        if not self.void:
            await self.broker._dead_letter(self, error)  # unsettled when this raises
        self.settled = True
        self._finish()

    async def release(self) -> None:
        """Clear the lease: the message is the head of its key again, so it comes back first."""
        try:
            if self._settle():
                await self.broker._release(self)
        except BrokerUnavailable as exc:
            _log.warning("broker_release_lost", queue=self.queue, key=self.key, error=str(exc))
        finally:
            self._finish()


class _SqliteConsumer(Consumer):
    def __init__(self, broker: SqliteQueueBroker, queue: str, handler: Handler, prefetch: int) -> None:
        self.broker = broker
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self.owner = uuid.uuid4().hex
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self._unsettled: dict[int, _SqliteDelivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopped = False
        # Set by stop(): no new claims, but leases of running handlers are still renewed.
        self._draining = False

    def start(self) -> None:
        _LISTENERS[(self.broker._file, self.queue, id(self))] = self
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        renew_every = self.broker.lease_seconds / 3
        # Due only while this consumer holds deliveries: an idle consumer has no lease to renew (a
        # deadline left in the past made the wait below zero, and the loop spun on a whole core).
        next_renewal: float | None = None
        idle_wait = self.broker.poll_interval
        unavailable = False
        while not self._stopped:
            self.wake.clear()
            try:
                free = 0 if self._draining else self._prefetch - len(self._unsettled)
                claimed = await self.broker._claim(self.queue, self.owner, free) if free > 0 else []
                for delivery in claimed:
                    self._dispatch(delivery)
                if not self._unsettled:
                    next_renewal = None
                elif next_renewal is None:
                    next_renewal = time.monotonic() + renew_every  # the leases were taken just now
                elif time.monotonic() >= next_renewal:
                    await self.broker._renew(self.queue, self.owner)
                    next_renewal = time.monotonic() + renew_every
                if unavailable:
                    _log.info("broker_queue_available", queue=self.queue)
                    unavailable = False
            except BrokerUnavailable as exc:
                if not unavailable:
                    _log.warning("broker_queue_unavailable", queue=self.queue, error=str(exc))
                    unavailable = True
                claimed = []
            except Exception:
                _log.exception("broker_consumer_failed", queue=self.queue)
                claimed = []
            if claimed:
                idle_wait = self.broker.poll_interval
                continue
            timeout = idle_wait
            if next_renewal is not None:
                # Never below the poll interval: a renewal that failed must not turn into a busy loop.
                timeout = min(timeout, max(self.broker.poll_interval, next_renewal - time.monotonic()))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)
                idle_wait = self.broker.poll_interval
            except TimeoutError:
                # Nothing happened in this process: poll other processes' publishes less and less often.
                idle_wait = min(idle_wait * 2, self.broker.idle_poll_interval)

    def _dispatch(self, delivery: _SqliteDelivery) -> None:
        delivery.on_finish = self._finished
        self._unsettled[delivery.message_id] = delivery
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, delivery: _SqliteDelivery) -> None:
        if self._unsettled.get(delivery.message_id) is delivery:
            del self._unsettled[delivery.message_id]
        self.wake.set()

    async def _deliver(self, delivery: _SqliteDelivery) -> None:
        try:
            await self._handler(delivery)
        except Exception as exc:
            _log.exception("broker_handler_failed", queue=self.queue, key=delivery.key)
            if not delivery.settled:
                # Raising instead of settling is a bug: park the message rather than loop on it.
                try:
                    await delivery.dead_letter(f"handler raised {type(exc).__name__}: {exc}")
                except BrokerUnavailable:
                    await delivery.release()

    async def stop(self, *, grace: float = 0.0) -> None:
        """Claim nothing more, let running handlers settle for up to `grace` seconds, cancel the rest;
        unsettled deliveries return to the queue."""
        if self._stopped or self._draining:
            return
        self._draining = True
        current = asyncio.current_task()
        running = [task for task in self._tasks if task is not current]
        if running and grace > 0:
            await asyncio.wait(running, timeout=grace)
        self._stopped = True
        self.wake.set()
        _LISTENERS.pop((self.broker._file, self.queue, id(self)), None)
        tasks = [task for task in (self._runner, *self._tasks) if task is not None and task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for delivery in self._unsettled.values():
            delivery.void = True
        self._unsettled.clear()
        with contextlib.suppress(BrokerUnavailable):
            # Otherwise the leases would only expire after lease_seconds.
            await self.broker._release_all(self.queue, self.owner)
        self.broker._consumers.discard(self)
