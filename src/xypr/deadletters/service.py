"""Dead letters for operators: list with filters, inspect, replay (one or a filter's), discard with a reason.

Every dead letter belongs to the tenant named in its ordering key (`tenant:customer`). Tenant people see
and act on their own tenant's only; another tenant's dead letter answers 404. Replay and discard are
audited. Replaying a filter's letters goes conversation by conversation in arrival order (the time the
webhook accepted the event), so a conversation's messages reach the queue in the order they came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from xypr.audit.service import record_audit
from xypr.auth.principal import Principal, Role
from xypr.backends.broker.base import DeadLetter
from xypr.core.errors import BadRequest, Forbidden, NotFound
from xypr.runtime import Runtime
from xypr.stage import attempts_of
from xypr.topology import QUEUES

__all__ = [
    "DeadLetterFilter",
    "DeadLetterView",
    "discard_dead_letter",
    "find_dead_letters",
    "get_dead_letter",
    "message_refs",
    "redact",
    "replay_dead_letter",
    "replay_dead_letters",
]

# How many dead letters one listing reads from the broker (RabbitMQ reads them one by one).
SCAN_LIMIT = 1000
REDACTED = "[redacted]"
_SECRET_WORDS = ("secret", "token", "password", "authorization", "signature", "api_key", "apikey", "cookie")


def redact(value: Any) -> Any:
    """`value` with every field whose name suggests a credential replaced by `[redacted]`."""
    if isinstance(value, dict):
        return {
            key: REDACTED if any(word in str(key).lower() for word in _SECRET_WORDS) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: of a tenant, a queue, whose error contains a text, older than some seconds."""

    tenant_id: str | None = None
    queue: str | None = None
    error: str | None = None
    older_than_seconds: float | None = None

    def matches(self, letter: DeadLetterView) -> bool:
        """True when `letter` passes every given criterion."""
        if self.tenant_id and letter.tenant_id != self.tenant_id:
            return False
        if self.queue and letter.queue != self.queue:
            return False
        if self.error and self.error.casefold() not in letter.error.casefold():
            return False
        return self.older_than_seconds is None or letter.age_seconds >= self.older_than_seconds


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """A dead letter as shown to people: its tenant, error, attempts and age; the payload redacted."""

    id: str
    queue: str
    tenant_id: str | None
    conversation: str
    error: str
    attempts: int
    dead_at: float
    accepted_at: float | None
    age_seconds: float
    payload: Any
    headers: dict[str, str]

    @classmethod
    def of(cls, letter: DeadLetter, *, now: float) -> DeadLetterView:
        """Read the tenant from the ordering key and the event's time from its body."""
        tenant_id, _, customer = letter.key.partition(":")
        try:
            body: Any = orjson.loads(letter.body)
        except orjson.JSONDecodeError:
            body = {"undecodable_body": letter.body[:200].decode("utf-8", "replace")}
        accepted = body.get("accepted_at") if isinstance(body, dict) else None
        dead_at = letter.dead_at.timestamp()
        return cls(
            id=letter.id, queue=letter.queue, tenant_id=tenant_id or None, conversation=customer,
            error=letter.error, attempts=attempts_of(letter.error), dead_at=dead_at,
            accepted_at=float(accepted) if isinstance(accepted, int | float) else None,
            age_seconds=max(0.0, now - dead_at), payload=redact(body), headers=redact(dict(letter.headers)),
        )  # fmt: skip


def message_refs(payload: Any) -> list[str]:
    """The ids of the message an event carries (ours, the wamid, Genesys' id), so the message's timeline can
    find what was done to its dead letter after the letter itself is gone."""
    refs: list[str] = []
    if isinstance(payload, dict):
        body = payload.get("body")
        channel = body.get("channel") if isinstance(body, dict) else None
        candidates = [
            payload.get("message_id"), payload.get("wamid"), body.get("id") if isinstance(body, dict) else None,
            channel.get("messageId") if isinstance(channel, dict) else None,
        ]  # fmt: skip
        refs = [each for each in candidates if isinstance(each, str) and each]
    return list(dict.fromkeys(refs))


def _audit_facts(letter: DeadLetterView) -> dict[str, Any]:
    """What the audit log keeps of a letter: where it was, why, when, and which message it carried."""
    return {"queue": letter.queue, "error": letter.error[:300],
            "dead_at": datetime.fromtimestamp(letter.dead_at, UTC).isoformat(),
            "attempts": letter.attempts, "messages": message_refs(letter.payload)}  # fmt: skip


def _scoped(principal: Principal, wanted: DeadLetterFilter) -> DeadLetterFilter:
    """Tenant people only ever see their own tenant's letters, whatever they asked for."""
    if wanted.queue is not None and wanted.queue not in QUEUES:
        raise BadRequest(f"queue: one of {', '.join(QUEUES)}", field="queue")
    if principal.is_platform_admin:
        return wanted
    if principal.role not in (Role.TENANT_ADMIN, Role.SUPERVISOR):
        raise Forbidden("dead letters are for administrators and supervisors")
    return DeadLetterFilter(principal.tenant_id or "-", wanted.queue, wanted.error, wanted.older_than_seconds)


async def find_dead_letters(
    runtime: Runtime, principal: Principal, wanted: DeadLetterFilter, *, limit: int = 100
) -> tuple[list[DeadLetterView], int]:
    """The letters passing the filter (oldest first, at most `limit`) and how many pass it in all."""
    wanted = _scoped(principal, wanted)
    now = time.time()
    letters = [DeadLetterView.of(letter, now=now) for letter in await runtime.broker.dead_letters(limit=SCAN_LIMIT)]
    matching = [letter for letter in letters if wanted.matches(letter)]
    return matching[:limit], len(matching)


async def get_dead_letter(runtime: Runtime, principal: Principal, dead_letter_id: str) -> DeadLetterView:
    """One letter the caller may see; 404 otherwise (another tenant's looks like an unknown one)."""
    letters, _ = await find_dead_letters(runtime, principal, DeadLetterFilter(), limit=SCAN_LIMIT)
    for letter in letters:
        if letter.id == dead_letter_id:
            return letter
    raise NotFound(f"no dead letter {dead_letter_id}")


def _may_replay(principal: Principal) -> None:
    if principal.role not in (Role.XYPR_ADMIN, Role.TENANT_ADMIN):
        raise Forbidden("replaying or discarding dead letters needs the tenant_admin or xypr_admin role")


async def replay_dead_letter(runtime: Runtime, principal: Principal, dead_letter_id: str) -> DeadLetterView:
    """Publish one letter again to its queue (it leaves the dead letters); audited."""
    _may_replay(principal)
    letter = await get_dead_letter(runtime, principal, dead_letter_id)
    if not await runtime.broker.replay(dead_letter_id):
        raise NotFound(f"no dead letter {dead_letter_id} (replayed or discarded meanwhile)")
    await record_audit(
        runtime.database, principal, "dead_letter.replay", tenant_id=letter.tenant_id, target=letter.id,
        details=_audit_facts(letter),
    )  # fmt: skip
    return letter


async def replay_dead_letters(runtime: Runtime, principal: Principal, wanted: DeadLetterFilter) -> int:
    """Replay every letter passing the filter, each conversation's in arrival order; returns how many."""
    _may_replay(principal)
    letters, _ = await find_dead_letters(runtime, principal, wanted, limit=SCAN_LIMIT)
    ordered = sorted(letters, key=lambda each: (each.accepted_at or each.dead_at, each.dead_at))
    replayed = 0
    for letter in ordered:
        if await runtime.broker.replay(letter.id):
            replayed += 1
            # One entry per letter too: each message's timeline shows it was replayed, and by whom.
            await record_audit(
                runtime.database, principal, "dead_letter.replay", tenant_id=letter.tenant_id, target=letter.id,
                details={**_audit_facts(letter), "batch": True},
            )  # fmt: skip
    scoped = _scoped(principal, wanted)
    await record_audit(
        runtime.database, principal, "dead_letter.replay_all", tenant_id=scoped.tenant_id,
        target=f"{replayed} dead letters",
        details={"queue": scoped.queue, "error": scoped.error, "older_than_seconds": scoped.older_than_seconds,
                 "replayed": replayed},
    )  # fmt: skip
    return replayed


async def discard_dead_letter(
    runtime: Runtime, principal: Principal, dead_letter_id: str, *, reason: str
) -> DeadLetterView:
    """Remove one letter for good; the reason is required and kept in the audit log."""
    _may_replay(principal)
    reason = reason.strip()
    if not reason:
        raise BadRequest("reason: say why this message is discarded", field="reason")
    if len(reason) > 500:
        raise BadRequest("reason: at most 500 characters", field="reason")
    letter = await get_dead_letter(runtime, principal, dead_letter_id)
    if not await runtime.broker.discard(dead_letter_id):
        raise NotFound(f"no dead letter {dead_letter_id} (replayed or discarded meanwhile)")
    await record_audit(
        runtime.database, principal, "dead_letter.discard", tenant_id=letter.tenant_id, target=letter.id,
        details={**_audit_facts(letter), "reason": reason},
    )  # fmt: skip
    return letter
