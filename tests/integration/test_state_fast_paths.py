"""The hot-path state statements (upsert + insert, one-statement read, conditional update), on both databases."""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.bridge import eventually, tenant_spec
from xypr.backends.db import create_database, migrate
from xypr.config import Settings
from xypr.core.secretbox import SecretBox, generate_master_key
from xypr.runtime import Runtime
from xypr.state import service
from xypr.state.details import MessageDetails, OfferedChoice
from xypr.state.models import Conversation, Message
from xypr.state.service import (
    conversation_facts,
    get_message,
    insert_agent_message,
    mark_sent,
    mark_sent_to_whatsapp,
    send_state,
    track_customer_message,
)
from xypr.tenants.service import create_tenant, parse_tenant_file

EARLY = datetime(2026, 11, 21, 10, 0, 5, tzinfo=UTC)
LATE = EARLY + timedelta(minutes=3)


async def _tenant(runtime: Runtime) -> str:
    return (await create_tenant(runtime.database, runtime.box, parse_tenant_file(tenant_spec()))).id


async def _conversation(runtime: Runtime, tenant_id: str, wa_id: str) -> Conversation:
    async with runtime.database.session() as session:
        found = await session.scalar(
            select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.wa_id == wa_id)
        )
    assert found is not None
    return found


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_first_message_creates_the_conversation_and_the_row(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)

    tracked = await track_customer_message(
        runtime.database,
        tenant_id=tenant_id,
        wa_id="16505551234",
        wamid="wamid.A",
        kind="text",
        text="hello",
        bsuid="US.13491208655302741918",
        customer_name="Sheena",
        customer_wrote_at=EARLY,
    )

    assert tracked is not None
    assert tracked.customer_name == "Sheena"
    conversation = await _conversation(runtime, tenant_id, "16505551234")
    assert conversation.id == tracked.conversation_id
    assert conversation.bsuid == "US.13491208655302741918"
    assert _aware(conversation.last_customer_message_at) == EARLY
    async with runtime.database.session() as session:
        row = await get_message(session, tenant_id=tenant_id, message_id=tracked.message_id)
    assert row is not None
    assert (row.direction, row.wamid, row.kind, row.status) == ("inbound", "wamid.A", "text", "received")
    assert row.text == "hello"
    assert row.conversation_id == tracked.conversation_id


async def test_later_messages_keep_the_latest_time_and_known_name(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    common = {"tenant_id": tenant_id, "wa_id": "16505551234", "kind": "text", "text": "x"}
    first = await track_customer_message(
        runtime.database, wamid="wamid.1", customer_name="Sheena", customer_wrote_at=LATE, **common
    )
    # Meta delivers out of order: an earlier message processed later must not move the time back.
    second = await track_customer_message(runtime.database, wamid="wamid.2", customer_wrote_at=EARLY, **common)
    third = await track_customer_message(
        runtime.database, wamid="wamid.3", customer_name="Sheena N.", customer_wrote_at=None, **common
    )

    assert first is not None
    assert second is not None
    assert third is not None
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert second.customer_name == "Sheena"  # no name in the contact: the known one is kept
    assert third.customer_name == "Sheena N."
    conversation = await _conversation(runtime, tenant_id, "16505551234")
    assert _aware(conversation.last_customer_message_at) == LATE
    assert conversation.bsuid is None


async def test_a_redelivered_wamid_changes_nothing_and_returns_none(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    common = {"tenant_id": tenant_id, "wa_id": "16505551234", "kind": "text", "text": "x"}
    first = await track_customer_message(
        runtime.database, wamid="wamid.1", customer_name="Sheena", customer_wrote_at=EARLY, **common
    )

    again = await track_customer_message(
        runtime.database, wamid="wamid.1", customer_name="Someone Else", customer_wrote_at=LATE, **common
    )

    assert first is not None
    assert again is None
    conversation = await _conversation(runtime, tenant_id, "16505551234")
    assert conversation.customer_name == "Sheena"  # rolled back with the conflicting insert
    assert _aware(conversation.last_customer_message_at) == EARLY
    async with runtime.database.session() as session:
        count = await session.scalar(select(func.count()).select_from(Message).where(Message.tenant_id == tenant_id))
    assert count == 1


async def test_two_deliveries_of_one_new_wamid_at_once_track_it_once(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    common = {"tenant_id": tenant_id, "wa_id": "16505551234", "kind": "text", "text": "x"}

    results = await asyncio.gather(
        *(
            track_customer_message(runtime.database, wamid="wamid.race", customer_name="Sheena", **common)
            for _ in range(4)
        )
    )

    tracked = [each for each in results if each is not None]
    assert len(tracked) == 1  # the others fall through to the general path, as a redelivery does
    async with runtime.database.session() as session:
        rows = (await session.scalars(select(Message).where(Message.tenant_id == tenant_id))).all()
        conversations = await session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.tenant_id == tenant_id)
        )
    assert [row.id for row in rows] == [tracked[0].message_id]
    assert conversations == 1


async def test_a_later_message_returns_the_genesys_conversation_id_the_first_one_learned(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    common = {"tenant_id": tenant_id, "wa_id": "16505551234", "kind": "text", "text": "x"}
    first = await track_customer_message(runtime.database, wamid="wamid.1", **common)
    assert first is not None
    assert first.genesys_conversation_id is None  # Genesys has not answered yet
    await mark_sent(
        runtime.database,
        tenant_id=tenant_id,
        message_id=first.message_id,
        genesys_message_id="g-1",
        conversation_id=first.conversation_id,
        genesys_conversation_id="gc-1",
    )

    second = await track_customer_message(runtime.database, wamid="wamid.2", **common)

    assert second is not None
    assert second.genesys_conversation_id == "gc-1"


async def test_customers_of_two_tenants_never_share_a_conversation(runtime: Runtime) -> None:
    a, b = await _tenant(runtime), await _tenant(runtime)
    common = {"wa_id": "16505551234", "wamid": "wamid.same", "kind": "text", "text": "x"}

    in_a = await track_customer_message(runtime.database, tenant_id=a, **common)
    in_b = await track_customer_message(runtime.database, tenant_id=b, **common)

    assert in_a is not None
    assert in_b is not None
    assert in_a.conversation_id != in_b.conversation_id
    assert in_a.message_id != in_b.message_id


async def test_send_state_and_mark_sent(runtime: Runtime) -> None:
    tenant_id, other = await _tenant(runtime), await _tenant(runtime)
    tracked = await track_customer_message(
        runtime.database, tenant_id=tenant_id, wa_id="16505551234", wamid="wamid.1", kind="text", text="x"
    )
    assert tracked is not None

    before = await send_state(runtime.database, tenant_id=tenant_id, message_id=tracked.message_id)
    assert before is not None
    assert (before.status, before.conversation_id, before.genesys_conversation_id) == (
        "received",
        tracked.conversation_id,
        None,
    )
    assert await send_state(runtime.database, tenant_id=other, message_id=tracked.message_id) is None
    assert await send_state(runtime.database, tenant_id=tenant_id, message_id="no-such-id") is None

    # Another tenant's id changes nothing.
    await mark_sent(runtime.database, tenant_id=other, message_id=tracked.message_id, genesys_message_id="g-x")
    unchanged = await send_state(runtime.database, tenant_id=tenant_id, message_id=tracked.message_id)
    assert unchanged is not None
    assert unchanged.status == "received"

    await mark_sent(
        runtime.database,
        tenant_id=tenant_id,
        message_id=tracked.message_id,
        genesys_message_id="g-1",
        conversation_id=tracked.conversation_id,
        genesys_conversation_id="gc-1",
    )
    after = await send_state(runtime.database, tenant_id=tenant_id, message_id=tracked.message_id)
    assert after is not None
    assert (after.status, after.genesys_conversation_id) == ("sent", "gc-1")
    async with runtime.database.session() as session:
        row = await get_message(session, tenant_id=tenant_id, message_id=tracked.message_id)
    assert row is not None
    assert (row.genesys_message_id, row.error) == ("g-1", None)

    # Without an id from Genesys the known one stays.
    await mark_sent(runtime.database, tenant_id=tenant_id, message_id=tracked.message_id, genesys_message_id=None)
    async with runtime.database.session() as session:
        row = await get_message(session, tenant_id=tenant_id, message_id=tracked.message_id)
    assert row is not None
    assert row.genesys_message_id == "g-1"


async def test_records_made_at_once_each_mark_their_own_message(runtime: Runtime) -> None:
    """Marks made together go in one statement: each message gets its own Genesys id, each conversation
    that learned one its own, another tenant's mark changes nothing."""
    tenant_id, other = await _tenant(runtime), await _tenant(runtime)
    tracked = []
    for n in range(8):
        each = await track_customer_message(
            runtime.database, tenant_id=tenant_id, wa_id=f"1650555{n:04d}", wamid=f"wamid.{n}", kind="text", text="x"
        )
        assert each is not None
        tracked.append(each)

    await asyncio.gather(
        *(
            mark_sent(
                runtime.database,
                tenant_id=other if n == 7 else tenant_id,
                message_id=each.message_id,
                genesys_message_id=f"g-{n}" if n != 6 else None,
                conversation_id=each.conversation_id,
                genesys_conversation_id=f"gc-{n}" if n % 2 == 0 else None,
            )
            for n, each in enumerate(tracked)
        )
    )

    for n, each in enumerate(tracked):
        state = await send_state(runtime.database, tenant_id=tenant_id, message_id=each.message_id)
        assert state is not None
        async with runtime.database.session() as session:
            row = await get_message(session, tenant_id=tenant_id, message_id=each.message_id)
        assert row is not None
        if n == 7:
            assert (state.status, state.genesys_conversation_id, row.genesys_message_id) == ("received", None, None)
            continue
        assert state.status == "sent"
        assert state.genesys_conversation_id == (f"gc-{n}" if n % 2 == 0 else None)
        assert row.genesys_message_id == (f"g-{n}" if n != 6 else None)


async def test_a_record_failing_on_its_own_row_fails_only_its_own_caller(runtime: Runtime) -> None:
    """Records made together go in one round trip, all or none; when one row fails for a reason of its own
    (here: Genesys' id taken by another message), the others are still written and only its caller learns."""
    tenant_id = await _tenant(runtime)
    tracked = []
    for n in range(6):
        each = await track_customer_message(
            runtime.database, tenant_id=tenant_id, wa_id=f"1650555{n:04d}", wamid=f"wamid.{n}", kind="text", text="x"
        )
        assert each is not None
        tracked.append(each)
    await mark_sent(runtime.database, tenant_id=tenant_id, message_id=tracked[0].message_id, genesys_message_id="g-0")

    outcomes = await asyncio.gather(
        *(
            mark_sent(
                runtime.database,
                tenant_id=tenant_id,
                message_id=each.message_id,
                genesys_message_id="g-0" if n == 4 else f"g-{n}",  # (tenant, direction, Genesys id) is unique
            )
            for n, each in enumerate(tracked[1:], start=1)
        ),
        return_exceptions=True,
    )

    failed = [n for n, outcome in enumerate(outcomes, start=1) if isinstance(outcome, Exception)]
    assert failed == [4]
    for n, each in enumerate(tracked):
        state = await send_state(runtime.database, tenant_id=tenant_id, message_id=each.message_id)
        assert state is not None
        assert state.status == ("received" if n == 4 else "sent")


async def test_records_keep_no_database_alive(tmp_path: Path) -> None:
    database = create_database(f"sqlite+aiosqlite:///{tmp_path}/gone.db")
    await migrate(database)
    await mark_sent(database, tenant_id="t", message_id="none", genesys_message_id=None)
    await database.close()
    gone = weakref.ref(database)

    del database
    gc.collect()

    assert gone() is None


async def test_agent_messages_are_tracked_once_and_marked_sent_with_every_part(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    assert await conversation_facts(runtime.database, tenant_id=tenant_id, genesys_customer_id="16505551234") is None
    customer = await track_customer_message(
        runtime.database,
        tenant_id=tenant_id,
        wa_id="16505551234",
        wamid="wamid.in",
        kind="text",
        text="x",
        customer_wrote_at=EARLY,
    )
    assert customer is not None
    assert customer.genesys_customer_id == "16505551234"  # Genesys knows the customer by their first id
    facts = await conversation_facts(runtime.database, tenant_id=tenant_id, genesys_customer_id="16505551234")
    assert facts is not None
    assert (facts.id, facts.wa_id) == (customer.conversation_id, "16505551234")
    assert facts.last_customer_message_at == EARLY
    offered = MessageDetails(quick_replies=(OfferedChoice(id="q1", title="Yes", payload="YES"),))

    row_id = await insert_agent_message(
        runtime.database,
        tenant_id=tenant_id,
        conversation_id=facts.id,
        genesys_message_id="g-out-1",
        kind="text",
        text="Which one?",
        details=offered,
    )
    again = await insert_agent_message(
        runtime.database,
        tenant_id=tenant_id,
        conversation_id=facts.id,
        genesys_message_id="g-out-1",
        kind="text",
        text="Which one?",
    )

    assert row_id is not None
    assert again is None
    state = await send_state(runtime.database, tenant_id=tenant_id, message_id=row_id)
    assert state is not None
    assert state.status == "received"
    assert state.details == offered
    await mark_sent_to_whatsapp(
        runtime.database, tenant_id=tenant_id, message_id=row_id, wamids=["wamid.p1", "wamid.p2"], details=state.details
    )
    async with runtime.database.session() as session:
        row = await get_message(session, tenant_id=tenant_id, message_id=row_id)
    assert row is not None
    assert (row.direction, row.status, row.wamid, row.genesys_message_id) == ("outbound", "sent", "wamid.p1", "g-out-1")
    assert row.details is not None
    assert row.details.stored() == {
        "quick_replies": [{"id": "q1", "title": "Yes", "payload": "YES"}],
        "wamids": ["wamid.p1", "wamid.p2"],
    }
    assert row.conversation_id == facts.id


@pytest.mark.services
async def test_lookups_by_id_use_the_primary_key_before_statistics_exist(postgres_url: str) -> None:
    """A new database has no statistics: the planner must still not read a whole tenant per lookup."""
    database = create_database(postgres_url, pool_size=2)
    try:
        await migrate(database)
        tenant = await create_tenant(database, SecretBox(generate_master_key()), parse_tenant_file(tenant_spec()))
        for i in range(300):
            await track_customer_message(
                database, tenant_id=tenant.id, wa_id=f"c{i}", wamid=f"wamid.{i}", kind="text", text="x"
            )
        now = datetime.now(UTC)
        statements = {
            "send state": (service._SEND_STATE, [tenant.id, "m-1"]),
            "sent to Genesys": (service._MARK_SENT_TO_GENESYS, [tenant.id, "m-1", "g-1", now]),
            "conversation's Genesys id": (service._SET_GENESYS_CONVERSATION, [tenant.id, "c-1", "gc-1", now]),
            "sent to WhatsApp": (service._MARK_SENT_TO_WHATSAPP, [tenant.id, "m-1", "w-1", '{"wamids": []}', now]),
        }
        async with database.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            for name, (query, arguments) in statements.items():
                plan = "\n".join(row[0] for row in await raw.fetch(f"EXPLAIN {query}", *arguments))
                first_scan = next(line for line in plan.splitlines() if " Scan " in line)
                assert " using pk_" in first_scan, f"{name}:\n{plan}"
                assert "_tenant" not in plan, f"{name}:\n{plan}"
    finally:
        await database.close()


@pytest.mark.services
async def test_a_cancelled_transaction_leaves_no_connection_inside_it(postgres_url: str) -> None:
    """A worker stopping mid-transaction: the pool's only connection comes back usable, outside any transaction."""
    database = create_database(postgres_url, pool_size=1)
    try:
        await migrate(database)
        inside = asyncio.Event()

        async def hold() -> None:
            async with database.sql(transaction=True) as sql:
                await sql.execute("CREATE TEMPORARY TABLE held (x int)")
                inside.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(hold())
        await asyncio.wait_for(inside.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert database.hot is not None
        assert database.hot.size == 1
        async with database.hot.connection() as raw:
            assert not raw.is_in_transaction()
        async with database.sql() as sql:
            row = await sql.fetchrow("SELECT to_regclass('pg_temp.held') IS NULL")
        assert row == (True,)  # the table of the cancelled transaction was rolled back
    finally:
        await database.close()


@pytest.mark.services
async def test_a_connection_whose_statement_was_cancelled_is_never_lent_again(postgres_url: str) -> None:
    """A stage stopped mid-statement: asyncpg cancels the statement in the background, and if that fails
    (PostgreSQL restarting) the connection is stuck mid-operation ("cannot switch to state 12; another
    operation is in progress" for the next borrower). The pool gets a new connection instead."""
    database = create_database(postgres_url, pool_size=1)
    try:
        await migrate(database)
        pids: list[int] = []

        async def slow() -> None:
            async with database.sql() as sql:
                row = await sql.fetchrow("SELECT pg_backend_pid()")
                assert row is not None
                pids.append(int(row[0]))
                await sql.fetchrow("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        await eventually(lambda: _ready(pids))
        await asyncio.sleep(0.2)  # inside pg_sleep
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async with database.sql() as sql:
            row = await sql.fetchrow("SELECT pg_backend_pid()")
        assert row is not None
        assert int(row[0]) != pids[0]
    finally:
        await database.close()


async def _ready(pids: list[int]) -> bool:
    return bool(pids)


async def test_genesys_addresses_a_customer_who_changed_number_by_the_id_it_first_knew(runtime: Runtime) -> None:
    tenant_id = await _tenant(runtime)
    first = await track_customer_message(
        runtime.database, tenant_id=tenant_id, wa_id="16505551234", wamid="wamid.1", kind="text", text="x"
    )
    assert first is not None
    async with runtime.database.session() as session:
        moved = await session.get(Conversation, first.conversation_id)
        assert moved is not None
        moved.wa_id = "12195555358"  # what an identity change does (`_follow_identity`)

    # The new number's messages land in the same conversation, still known to Genesys by the first number.
    again = await track_customer_message(
        runtime.database, tenant_id=tenant_id, wa_id="12195555358", wamid="wamid.2", kind="text", text="y"
    )
    assert again is not None
    assert (again.conversation_id, again.genesys_customer_id) == (first.conversation_id, "16505551234")
    # Genesys' `to.id` finds the conversation and the id sends go to now; the new number is no Genesys id.
    facts = await conversation_facts(runtime.database, tenant_id=tenant_id, genesys_customer_id="16505551234")
    assert facts is not None
    assert (facts.id, facts.wa_id) == (first.conversation_id, "12195555358")
    assert await conversation_facts(runtime.database, tenant_id=tenant_id, genesys_customer_id="12195555358") is None


async def test_the_migration_knows_existing_conversations_to_genesys_by_their_current_key(
    backend_settings: Settings,
) -> None:
    database = create_database(backend_settings.effective_database_url, pool_size=2)
    try:
        await migrate(database, "0005_dashboard_audit")
        tenant = await create_tenant(database, SecretBox(generate_master_key()), parse_tenant_file(tenant_spec()))
        async with database.sql() as sql:
            await sql.execute(
                "INSERT INTO conversations (id, tenant_id, wa_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                "c-1",
                tenant.id,
                "US.13491208655302741918",
                EARLY,
            )
        await migrate(database)
        async with database.session() as session:
            conversation = await session.get(Conversation, "c-1")
        assert conversation is not None
        assert conversation.genesys_customer_id == "US.13491208655302741918"
    finally:
        await database.close()


@pytest.mark.services
async def test_ready_means_both_pools_answer(postgres_url: str) -> None:
    database = create_database(postgres_url, pool_size=2)
    try:
        assert await database.ping()
        assert database.hot is not None
        await database.hot.close()  # the ORM's pool still answers; the hot path's does not
        assert not await database.ping()
    finally:
        await database.close()
