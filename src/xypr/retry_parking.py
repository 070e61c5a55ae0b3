"""Retry parking: a conversation held by an upstream outage leaves the broker's queue for the state database.

A stage retries a transiently failing event in place for `XYPR_PARK_AFTER_SECONDS`; then it *parks* it
(a row of `retry_parked_events`, written and committed before the delivery is acknowledged) and frees its
slot, its prefetch and its partition for the other conversations. Every later delivery of a parked key
*joins* the parking store behind it (and is acknowledged) instead of being handled, so the conversation
keeps its order; the stage's drainer (`xypr.stage`) retries a parked key's head when it is due and,
once it succeeds, goes on with the key's next event, until none is left.

`retry_parked_keys` holds one row per parked key: when its head is due, the drainer's lease, and the lock
every change to the key's events takes first (PostgreSQL: a row lock, the `UPDATE … RETURNING` of each
transaction below; SQLite: the database's single writer). So a delivery joining the key and the drainer
removing its last event are serialised: either the event joins before the removal, and the drainer
finds it, or the key row is gone, and the delivery is handled in place like any other.

A delivery parked twice (the process died between parking and acknowledging) is recognised by its
identity (sha256 of key and body, unique per queue) and stored once.

(Not to be confused with `xypr.tenants.parking`, which holds the webhook events of a suspended tenant.)
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from xypr.backends.db import Database
from xypr.core.coalesce import Coalescer

__all__ = ["ParkedEvent", "ParkingStore", "identity_of"]


def identity_of(key: str, body: bytes) -> str:
    """What recognises one delivery parked twice: the digest of its key and body."""
    return hashlib.sha256(key.encode() + b"\0" + body).hexdigest()


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """The oldest parked event of a key, as the drainer retries it."""

    seq: int
    queue: str
    key: str
    body: bytes
    headers: Mapping[str, str]
    first_try_at: float
    attempts: int


def _headers(value: Any) -> dict[str, str]:
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}


class ParkingStore:
    """Parked events and parked keys in the state database (tables `retry_parked_events`, `retry_parked_keys`)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lookups: dict[str, Coalescer[str, bool]] = {}

    async def is_parked(self, queue: str, key: str) -> bool:
        """True when `key` has parked events. It runs for every event, so the lookups a process makes while
        one is in flight go together in the next (`xypr.core.coalesce`): one statement for many keys."""
        lookup = self._lookups.get(queue)
        if lookup is None:
            lookup = self._lookups[queue] = Coalescer(functools.partial(self._parked_among, queue))
        return await lookup(key)

    async def _parked_among(self, queue: str, keys: list[str]) -> list[bool]:
        """For each of `keys`, whether it has parked events in `queue`, read in one statement."""
        distinct = list(dict.fromkeys(keys))
        async with self.database.sql() as sql:
            if self.database.is_sqlite:
                listed = ", ".join(f"${number}" for number in range(2, len(distinct) + 2))
                query = f"SELECT key FROM retry_parked_keys WHERE queue = $1 AND key IN ({listed})"  # noqa: S608
                rows = await sql.fetch(query, queue, *distinct)
            else:
                rows = await sql.fetch(
                    "SELECT key FROM retry_parked_keys WHERE queue = $1 AND key = ANY($2::text[])",
                    queue,
                    tuple(distinct),
                )
        parked = {str(row[0]) for row in rows}
        return [key in parked for key in keys]

    async def join(self, queue: str, key: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """Store the delivery behind the parked events of `key`; False (nothing written) when `key` has none."""
        if not await self.is_parked(queue, key):
            return False
        now = time.time()
        async with self.database.sql(transaction=True) as sql:
            # The key's lock: waits for a drainer removing the key's last event, then finds no row.
            locked = await sql.fetchrow(
                "UPDATE retry_parked_keys SET lease_until = lease_until WHERE queue = $1 AND key = $2 RETURNING 1",
                queue,
                key,
            )
            if locked is None:
                return False
            # Never tried: due with the head, its horizon counted from when its own first try happens.
            await self._insert(sql, queue, key, body, headers, first_try_at=0.0, attempts=0, due=now, error=None)
        return True

    async def park(
        self,
        queue: str,
        key: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        first_try_at: float,
        attempts: int,
        next_attempt_at: float,
        error: str,
    ) -> None:
        """Store a delivery that has been failing since `first_try_at` as the (new) tail of `key`'s events."""
        async with self.database.sql(transaction=True) as sql:
            # Creates the key's lock row, or locks the existing one (its schedule unchanged).
            await sql.execute(
                "INSERT INTO retry_parked_keys (queue, key, next_attempt_at, lease_until) VALUES ($1, $2, $3, 0) "
                "ON CONFLICT (queue, key) DO UPDATE SET next_attempt_at = retry_parked_keys.next_attempt_at",
                queue,
                key,
                next_attempt_at,
            )
            await self._insert(
                sql,
                queue,
                key,
                body,
                headers,
                first_try_at=first_try_at,
                attempts=attempts,
                due=next_attempt_at,
                error=error,
            )

    async def _insert(
        self,
        sql: Any,
        queue: str,
        key: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        first_try_at: float,
        attempts: int,
        due: float,
        error: str | None,
    ) -> None:
        await sql.execute(
            "INSERT INTO retry_parked_events (queue, key, identity, body, headers, first_try_at, attempts, "
            "next_attempt_at, last_error, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (queue, identity) DO NOTHING",
            queue,
            key,
            identity_of(key, body),
            body,
            orjson.dumps(dict(headers)).decode(),
            first_try_at,
            attempts,
            due,
            error[:2000] if error is not None else None,
            time.time(),
        )

    async def next_due(self, queue: str) -> float | None:
        """When a parked key of `queue` can next be claimed (due, its lease gone), None when none is parked.

        Read-only, so an idle drainer's polls write nothing."""
        now = time.time()
        async with self.database.sql() as sql:
            row = await sql.fetchrow(
                "SELECT MIN(CASE WHEN lease_until < $2 THEN next_attempt_at ELSE lease_until END) "
                "FROM retry_parked_keys WHERE queue = $1",
                queue,
                now,
            )
        return None if row is None or row[0] is None else float(row[0])

    async def claim(self, queue: str, owner: str, *, limit: int, lease_seconds: float) -> list[str]:
        """Lease up to `limit` due keys of `queue` for `owner`, the longest waiting first."""
        now = time.time()
        async with self.database.sql(transaction=True) as sql:
            rows = await sql.fetch(
                "UPDATE retry_parked_keys SET lease_owner = $1, lease_until = $2 "
                "WHERE queue = $3 AND lease_until < $4 AND key IN ("
                "  SELECT key FROM retry_parked_keys WHERE queue = $3 AND next_attempt_at <= $4 AND lease_until < $4"
                "  ORDER BY next_attempt_at LIMIT $5"
                ") RETURNING key",
                owner,
                now + lease_seconds,
                queue,
                now,
                limit,
            )
        return [str(row[0]) for row in rows]

    async def head(self, queue: str, key: str) -> ParkedEvent | None:
        """The oldest parked event of `key`, or None when it has none left."""
        async with self.database.sql() as sql:
            row = await sql.fetchrow(
                "SELECT seq, body, headers, first_try_at, attempts FROM retry_parked_events "
                "WHERE queue = $1 AND key = $2 ORDER BY seq LIMIT 1",
                queue,
                key,
            )
        if row is None:
            return None
        seq, body, headers, first_try_at, attempts = row
        return ParkedEvent(
            seq=int(seq),
            queue=queue,
            key=key,
            body=bytes(body),
            headers=_headers(headers),
            first_try_at=float(first_try_at),
            attempts=int(attempts),
        )

    async def remove(self, event: ParkedEvent, owner: str, *, lease_seconds: float) -> bool:
        """The head is settled: delete it; True when the key has more events (its lease renewed), else the
        key is no longer parked."""
        now = time.time()
        async with self.database.sql(transaction=True) as sql:
            await sql.fetchrow(
                "UPDATE retry_parked_keys SET lease_until = lease_until WHERE queue = $1 AND key = $2 RETURNING 1",
                event.queue,
                event.key,
            )
            await sql.execute("DELETE FROM retry_parked_events WHERE seq = $1", event.seq)
            more = await sql.fetchrow(
                "SELECT 1 FROM retry_parked_events WHERE queue = $1 AND key = $2 LIMIT 1", event.queue, event.key
            )
            if more is None:
                await sql.execute("DELETE FROM retry_parked_keys WHERE queue = $1 AND key = $2", event.queue, event.key)
                return False
            await sql.execute(
                "UPDATE retry_parked_keys SET next_attempt_at = $3, lease_until = $4 "
                "WHERE queue = $1 AND key = $2 AND lease_owner = $5",
                event.queue,
                event.key,
                now,
                now + lease_seconds,
                owner,
            )
        return True

    async def renew(self, queue: str, key: str, owner: str, *, lease_seconds: float) -> bool:
        """Extend `owner`'s lease on `key` while it is still being tried; False when the lease is no longer its."""
        async with self.database.sql() as sql:
            row = await sql.fetchrow(
                "UPDATE retry_parked_keys SET lease_until = $4 WHERE queue = $1 AND key = $2 AND lease_owner = $3 "
                "RETURNING 1",
                queue,
                key,
                owner,
                time.time() + lease_seconds,
            )
        return row is not None

    async def retry_later(
        self, event: ParkedEvent, owner: str, *, first_try_at: float, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        """The head failed again: record the try, schedule the next one and give the key's lease back."""
        async with self.database.sql(transaction=True) as sql:
            await sql.execute(
                "UPDATE retry_parked_events SET first_try_at = $2, attempts = $3, next_attempt_at = $4, "
                "last_error = $5 WHERE seq = $1",
                event.seq,
                first_try_at,
                attempts,
                next_attempt_at,
                error[:2000],
            )
            await sql.execute(
                "UPDATE retry_parked_keys SET next_attempt_at = $3, lease_owner = NULL, lease_until = 0 "
                "WHERE queue = $1 AND key = $2 AND lease_owner = $4",
                event.queue,
                event.key,
                next_attempt_at,
                owner,
            )

    async def release(self, queue: str, owner: str) -> None:
        """Give back every lease `owner` holds in `queue` (stopping): another drainer may take the keys at once."""
        async with self.database.sql() as sql:
            await sql.execute(
                "UPDATE retry_parked_keys SET lease_owner = NULL, lease_until = 0 "
                "WHERE queue = $1 AND lease_owner = $2",
                queue,
                owner,
            )

    async def counts(self) -> dict[str, int]:
        """Parked events per queue (for metrics and the ops overview)."""
        async with self.database.sql() as sql:
            rows = await sql.fetch("SELECT queue, COUNT(*) FROM retry_parked_events GROUP BY queue")
        return {str(queue): int(count) for queue, count in rows}
