"""Meta webhook messages → Open Messaging inbound bodies, on the published payloads."""

from __future__ import annotations

import pytest

from tests.support.contracts import contract
from xypr.transform.inbound import customer_party, genesys_time, to_genesys_inbound
from xypr.whatsapp.models import WaContact, WaInboundMessage


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
