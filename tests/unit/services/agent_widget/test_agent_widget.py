"""The agent widget's pure parts: the thread it shows, the templates it offers, the template it sends, the
frame policy and the labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from xypr.config import Settings
from xypr.core.errors import BadRequest
from xypr.genesys.models import GenesysOutbound
from xypr.services.agent_widget.catalog import parse_templates, render
from xypr.services.agent_widget.history import MediaView, bubbles, failure_reason
from xypr.services.agent_widget.i18n import labels_for, language_of
from xypr.services.agent_widget.page import frame_ancestors, genesys_region_of, page_policy
from xypr.services.agent_widget.router import TemplateSend, notification_content
from xypr.state.details import MessageDetails
from xypr.state.models import Message
from xypr.transform.inbound import message_facts
from xypr.transform.outbound import plan_outbound
from xypr.whatsapp.models import WaInboundMessage

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _row(n: int, direction: str, kind: str, text: str | None, **extra: Any) -> Message:
    """A row as read from the database (`details`: the stored JSON object)."""
    return Message(
        id=f"m{n}",
        tenant_id="t",
        conversation_id="c",
        direction=direction,
        kind=kind,
        text=text,
        wamid=extra.pop("wamid", f"wamid.{n}"),
        status=extra.pop("status", "received" if direction == "inbound" else "sent"),
        error=extra.pop("error", None),
        details=MessageDetails.load(extra.pop("details", None)),
        created_at=T0 + timedelta(minutes=n),
    )


def test_customer_reaction_sits_on_the_agent_message_and_an_empty_one_removes_it() -> None:
    thread = bubbles(
        [
            _row(1, "outbound", "Text", "It ships tomorrow.", status="read"),
            _row(2, "inbound", "reaction", None, details={"reaction": {"messageId": "wamid.1", "emoji": "👍"}}),
            _row(3, "inbound", "text", "Thanks"),
            _row(4, "inbound", "reaction", None, details={"reaction": {"messageId": "wamid.3", "emoji": "❤️"}}),
            _row(5, "inbound", "reaction", None, details={"reaction": {"messageId": "wamid.3", "emoji": ""}}),
        ],
        {},
    )
    assert [b.id for b in thread] == ["m1", "m3"]  # reactions are not bubbles of their own
    assert thread[0].reactions == {"customer": "👍"}
    assert thread[1].reactions == {}


def test_a_reaction_to_a_message_out_of_view_is_a_note() -> None:
    thread = bubbles(
        [_row(1, "inbound", "reaction", None, details={"reaction": {"messageId": "wamid.old", "emoji": "😮"}})], {}
    )
    assert thread[0].note == "😮"


def test_replies_quote_the_message_they_answer_even_a_split_agent_text() -> None:
    thread = bubbles(
        [
            _row(1, "outbound", "Text", "Part one", details={"wamids": ["wamid.1", "wamid.1b"]}),
            _row(2, "inbound", "text", "About part two", details={"replyTo": "wamid.1b"}),
            _row(3, "inbound", "text", "Unknown", details={"replyTo": "wamid.gone"}),
        ],
        {},
    )
    assert thread[1].quote == "Part one"
    assert thread[2].quote is None


def test_media_shows_our_copy_and_location_a_map_link() -> None:
    image = MediaView("image", "https://store.example/tenant/t/media/1.jpg", "image/jpeg", None)
    thread = bubbles(
        [
            _row(1, "inbound", "image", "[image]", details={"media_id": "1"}),
            _row(2, "inbound", "document", "[document: a.pdf]", details={"media_id": "2"}),
            _row(
                3,
                "inbound",
                "location",
                "📍 Dam",
                details={"location": {"latitude": 52.37, "longitude": 4.89, "name": "Dam"}},
            ),
        ],
        {"wamid.1": image},
    )
    assert thread[0].media == image
    assert thread[0].text is None  # "[image]" only stood in for quotes
    assert thread[1].media == MediaView("document", None)  # not copied (yet): named, not linked
    assert thread[2].location is not None
    assert thread[2].location.url == "https://www.google.com/maps/search/?api=1&query=52.37,4.89"
    assert thread[2].location.label == "Dam"


def test_a_failed_agent_message_says_why_in_words_and_keeps_meta_text() -> None:
    thread = bubbles(
        [
            _row(
                1, "outbound", "Text", "Hi", status="failed", error="InvalidDestination: (131026) Message undeliverable"
            )
        ],
        {},
    )
    assert thread[0].tick == "failed"
    assert thread[0].failure == "The number cannot receive WhatsApp messages — (131026) Message undeliverable"
    assert failure_reason("Weird: thing") == "Weird: thing"
    assert failure_reason(None) is None


def test_pending_agent_message_has_a_clock_tick() -> None:
    assert bubbles([_row(1, "outbound", "Text", "Hi", status="received")], {})[0].tick == "pending"


WABA_ANSWER: dict[str, Any] = {
    "data": [
        {"name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hello {{1}}, order {{2}} ships {{1}}."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"},
                                            {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}"}]}]},
        {"name": "spring", "language": "en_US", "status": "APPROVED", "category": "MARKETING", "components": [
            {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "{{discount}} off"}]},
        {"name": "pending_one", "language": "en_US", "status": "PENDING", "components": []},
        {"name": "rejected_one", "language": "en_US", "status": "REJECTED", "components": []},
    ]
}  # fmt: skip


def test_only_approved_templates_are_offered_with_one_input_per_placeholder() -> None:
    templates = parse_templates(WABA_ANSWER)
    assert [t.key for t in templates] == ["order_update|en_US", "spring|en_US"]
    order, spring = templates
    assert [(p.component, p.name, p.index) for p in order.placeholders] == [
        ("header", "1", 0), ("body", "1", 0), ("body", "2", 0), ("button", "1", 1),
    ]  # fmt: skip
    assert spring.media_header
    assert [(p.component, p.name) for p in spring.placeholders] == [("body", "discount")]
    assert render("Hello {{1}} and {{ 2 }}", {"1": "Ann"}) == "Hello Ann and {{ 2 }}"


def test_a_template_needs_every_value_before_it_goes() -> None:
    order = parse_templates(WABA_ANSWER)[0]
    body = TemplateSend(template=order.key, values={"header.1": "A1", "body.1": "Ann", "button.1": "A1"})
    with pytest.raises(BadRequest, match=r"values\.body\.2"):
        notification_content(order, body, namespace="waba")


def test_a_filled_template_becomes_the_whatsapp_template_through_the_outbound_transform() -> None:
    order = parse_templates(WABA_ANSWER)[0]
    values = {"header.1": "A1", "body.1": "Ann", "body.2": "A1", "button.1": "A1"}
    text, item = notification_content(order, TemplateSend(template=order.key, values=values), namespace="waba")
    assert text == "Order A1\nHello Ann, order A1 ships Ann."
    outbound = GenesysOutbound.model_validate(
        {"id": "g1", "channel": {"id": "i", "platform": "Open", "type": "Private", "to": {"id": "16505551234"},
                                 "from": {"id": "i"}, "time": "2026-03-01T10:00:00.000Z", "messageId": "g1"},
         "direction": "Outbound", "type": "Structured", "text": text, "content": [item]}
    )  # fmt: skip
    [send] = plan_outbound(outbound, to="16505551234", id_type="Phone").sends
    assert send["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "A1"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "A1"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "A1"}]},
        ],
    }


def test_a_media_header_needs_a_checked_url() -> None:
    spring = parse_templates(WABA_ANSWER)[1]
    with pytest.raises(BadRequest, match="headerMediaUrl"):
        notification_content(spring, TemplateSend(template=spring.key, values={"body.discount": "20%"}), namespace="w")
    bad = TemplateSend.model_validate(
        {"template": spring.key, "values": {"body.discount": "20%"}, "headerMediaUrl": "ftp://x/y.png"}
    )
    with pytest.raises(BadRequest, match="https"):
        notification_content(spring, bad, namespace="w")
    good = TemplateSend.model_validate(
        {"template": spring.key, "values": {"body.discount": "20%"}, "headerMediaUrl": "https://cdn.example/a.png"}
    )
    pdf = TemplateSend.model_validate(
        {"template": spring.key, "values": {"body.discount": "20%"}, "headerMediaUrl": "https://cdn.example/a.pdf"}
    )
    with pytest.raises(BadRequest, match="image/jpeg or image/png, not application/pdf"):
        notification_content(spring, pdf, namespace="w")
    _text, item = notification_content(spring, good, namespace="w")
    assert item["template"]["header"] == {"type": "Media", "media": {"url": "https://cdn.example/a.png",
                                                                      "mediaType": "Image"}}  # fmt: skip


def test_only_genesys_and_configured_origins_may_frame_the_widget() -> None:
    settings = Settings(_env_file=None, widget_frame_ancestors="http://127.0.0.1:3000")  # type: ignore[call-arg]
    origins = frame_ancestors(settings)
    assert "https://*.mypurecloud.com" in origins
    assert "https://*.usw2.pure.cloud" in origins
    assert "http://127.0.0.1:3000" in origins
    assert "*" not in origins
    assert "https:" not in origins
    policy = page_policy(Settings(_env_file=None))  # type: ignore[call-arg]
    assert "frame-ancestors https://*." in policy
    assert "127.0.0.1" not in policy
    assert "script-src 'self';" in policy


def test_the_region_comes_from_the_genesys_host_origin() -> None:
    assert genesys_region_of("https://apps.mypurecloud.ie", "prod-euw1") == "mypurecloud.ie"
    assert genesys_region_of("https://apps.usw2.pure.cloud", "prod-usw2") == "usw2.pure.cloud"
    assert genesys_region_of("https://apps.evil.example", "prod") is None
    assert genesys_region_of("https://mypurecloud.ie.evil.example", "prod") is None


def test_labels_follow_the_genesys_language_tag() -> None:
    assert language_of("es-ES") == "es"
    assert language_of("es_419") == "es"
    assert language_of("fr-fr") == "en"
    assert language_of(None) == "en"
    assert labels_for("es")["send"] == "Enviar"
    assert set(labels_for("es")) == set(labels_for("en"))  # no label missing in Spanish


def test_inbound_facts_keep_what_the_widget_shows() -> None:
    reaction = WaInboundMessage.model_validate(
        {"from": "1", "id": "w2", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "w1", "emoji": "👍"}}
    )
    assert message_facts(reaction) == {"reaction": {"messageId": "w1", "emoji": "👍"}}
    reply = WaInboundMessage.model_validate(
        {"from": "1", "id": "w3", "timestamp": "1", "type": "text", "text": {"body": "hi"}, "context": {"id": "w1"}}
    )
    assert message_facts(reply) == {"replyTo": "w1"}
    place = WaInboundMessage.model_validate(
        {"from": "1", "id": "w4", "timestamp": "1", "type": "location",
         "location": {"latitude": 1.5, "longitude": 2.5, "name": "Here"}}
    )  # fmt: skip
    assert message_facts(place) == {"location": {"latitude": 1.5, "longitude": 2.5, "name": "Here", "address": None}}
    plain = WaInboundMessage.model_validate(
        {"from": "1", "id": "w5", "timestamp": "1", "type": "text", "text": {"body": "hi"}}
    )
    assert message_facts(plain) is None
