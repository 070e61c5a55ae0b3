"""Meta webhook messages → Open Messaging inbound bodies, on the published payloads."""

from __future__ import annotations

import pytest

from tests.support.contracts import contract
from xypr.transform.inbound import InboundFacts, customer_party, genesys_time, to_genesys_inbound
from xypr.whatsapp.models import WaContact, WaInboundMessage, customer_of


def _first(name: str) -> tuple[WaInboundMessage, WaContact]:
    value = contract(name)["entry"][0]["changes"][0]["value"]
    return WaInboundMessage.model_validate(value["messages"][0]), WaContact.model_validate(value["contacts"][0])


def test_text_webhook_becomes_open_messaging_message_with_wamid_sender_and_time() -> None:
    message, contact = _first("meta/webhook-text.json")

    body = to_genesys_inbound(message, contact).body

    assert body == {
        "channel": {
            "messageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            "from": {"id": "16505551234", "idType": "Phone", "nickname": "Sheena Nelson", "firstName": "Sheena",
                     "lastName": "Nelson"},
            "time": "2025-06-08T20:59:43.000Z",
        },
        "text": "Does it come in another color?",
    }  # fmt: skip


def test_bsuid_only_sender_is_an_opaque_id_named_by_username() -> None:
    message = WaInboundMessage.model_validate(
        {"from_user_id": "US.13491208655302741918", "id": "wamid.X", "timestamp": "1", "type": "text",
         "text": {"body": "hi"}}
    )  # fmt: skip
    contact = WaContact.model_validate({"user_id": "US.13491208655302741918", "profile": {"username": "@sheena"}})

    party = customer_party(message, contact)

    assert party == {"id": "US.13491208655302741918", "idType": "Opaque", "nickname": "@sheena"}


def test_message_without_any_sender_id_is_refused() -> None:
    message = WaInboundMessage.model_validate(
        {"id": "wamid.X", "timestamp": "1", "type": "text", "text": {"body": "x"}}
    )
    with pytest.raises(ValueError, match="neither"):
        customer_party(message, None)


def test_a_type_this_bridge_does_not_know_still_reaches_the_agent_as_a_note() -> None:
    message = WaInboundMessage.model_validate(
        {"from": "16505551234", "id": "wamid.X", "timestamp": "1", "type": "hologram", "hologram": {"id": "1"}}
    )

    body = to_genesys_inbound(message, None).body

    assert body["text"] == "[The customer sent a hologram message, which cannot be shown here.]"
    assert body["channel"]["messageId"] == "wamid.X"


@pytest.mark.parametrize(
    ("unix", "iso"),
    [("1749416383", "2025-06-08T20:59:43.000Z"), ("0", "1970-01-01T00:00:00.000Z"), (1.5, "1970-01-01T00:00:01.500Z")],
)
def test_genesys_time_is_iso_utc_with_milliseconds(unix: str | float, iso: str) -> None:
    assert genesys_time(unix) == iso


def _bsuid_change(**system: str) -> WaInboundMessage:
    """A `user_changed_user_id` notice as Meta sends it from August 2026: no `from`, no contacts block."""
    return WaInboundMessage.model_validate(
        {"id": "wamid.S", "timestamp": "1750269342", "type": "system",
         "system": {"type": "user_changed_user_id", "body": "User changed their user id", **system}}
    )  # fmt: skip


def test_an_identity_change_without_from_names_its_customer_by_the_ids_inside_system() -> None:
    message = _bsuid_change(previous_user_id="US.111", user_id="US.222", parent_user_id="US.ENT.9")

    assert message.customer_key is None
    assert message.previous_ids == ("US.111",)
    assert message.new_ids == ("US.222",)
    assert customer_of(message.model_dump(by_alias=True)) == "US.111"
    assert customer_of({"id": "x", "type": "system", "system": {"type": "user_changed_number", "wa_id": "1219"}}) == (
        "1219"
    )
    assert customer_of({"id": "x", "type": "text", "system": "not an object"}) is None


def test_only_identity_changes_name_previous_and_new_ids() -> None:
    other = WaInboundMessage.model_validate(
        {"from": "1650", "id": "wamid.T", "timestamp": "1", "type": "system",
         "system": {"type": "customer_identity_changed", "previous_user_id": "US.1", "user_id": "US.2"}}
    )  # fmt: skip
    assert other.previous_ids == ("1650",)
    assert other.new_ids == ()


def test_an_identity_change_is_told_under_the_id_the_agent_knows() -> None:
    message = _bsuid_change(previous_user_id="US.111", user_id="US.222")

    body = to_genesys_inbound(message, None, InboundFacts(customer_name="Ann Lee", customer_id="US.111")).body

    assert body["channel"]["from"] == {"id": "US.111", "idType": "Opaque", "nickname": "Ann Lee", "firstName": "Ann",
                                       "lastName": "Lee"}  # fmt: skip
    assert body["text"] == "[The customer's WhatsApp user id changed from US.111 to US.222.]"
    phone = customer_party(message, None, "16505551234")
    assert phone == {"id": "16505551234", "idType": "Phone"}


def test_without_any_customer_id_there_is_no_party() -> None:
    with pytest.raises(ValueError, match="neither"):
        customer_party(_bsuid_change(user_id="US.222"), None)
