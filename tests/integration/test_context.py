"""Conversation context: stored in the database, cached (cache-aside), tenant-scoped; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.bridge import tenant_spec
from xypr.core.errors import BadRequest, NotFound, PayloadTooLarge
from xypr.runtime import Runtime
from xypr.state.context import MAX_CONTEXT_BYTES, context_key, forget_context, get_context, put_context
from xypr.state.models import Conversation
from xypr.state.service import upsert_conversation
from xypr.tenants.service import create_tenant, parse_tenant_file

WROTE_AT = datetime(2026, 11, 21, 10, 0, 5, tzinfo=UTC)


async def _tenant(runtime: Runtime) -> str:
    tenant = await create_tenant(runtime.database, runtime.box, parse_tenant_file(tenant_spec()))
    return tenant.id


async def _conversation(runtime: Runtime, tenant_id: str, wa_id: str = "16505551234") -> Conversation:
    async with runtime.database.session() as session:
        return await upsert_conversation(
            session, tenant_id=tenant_id, wa_id=wa_id, customer_name="Sheena Nelson", customer_wrote_at=WROTE_AT
        )


async def test_context_of_a_new_conversation_holds_the_facts_xypr_keeps(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)

    context = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)

    assert context == {
        "conversation_id": conversation.id,
        "customer_id": "16505551234",
        "customer_name": "Sheena Nelson",
        "last_customer_message_at": "2026-11-21T10:00:05Z",
    }


async def test_put_context_is_read_back_with_the_facts_and_replaces_earlier_keys(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)
    await put_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id, context={"order": "A-1"})

    written = await put_context(
        runtime,
        tenant_id=tenant_id,
        conversation_id=conversation.id,
        context={"language": "pt-BR", "topics": ["billing", "refund"], "vip": True},
    )
    read = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)

    assert read == written
    assert read is not None
    assert read["language"] == "pt-BR"
    assert read["topics"] == ["billing", "refund"]
    assert read["vip"] is True
    assert "order" not in read  # a write replaces the writable keys
    assert read["customer_name"] == "Sheena Nelson"


async def test_a_write_cannot_change_the_facts_xypr_keeps(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)
    before = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)
    assert before is not None

    # A GET → change → PUT round trip sends the facts back: they are accepted and ignored.
    after = await put_context(
        runtime,
        tenant_id=tenant_id,
        conversation_id=conversation.id,
        context={**before, "customer_name": "Someone Else", "customer_id": "1", "note": "called back"},
    )

    assert after == {**before, "note": "called back"}


async def test_context_is_served_from_the_cache_until_the_conversation_changes(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)
    await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)
    assert await runtime.cache.get(context_key(tenant_id, conversation.id)) is not None

    async with runtime.database.session() as session:  # the pipeline records a Genesys conversation
        row = await session.get(Conversation, conversation.id)
        assert row is not None
        row.genesys_conversation_id = "b4c7e3a0-0000-4000-8000-000000000001"
    stale = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)
    assert stale is not None
    assert "genesys_conversation_id" not in stale  # cache-aside: the cached view until invalidated

    await forget_context(runtime, tenant_id=tenant_id, conversation_ids=[conversation.id])
    fresh = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)

    assert fresh is not None
    assert fresh["genesys_conversation_id"] == "b4c7e3a0-0000-4000-8000-000000000001"


async def test_context_is_found_by_the_genesys_conversation_id_too(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)
    async with runtime.database.session() as session:
        row = await session.get(Conversation, conversation.id)
        assert row is not None
        row.genesys_conversation_id = "b4c7e3a0-0000-4000-8000-000000000002"
    await put_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id, context={"note": "x"})

    by_genesys = await get_context(runtime, tenant_id=tenant_id, conversation_id="b4c7e3a0-0000-4000-8000-000000000002")

    assert by_genesys is not None
    assert by_genesys["conversation_id"] == conversation.id
    assert by_genesys["note"] == "x"


async def test_a_write_through_the_genesys_id_invalidates_the_cache_under_our_id(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)
    async with runtime.database.session() as session:
        row = await session.get(Conversation, conversation.id)
        assert row is not None
        row.genesys_conversation_id = "b4c7e3a0-0000-4000-8000-000000000003"
    await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)  # cached under our id

    await put_context(
        runtime, tenant_id=tenant_id, conversation_id="b4c7e3a0-0000-4000-8000-000000000003", context={"n": 1}
    )

    read = await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id)
    assert read is not None
    assert read["n"] == 1


async def test_another_tenant_cannot_read_or_write_the_context(runtime: Runtime) -> None:
    owner, other = await _tenant(runtime), await _tenant(runtime)
    conversation = await _conversation(runtime, owner)
    await put_context(runtime, tenant_id=owner, conversation_id=conversation.id, context={"secret": "s"})

    assert await get_context(runtime, tenant_id=other, conversation_id=conversation.id) is None
    with pytest.raises(NotFound):
        await put_context(runtime, tenant_id=other, conversation_id=conversation.id, context={"x": 1})
    owned = await get_context(runtime, tenant_id=owner, conversation_id=conversation.id)
    assert owned is not None
    assert owned["secret"] == "s"


async def test_unknown_conversation_has_no_context(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)

    assert await get_context(runtime, tenant_id=tenant_id, conversation_id="no-such-conversation") is None
    with pytest.raises(NotFound):
        await put_context(runtime, tenant_id=tenant_id, conversation_id="no-such-conversation", context={})


async def test_oversized_or_non_json_context_is_refused(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    conversation = await _conversation(runtime, tenant_id)

    with pytest.raises(PayloadTooLarge):
        await put_context(
            runtime, tenant_id=tenant_id, conversation_id=conversation.id, context={"big": "x" * MAX_CONTEXT_BYTES}
        )
    with pytest.raises(BadRequest):
        await put_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id, context={"when": object()})
    assert await get_context(runtime, tenant_id=tenant_id, conversation_id=conversation.id) == {
        "conversation_id": conversation.id,
        "customer_id": "16505551234",
        "customer_name": "Sheena Nelson",
        "last_customer_message_at": "2026-11-21T10:00:05Z",
    }
