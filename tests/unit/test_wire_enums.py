"""Wire enumerations: known values are members, a value Meta adds later is kept as UNKNOWN, never refused."""

from __future__ import annotations

from xypr.whatsapp.models import WaInboundMessage, WaMessageType, WaStatus, WaStatusValue


def test_a_known_type_is_its_member() -> None:
    message = WaInboundMessage.model_validate({"id": "w", "from": "1", "timestamp": "1", "type": "image"})
    assert message.type is WaMessageType.IMAGE
    assert message.type.known


def test_a_new_type_is_unknown_and_keeps_its_name() -> None:
    message = WaInboundMessage.model_validate({"id": "w", "from": "1", "timestamp": "1", "type": "hologram"})
    assert message.type.name == "UNKNOWN"
    assert not message.type.known
    assert message.type == "hologram"
    assert f"a {message.type} message" == "a hologram message"
    assert message.model_dump(mode="json")["type"] == "hologram"


def test_a_new_status_is_unknown_and_keeps_its_value() -> None:
    status = WaStatus.model_validate({"id": "w", "status": "deleted", "timestamp": "1"})
    assert not status.status.known
    assert status.status == "deleted"
    assert WaStatus.model_validate({"id": "w", "status": "played", "timestamp": "1"}).status is WaStatusValue.PLAYED
