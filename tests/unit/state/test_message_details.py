"""`Message.details` as a typed model: what is stored, what old rows load as, and what the column does."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from xypr.state.details import (
    KeptAttachment,
    MessageDetails,
    MessageDetailsType,
    OfferedChoice,
    Place,
    Reaction,
    WidgetAttachment,
)

EVERY_KEY = MessageDetails(
    reply_to="wamid.q",
    reaction=Reaction(message_id="wamid.r", emoji="👍"),
    location=Place(latitude=52.37, longitude=4.89, name="Dam"),
    media_id="m1",
    media_copied=True,
    structured=True,
    customer_id="16505551234",
    quick_replies=(OfferedChoice(id="q1", title="Yes", payload="YES"),),
    wamids=("wamid.1", "wamid.2"),
    media=(KeptAttachment(object_key="tenant/t/outbound/m/a.png", bytes=12),),
    requested_by="user-1",
)


def test_every_key_survives_the_round_trip_through_its_stored_json() -> None:
    assert MessageDetails.load(EVERY_KEY.stored()) == EVERY_KEY


def test_stored_json_keeps_the_wire_names_and_leaves_unset_keys_out() -> None:
    stored = MessageDetails(reply_to="wamid.q", reaction=Reaction(message_id="wamid.r", emoji="")).stored()

    assert stored == {"replyTo": "wamid.q", "reaction": {"messageId": "wamid.r", "emoji": ""}}


def test_a_widget_attachment_keeps_its_own_shape() -> None:
    stored = {"media": {"objectKey": "tenant/t/w/a.pdf", "mime": "application/pdf", "filename": "a.pdf"}}

    details = MessageDetails.load(stored)

    assert details is not None
    assert details.media == WidgetAttachment(object_key="tenant/t/w/a.pdf", mime="application/pdf", filename="a.pdf")
    assert details.stored() == stored


def test_keys_of_another_version_load_and_are_written_back_unchanged() -> None:
    stored = {"wamids": ["wamid.1"], "future_key": {"nested": [1, 2]}}

    details = MessageDetails.load(stored)

    assert details is not None
    assert details.wamids == ("wamid.1",)
    assert details.stored() == stored
    assert details.merged(MessageDetails(requested_by="u")).stored() == {**stored, "requested_by": "u"}


def test_no_details_load_as_none() -> None:
    assert MessageDetails.load(None) is None
    assert MessageDetails.load([1, 2]) is None


def test_a_malformed_key_is_dropped_and_the_others_kept() -> None:
    details = MessageDetails.load({"wamids": [1, {"x": 2}], "location": {"latitude": "n/a"}, "media_id": "m1"})

    assert details == MessageDetails(media_id="m1")


def test_quick_replies_without_an_id_are_skipped_the_others_kept() -> None:
    details = MessageDetails.load({"quick_replies": [{"title": "no id"}, {"id": "q2", "title": "Two"}, {"id": ""}]})

    assert details is not None
    assert details.quick_replies == (OfferedChoice(id="q2", title="Two"),)


def test_merged_replaces_only_the_keys_the_update_sets() -> None:
    before = MessageDetails(quick_replies=(OfferedChoice(id="q1"),), wamids=("wamid.old",))

    after = before.merged(MessageDetails(wamids=("wamid.1", "wamid.2"), media_id=None))

    assert after == MessageDetails(quick_replies=(OfferedChoice(id="q1"),), wamids=("wamid.1", "wamid.2"))


def test_details_are_frozen_so_a_change_is_an_assignment_the_session_sees() -> None:
    with pytest.raises(ValueError, match="frozen"):
        EVERY_KEY.media_id = "m2"


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()], ids=["postgresql", "sqlite"])
def test_the_column_stores_the_json_object_and_loads_the_model(dialect: Dialect) -> None:
    column = MessageDetailsType()

    stored = column.process_bind_param(EVERY_KEY, dialect)

    assert stored == EVERY_KEY.stored()
    assert column.process_result_value(stored, dialect) == EVERY_KEY
    assert column.process_bind_param(None, dialect) is None
    assert column.process_result_value(None, dialect) is None
