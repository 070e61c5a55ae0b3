"""Wire enumerations: known values are members, a value Meta adds later is kept as UNKNOWN, never refused."""

from __future__ import annotations

from xypr.genesys.models import GenesysIdType, GenesysMessageType, GenesysOutbound
from xypr.whatsapp.models import WaInboundMessage, WaMessageType, WaStatus, WaStatusValue

_GENESYS = {"id": "g1", "channel": {"id": "c", "to": {"id": "+1", "idType": "Phone"}}, "type": "Text"}


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


def test_genesys_types_and_id_types_are_members_and_new_ones_are_kept() -> None:
    known = GenesysOutbound.model_validate(_GENESYS)
    assert known.type is GenesysMessageType.TEXT
    assert known.channel.to.id_type is GenesysIdType.PHONE
    later = GenesysOutbound.model_validate(
        {**_GENESYS, "type": "Poll", "channel": {"id": "c", "to": {"id": "x", "idType": "Instagram"}}}
    )
    assert (later.type.name, later.type, later.type.known) == ("UNKNOWN", "Poll", False)
    assert later.channel.to.id_type == "Instagram"
    dumped = later.model_dump(mode="json", by_alias=True)
    assert (dumped["type"], dumped["channel"]["to"]["idType"]) == ("Poll", "Instagram")


def test_a_wire_enum_is_documented_as_any_string_with_the_known_values_as_examples() -> None:
    schema = GenesysOutbound.model_json_schema()["$defs"]["GenesysMessageType"]
    assert schema["type"] == "string"
    assert "enum" not in schema  # an enum would promise a refusal that never comes
    assert schema["examples"] == ["Text", "Structured", "Receipt", "Event"]
