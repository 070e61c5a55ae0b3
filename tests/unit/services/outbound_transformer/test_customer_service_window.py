"""The 24-hour customer service window as the outbound transformer judges it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xypr.services.outbound_transformer.worker import window_open
from xypr.state.models import Conversation

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "open_"),
    [(timedelta(minutes=1), True), (timedelta(hours=23, minutes=59), True), (timedelta(hours=24), True),
     (timedelta(hours=24, seconds=1), False), (timedelta(days=3), False)],
)  # fmt: skip
def test_the_window_is_open_for_24_hours_after_the_customers_last_message(ago: timedelta, open_: bool) -> None:
    conversation = Conversation(tenant_id="t", wa_id="1", last_customer_message_at=NOW - ago)
    assert window_open(conversation, NOW) is open_


def test_a_customer_who_never_wrote_or_no_conversation_means_closed() -> None:
    assert window_open(Conversation(tenant_id="t", wa_id="1"), NOW) is False
    assert window_open(None, NOW) is False


def test_naive_times_from_sqlite_are_read_as_utc() -> None:
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    assert window_open(Conversation(tenant_id="t", wa_id="1", last_customer_message_at=naive), NOW) is True
