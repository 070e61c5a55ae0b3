"""Open Messaging outbound bodies → Graph API sends, on the captured payloads."""

from __future__ import annotations

import pytest

from tests.support.contracts import contract
from xypr.genesys.models import GenesysOutbound
from xypr.transform.outbound import UnsupportedOutbound, split_text, to_whatsapp_sends


def test_captured_outbound_text_becomes_the_documented_text_send() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))

    sends = to_whatsapp_sends(message, to="16505551234", id_type="Phone")

    expected = contract("meta/send-text-request.json")
    expected.update(to="16505551234", text={"body": "Hello World", "preview_url": False})
    assert sends == [expected]


def test_text_with_a_link_asks_for_a_preview() -> None:
    message = GenesysOutbound.model_validate(
        {**contract("genesys/captured-openmessaging-outbound-text.json"), "text": "See https://example.com/x"}
    )
    (send,) = to_whatsapp_sends(message, to="16505551234", id_type="Phone")
    assert send["text"]["preview_url"] is True


def test_bsuid_customer_is_addressed_with_recipient() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))
    (send,) = to_whatsapp_sends(message, to="US.13491208655302741918", id_type="Opaque")
    assert send["recipient"] == "US.13491208655302741918"
    assert "to" not in send


def test_text_over_4096_is_split_on_word_boundaries_in_order() -> None:
    words = [f"word{i:05d}" for i in range(1000)]  # 9 999 characters with spaces
    pieces = split_text(" ".join(words))
    assert all(len(piece) <= 4096 for piece in pieces)
    assert " ".join(pieces).split() == words
    assert len(pieces) == 3


def test_unbroken_text_is_cut_hard_at_the_limit() -> None:
    assert split_text("x" * 5000) == ["x" * 4096, "x" * 904]


def test_attachment_and_structured_are_refused_until_supported() -> None:
    attachment = GenesysOutbound.model_validate(
        contract("genesys/captured-openmessaging-outbound-attachment-image.json")
    )
    with pytest.raises(UnsupportedOutbound):
        to_whatsapp_sends(attachment, to="1", id_type="Phone")
    structured = GenesysOutbound.model_validate(
        {**contract("genesys/captured-openmessaging-outbound-text.json"), "type": "Structured", "text": None}
    )
    with pytest.raises(UnsupportedOutbound, match="Structured"):
        to_whatsapp_sends(structured, to="1", id_type="Phone")


def test_captured_fixture_nickname_spelling_is_accepted() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))
    assert message.channel.from_ is not None
    assert message.channel.from_.nickname == "Open Messaging Integration"
