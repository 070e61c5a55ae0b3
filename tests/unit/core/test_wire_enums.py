"""Wire enumerations: known values are members, a value Meta adds later is kept as UNKNOWN, never refused."""

from __future__ import annotations

from xypr.genesys.content import (
    Attachment,
    CardAction,
    CardActionType,
    MediaType,
    TemplateButton,
    TemplateButtonType,
    TemplateHeader,
    TemplateHeaderType,
)
from xypr.genesys.models import (
    GenesysChannelType,
    GenesysDirection,
    GenesysIdType,
    GenesysMessageType,
    GenesysOutbound,
    GenesysReceiptStatus,
)
from xypr.whatsapp.models import (
    WaInboundMessage,
    WaInteractive,
    WaInteractiveType,
    WaMessageType,
    WaStatus,
    WaStatusValue,
    WaSystem,
    WaSystemType,
)

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


def test_the_other_fixed_sets_of_the_wire_are_members_and_new_values_are_kept() -> None:
    outbound = GenesysOutbound.model_validate(
        {
            **_GENESYS,
            "direction": "Outbound",
            "status": "Delivered",
            "channel": {**_GENESYS["channel"], "type": "Private"},
        }
    )
    attachment = Attachment.model_validate({"mediaType": "Image"})
    action, header, button = (
        CardAction.model_validate({"type": "Postback"}),
        TemplateHeader.model_validate({"type": "Media"}),
        TemplateButton.model_validate({"type": "Url"}),
    )
    interactive = WaInteractive.model_validate({"type": "list_reply"})
    system = WaSystem.model_validate({"type": "user_changed_number"})

    assert (outbound.direction, outbound.status, outbound.channel.type) == (
        GenesysDirection.OUTBOUND,
        GenesysReceiptStatus.DELIVERED,
        GenesysChannelType.PRIVATE,
    )
    assert (attachment.media_type, action.type, header.type, button.type) == (
        MediaType.IMAGE,
        CardActionType.POSTBACK,
        TemplateHeaderType.MEDIA,
        TemplateButtonType.URL,
    )
    assert (interactive.type, system.type) == (WaInteractiveType.LIST_REPLY, WaSystemType.USER_CHANGED_NUMBER)
    assert system.is_identity_change
    later = WaSystem.model_validate({"type": "user_left_whatsapp"})
    assert (later.type, later.type.known, later.is_identity_change) == ("user_left_whatsapp", False, False)
    new_media = Attachment.model_validate({"mediaType": "Hologram"}).media_type
    assert new_media is not None
    assert (new_media, new_media.known) == ("Hologram", False)
