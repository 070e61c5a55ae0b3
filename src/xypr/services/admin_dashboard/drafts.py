"""Onboarding drafts: a half-filled tenant kept server-side, sealed, so the wizard can be resumed.

A draft holds secrets as the person types them, so it is sealed with the master key (the draft id as
associated data) and kept in the shared cache for a day; it belongs to the person who started it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from xypr.core.errors import NotFound
from xypr.runtime import Runtime

__all__ = ["DRAFT_TTL_SECONDS", "Draft", "delete_draft", "load_draft", "my_drafts", "new_draft", "save_draft"]

DRAFT_TTL_SECONDS = 24 * 3600.0


@dataclass(slots=True)
class Draft:
    """A tenant being onboarded: the answers so far, by wizard step, and the steps whose checks failed
    (kept, so a resumed wizard goes back to them rather than on to "Check your answers")."""

    id: str
    owner: str
    updated_at: float
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The tenant's name, once given."""
        return str(self.answers.get("name", {}).get("name") or "unnamed tenant")


def _key(owner: str, draft_id: str) -> str:
    return f"admin:draft:{owner}:{draft_id}"


def _roster(owner: str) -> str:
    return f"admin:drafts:{owner}"


async def save_draft(runtime: Runtime, draft: Draft) -> None:
    """Store (seal) the draft and list it among its owner's drafts."""
    draft.updated_at = time.time()
    plain = orjson.dumps({"answers": draft.answers, "failing": draft.failing, "updated_at": draft.updated_at}).decode()
    sealed = runtime.box.seal(plain, tenant_id=f"draft:{draft.id}")
    await runtime.cache.set(_key(draft.owner, draft.id), sealed.encode(), ttl=DRAFT_TTL_SECONDS)
    ids = await _ids(runtime, draft.owner)
    if draft.id not in ids:
        await runtime.cache.set(_roster(draft.owner), orjson.dumps([*ids, draft.id]), ttl=DRAFT_TTL_SECONDS)


async def new_draft(runtime: Runtime, owner: str) -> Draft:
    """An empty draft of `owner`."""
    draft = Draft(id=secrets.token_urlsafe(9), owner=owner, updated_at=time.time())
    await save_draft(runtime, draft)
    return draft


async def load_draft(runtime: Runtime, owner: str, draft_id: str) -> Draft:
    """One of `owner`'s drafts; 404 when unknown, expired or someone else's."""
    raw = await runtime.cache.get(_key(owner, draft_id))
    if raw is None:
        raise NotFound("this onboarding draft has expired or does not exist; start again")
    record = orjson.loads(runtime.box.open(raw.decode(), tenant_id=f"draft:{draft_id}"))
    return Draft(
        id=draft_id, owner=owner, updated_at=float(record["updated_at"]), answers=record["answers"],
        failing=[str(each) for each in record.get("failing") or []],
    )  # fmt: skip


async def delete_draft(runtime: Runtime, draft: Draft) -> None:
    """Forget a draft (its tenant was created, or it was abandoned)."""
    await runtime.cache.delete(_key(draft.owner, draft.id))
    ids = await _ids(runtime, draft.owner)
    await runtime.cache.set(
        _roster(draft.owner), orjson.dumps([each for each in ids if each != draft.id]), ttl=DRAFT_TTL_SECONDS
    )


async def my_drafts(runtime: Runtime, owner: str) -> list[Draft]:
    """`owner`'s drafts still alive, most recent first."""
    found: list[Draft] = []
    for draft_id in await _ids(runtime, owner):
        try:
            found.append(await load_draft(runtime, owner, draft_id))
        except NotFound:
            continue
    return sorted(found, key=lambda draft: draft.updated_at, reverse=True)


async def _ids(runtime: Runtime, owner: str) -> list[str]:
    raw = await runtime.cache.get(_roster(owner))
    ids = orjson.loads(raw) if raw else []
    return [str(each) for each in ids] if isinstance(ids, list) else []
