"""Open Messaging outbound bodies → Graph API sends, on the published and captured payloads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.contracts import contract
from xypr.genesys.models import GenesysOutbound
from xypr.sandbox.meta.validation import validate_messages_body
from xypr.transform.outbound import (
    OutboundPlan,
    UnsupportedOutbound,
    mark_read,
    plan_outbound,
    split_text,
    typing_indicator,
)

PHONE = "16505551234"
MESSAGE_ID = "c327c2078ca056db130c55ce648d9fa2"


def _genesys(text: str | None = None, content: list[dict[str, Any]] | None = None, **fields: Any) -> GenesysOutbound:
    """The captured outbound text message with other text / content (a Structured message when content is given)."""
    body = contract("genesys/captured-openmessaging-outbound-text.json")
    body["text"] = text
    if content is not None:
        body["content"] = content
        body["type"] = "Structured"
    body.update(fields)
    return GenesysOutbound.model_validate(body)


def _plan(message: GenesysOutbound, to: str = PHONE) -> OutboundPlan:
    return plan_outbound(message, to=to, id_type="Phone")


def _expected(name: str, **fields: Any) -> dict[str, Any]:
    """A published send request with our recipient (and `recipient_type`, which some examples omit)."""
    body: dict[str, Any] = copy.deepcopy(contract(name))
    body.update({"to": PHONE, "recipient_type": "individual"}, **fields)
    return body


def _quick_replies(*texts: str) -> list[dict[str, Any]]:
    return [{"contentType": "QuickReply", "quickReply": {"text": t, "payload": f"pl-{t}"}} for t in texts]


# -- text ----------------------------------------------------------------------------------------------


def test_captured_outbound_text_becomes_the_documented_text_send() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))

    sends = plan_outbound(message, to=PHONE, id_type="Phone").sends

    assert sends == [_expected("meta/send-text-request.json", text={"body": "Hello World", "preview_url": False})]


def test_text_with_a_link_becomes_the_documented_preview_url_send() -> None:
    expected = contract("meta/send-text-preview-url-docs-request.json")

    (send,) = _plan(_genesys(expected["text"]["body"]), to="+16505551234").sends

    assert send == expected


def test_bsuid_customer_is_addressed_with_recipient() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))
    (send,) = plan_outbound(message, to="US.13491208655302741918", id_type="Opaque").sends
    assert send["recipient"] == "US.13491208655302741918"
    assert "to" not in send


def test_text_over_4096_is_split_on_word_boundaries_in_order() -> None:
    words = [f"word{i:05d}" for i in range(1000)]  # 9 999 characters with spaces
    pieces = split_text(" ".join(words))
    assert all(len(piece) <= 4096 for piece in pieces)
    assert " ".join(pieces).split() == words
    assert len(pieces) == 3


def test_a_long_agent_text_becomes_several_text_sends_in_order() -> None:
    words = [f"w{i:04d}" for i in range(1500)]  # 8 999 characters

    sends = _plan(_genesys(" ".join(words))).sends

    assert [len(s["text"]["body"]) <= 4096 for s in sends] == [True, True, True]
    assert " ".join(s["text"]["body"] for s in sends).split() == words


def test_unbroken_text_is_cut_hard_at_the_limit() -> None:
    assert split_text("x" * 5000) == ["x" * 4096, "x" * 904]


def test_a_message_with_neither_text_nor_content_is_invalid_message_structure() -> None:
    with pytest.raises(UnsupportedOutbound) as refused:
        _plan(_genesys("   "))
    assert refused.value.reason == "InvalidMessageStructure"


def test_captured_fixture_nickname_spelling_is_accepted() -> None:
    message = GenesysOutbound.model_validate(contract("genesys/captured-openmessaging-outbound-text.json"))
    assert message.channel.from_ is not None
    assert message.channel.from_.nickname == "Open Messaging Integration"


# -- attachments ---------------------------------------------------------------------------------------


def _attachment(text: str | None = None, **attachment: Any) -> GenesysOutbound:
    body = contract("genesys/captured-openmessaging-outbound-attachment-image.json")
    body["content"][0]["attachment"].update(attachment)
    if text is not None:
        body["text"] = text
    return GenesysOutbound.model_validate(body)


def _without_id(name: str, kind: str) -> dict[str, Any]:
    expected = _expected(name)
    del expected[kind]["id"]  # the media id exists only once the file is uploaded to Meta
    return expected


def test_captured_image_attachment_becomes_an_image_send_waiting_for_its_upload() -> None:
    plan = _plan(_attachment())

    assert plan.sends == [_without_id("meta/send-image-by-id-request.json", "image")]
    assert plan.attachment is not None
    assert (plan.attachment.part, plan.attachment.url, plan.attachment.mime_type) == (
        0,
        "https://api-downloads.usw2.pure.cloud/api/v2/downloads/pce1234456",
        "image/jpeg",
    )
    assert (plan.attachment.whatsapp_type, plan.attachment.max_bytes) == ("image", 5 * 1024 * 1024)


@pytest.mark.parametrize(
    ("mime", "filename", "contract_name", "kind", "media"),
    [
        ("application/pdf", "manual.pdf", "meta/send-document-by-id-request.json", "document",
         {"caption": "Your manual", "filename": "manual.pdf"}),
        ("video/mp4", "clip.mp4", "meta/send-video-by-id-request.json", "video", {"caption": "Your manual"}),
        ("image/png", "shot.png", "meta/send-image-by-id-request.json", "image", {"caption": "Your manual"}),
    ],
)  # fmt: skip
def test_attachment_with_text_becomes_a_captioned_media_send(
    mime: str, filename: str, contract_name: str, kind: str, media: dict[str, str]
) -> None:
    plan = _plan(_attachment("Your manual", mime=mime, filename=filename))

    expected = _expected(contract_name, **{kind: media})
    assert plan.sends == [expected]
    assert plan.attachment is not None
    assert plan.attachment.whatsapp_type == kind


@pytest.mark.parametrize(
    ("mime", "contract_name", "kind"),
    [("audio/ogg", "meta/send-audio-by-id-request.json", "audio"),
     ("image/webp", "meta/send-sticker-by-id-request.json", "sticker")],
)  # fmt: skip
def test_audio_and_sticker_take_no_caption_so_the_text_follows_them(mime: str, contract_name: str, kind: str) -> None:
    plan = _plan(_attachment("listen to this", mime=mime, filename=f"file.{mime.split('/')[1]}"))

    assert plan.sends == [
        _without_id(contract_name, kind),
        _expected("meta/send-text-request.json", text={"body": "listen to this", "preview_url": False}),
    ]


def test_a_caption_over_1024_characters_goes_as_text_after_the_media() -> None:
    long_text = "a " * 600

    sends = _plan(_attachment(long_text)).sends

    assert [send["type"] for send in sends] == ["image", "text"]
    assert "caption" not in sends[0]["image"]
    assert sends[1]["text"]["body"] == long_text.strip()


def test_gif_attachment_is_refused_as_media_type_not_allowed() -> None:
    with pytest.raises(UnsupportedOutbound, match="image/gif") as refused:
        _plan(_attachment(mime="image/gif", filename="party.gif"))
    assert refused.value.reason == "MediaTypeNotAllowed"


def test_an_attachment_declared_larger_than_whatsapp_allows_is_invalid_media_content_length() -> None:
    with pytest.raises(UnsupportedOutbound) as refused:
        _plan(_attachment(contentSizeBytes=5 * 1024 * 1024 + 1))
    assert refused.value.reason == "InvalidMediaContentLength"


def test_attachment_without_mime_takes_the_type_of_its_file_name() -> None:
    plan = _plan(_attachment(mime=None, filename="terms.docx"))
    assert plan.sends[0]["type"] == "document"
    assert plan.sends[0]["document"] == {"filename": "terms.docx"}


def test_a_link_attachment_becomes_a_text_with_preview() -> None:
    (send,) = _plan(_attachment("See", mediaType="Link", url="https://example.com/a", mime=None)).sends
    assert send["text"] == {"body": "See\nhttps://example.com/a", "preview_url": True}


# -- quick replies, cards, pickers ---------------------------------------------------------------------


def test_two_quick_replies_become_the_documented_reply_buttons() -> None:
    plan = _plan(_genesys("<BUTTON_TEXT>", _quick_replies("<BUTTON_TITLE_1>", "<BUTTON_TITLE_2>")))

    expected = _expected("meta/send-interactive-button-request.json")
    buttons = expected["interactive"]["action"]["buttons"]
    buttons[0]["reply"]["id"], buttons[1]["reply"]["id"] = f"qr.{MESSAGE_ID}.0", f"qr.{MESSAGE_ID}.1"
    assert plan.sends == [expected]
    assert [c.as_dict() for c in plan.quick_replies] == [
        {"id": f"qr.{MESSAGE_ID}.0", "title": "<BUTTON_TITLE_1>", "payload": "pl-<BUTTON_TITLE_1>"},
        {"id": f"qr.{MESSAGE_ID}.1", "title": "<BUTTON_TITLE_2>", "payload": "pl-<BUTTON_TITLE_2>"},
    ]


def test_button_titles_are_trimmed_to_20_characters_and_kept_unique() -> None:
    plan = _plan(_genesys("Pick", _quick_replies("Talk to a human agent now", "Talk to a human agent later", "No")))

    titles = [b["reply"]["title"] for b in plan.sends[0]["interactive"]["action"]["buttons"]]
    assert all(len(title) <= 20 for title in titles)
    assert len(set(titles)) == 3
    assert titles == ["Talk to a human age…", "Talk to a human… (2)", "No"]
    # The payload and the full text are what the agent gets back when the customer taps.
    assert plan.quick_replies[1].title == "Talk to a human agent later"


def test_five_quick_replies_become_a_list_with_24_character_rows() -> None:
    options = ["One", "Two", "Three", "Four", "A very long option that does not fit a row"]

    plan = _plan(_genesys("Choose a plan", _quick_replies(*options)))

    (send,) = plan.sends
    interactive = send["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"] == {"text": "Choose a plan"}
    (section,) = interactive["action"]["sections"]
    assert [row["id"] for row in section["rows"]] == [f"qr.{MESSAGE_ID}.{n}" for n in range(5)]
    assert section["rows"][4]["title"] == "A very long option that…"
    assert section["rows"][4]["description"] == "A very long option that does not fit a row"
    assert [c.payload for c in plan.quick_replies] == [f"pl-{o}" for o in options]


def test_more_than_ten_quick_replies_fall_back_to_a_numbered_text() -> None:
    plan = _plan(_genesys("Which one?", _quick_replies(*[f"Option {n}" for n in range(1, 13)])))

    (send,) = plan.sends
    assert send["type"] == "text"
    assert send["text"]["body"].startswith("Which one?\n1. Option 1\n2. Option 2")
    assert send["text"]["body"].endswith("12. Option 12")
    assert plan.quick_replies == []


def test_quick_replies_without_text_get_a_prompt_as_body() -> None:
    (send,) = _plan(_genesys(None, _quick_replies("Yes", "No"))).sends
    assert send["interactive"]["body"] == {"text": "Please choose an option."}


def test_a_card_with_one_link_becomes_the_documented_cta_url_send() -> None:
    expected = contract("meta/send-interactive-cta-url-request.json")
    action = expected["interactive"]["action"]["parameters"]
    card = {
        "description": expected["interactive"]["body"]["text"],
        "image": expected["interactive"]["header"]["image"]["link"],
        "actions": [{"type": "Link", "text": action["display_text"], "url": action["url"]}],
    }

    plan = _plan(_genesys(None, [{"contentType": "Card", "card": card}]), to="+16505551234")

    del expected["interactive"]["footer"]  # Genesys cards have no footer
    assert plan.sends == [expected]


def test_a_card_with_postbacks_becomes_reply_buttons_with_its_image_and_links_in_the_body() -> None:
    card = {
        "title": "Blue sneakers",
        "description": "Size 42, in stock",
        "image": "https://shop.example/sneakers.png",
        "actions": [
            {"type": "Postback", "text": "Buy", "payload": "BUY-42"},
            {"type": "Postback", "text": "Other sizes", "payload": "SIZES"},
            {"type": "Link", "text": "Details", "url": "https://shop.example/sneakers"},
        ],
    }

    plan = _plan(_genesys(None, [{"contentType": "Card", "card": card}]))

    (send,) = plan.sends
    interactive = send["interactive"]
    assert interactive["type"] == "button"
    assert interactive["header"] == {"type": "image", "image": {"link": "https://shop.example/sneakers.png"}}
    assert interactive["body"]["text"] == "*Blue sneakers*\nSize 42, in stock\nDetails: https://shop.example/sneakers"
    assert [c.payload for c in plan.quick_replies] == ["BUY-42", "SIZES"]


def test_a_carousel_becomes_one_message_per_card_in_order_with_unique_ids() -> None:
    cards = [
        {"title": f"Card {n}", "actions": [{"type": "Postback", "text": "Pick", "payload": f"P{n}"}]} for n in range(3)
    ]

    plan = _plan(_genesys(None, [{"contentType": "Carousel", "carousel": {"cards": cards}}]))

    assert [s["interactive"]["body"]["text"] for s in plan.sends] == ["Card 0", "Card 1", "Card 2"]
    assert [c.id for c in plan.quick_replies] == [f"qr.{MESSAGE_ID}.{n}" for n in range(3)]
    assert [c.payload for c in plan.quick_replies] == ["P0", "P1", "P2"]


def test_a_card_with_many_links_falls_back_to_readable_text() -> None:
    card = {
        "title": "Help",
        "actions": [
            {"type": "Link", "text": "FAQ", "url": "https://help.example/faq"},
            {"type": "Link", "text": "Status", "url": "https://help.example/status"},
        ],
    }
    (send,) = _plan(_genesys(None, [{"contentType": "Card", "card": card}])).sends
    assert send["text"]["body"] == "Help\nFAQ: https://help.example/faq\nStatus: https://help.example/status"


def test_a_list_picker_becomes_the_documented_list_send() -> None:
    expected = contract("meta/send-interactive-list-docs-request.json")
    interactive = expected["interactive"]
    picker = {
        "sections": [
            {"title": s["title"], "items": [{"id": r["id"], "title": r["title"], "subtitle": r["description"]}
                                             for r in s["rows"]]}
            for s in interactive["action"]["sections"]
        ],
        "receivedMessage": {"header": interactive["header"]["text"], "title": interactive["body"]["text"],
                            "buttonLabel": interactive["action"]["button"]},
    }  # fmt: skip

    plan = _plan(_genesys(None, [{"contentType": "ListPicker", "listPicker": picker}]), to="+16505551234")

    payloads = []
    for section in interactive["action"]["sections"]:
        for row in section["rows"]:
            payloads.append(row["id"])
            row["id"] = f"qr.{MESSAGE_ID}.{len(payloads) - 1}"
    del interactive["footer"]
    assert plan.sends == [expected]
    assert [c.payload for c in plan.quick_replies] == payloads


def test_a_date_picker_offers_its_times_as_list_rows() -> None:
    picker = {
        "title": "Book a call",
        "availableTimes": [
            {"dateTime": "2026-03-03T09:30:00.000Z", "duration": 1800},
            {"dateTime": "2026-03-03T14:00:00.000Z", "duration": 1800},
        ],
    }

    plan = _plan(_genesys(None, [{"contentType": "DatePicker", "datePicker": picker}]))

    (send,) = plan.sends
    rows = send["interactive"]["action"]["sections"][0]["rows"]
    assert [(r["title"], r["description"]) for r in rows] == [("Tue 03 Mar 09:30 UTC", "30 min"),
                                                             ("Tue 03 Mar 14:00 UTC", "30 min")]  # fmt: skip
    assert send["interactive"]["body"] == {"text": "Book a call"}
    assert [c.payload for c in plan.quick_replies] == ["2026-03-03T09:30:00.000Z", "2026-03-03T14:00:00.000Z"]


def test_a_date_picker_without_times_asks_for_a_date_in_text() -> None:
    picker = {"title": "When?", "dateMinimum": "2026-03-01", "dateMaximum": "2026-03-31"}
    (send,) = _plan(_genesys(None, [{"contentType": "DatePicker", "datePicker": picker}])).sends
    assert send["text"]["body"] == "When?\nPlease answer with a date between 2026-03-01 and 2026-03-31."


def test_a_location_becomes_the_documented_location_send() -> None:
    expected = _expected("meta/send-location-request.json")
    place = expected["location"]
    location = {"latitude": place["latitude"], "longitude": place["longitude"], "text": place["name"],
                "address": place["address"]}  # fmt: skip

    plan = _plan(_genesys(None, [{"contentType": "Location", "location": location}]))

    assert plan.sends == [expected]


def test_unknown_content_is_refused_as_unsupported_rather_than_dropped() -> None:
    with pytest.raises(UnsupportedOutbound, match="Story") as refused:
        _plan(_genesys("hi", [{"contentType": "Story", "story": {"type": "Mention"}}]))
    assert refused.value.reason == "UnsupportedMessage"


# -- templates -----------------------------------------------------------------------------------------


def _notification(template: dict[str, Any]) -> GenesysOutbound:
    return _genesys(None, [{"contentType": "Notification", "template": template}])


def test_notification_hello_world_becomes_the_documented_template_send() -> None:
    plan = _plan(_notification({"id": "f2c3c1b8_9d3e_4b4e@hello_world", "language": "en_US", "body": {}}))

    assert plan.is_template
    assert plan.sends == [_expected("meta/send-template-hello-world-request.json")]


def test_notification_with_media_header_parameters_and_quick_replies_becomes_an_interactive_template() -> None:
    expected = _expected("meta/send-template-interactive-request.json")
    _header, body, first, second = expected["template"]["components"]
    # Genesys template parameters are text only: the currency and date_time examples become texts.
    body["parameters"] = [{"type": "text", "text": "text-string"}, {"type": "text", "text": "$100.99"}]
    expected["template"]["language"] = {"code": "en_US"}  # Genesys writes en-US, WhatsApp en_US
    template = {
        "id": "namespace@template-name",
        "language": "en-US",
        "header": {"type": "Media", "media": {"mediaType": "Image", "url": "http(s)://the-image-url"}},
        "body": {"text": "ignored for WhatsApp", "parameters": [{"name": "1", "text": "text-string"},
                                                                {"name": "2", "text": "$100.99"}]},
        "buttons": [
            {"type": "QuickReply", "index": 0, "text": "Yes", "payload": first["parameters"][0]["payload"]},
            {"type": "QuickReply", "index": 1, "text": "No", "payload": second["parameters"][0]["payload"]},
        ],
    }  # fmt: skip

    plan = _plan(_notification(template))

    assert plan.sends == [expected]


def test_notification_text_header_named_parameters_and_dynamic_url_button() -> None:
    template = {
        "id": "ns@order_update",
        "language": "en-GB",
        "header": {"type": "Text", "parameters": [{"name": "1", "text": "#1234"}]},
        "body": {"parameters": [{"name": "customer", "text": "Ana"}]},
        "buttons": [
            {"type": "Url", "index": 0, "url": "https://shop.example/o/{{1}}", "parameters": [{"text": "1234"}]},
            {"type": "PhoneNumber", "index": 1, "phoneNumber": "+15550100"},
        ],
    }

    (send,) = _plan(_notification(template)).sends

    assert send["template"] == {
        "name": "order_update",
        "language": {"code": "en_GB"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "#1234"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana", "parameter_name": "customer"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "1234"}]},
        ],
    }


@pytest.mark.parametrize(
    ("template", "match"),
    [({"id": "cannedresponse@1234", "language": "en_US"}, "canned"),
     ({"id": "ns@welcome"}, "language"),
     ({"id": "ns@"}, "name")],
)  # fmt: skip
def test_notifications_that_are_not_whatsapp_templates_are_invalid_message_structure(
    template: dict[str, Any], match: str
) -> None:
    with pytest.raises(UnsupportedOutbound, match=match) as refused:
        _plan(_notification(template))
    assert refused.value.reason == "InvalidMessageStructure"


# -- events and receipts -------------------------------------------------------------------------------


def test_typing_indicator_is_the_documented_request() -> None:
    expected = contract("meta/send-typing-indicator-request.json")
    assert typing_indicator(expected["message_id"]) == expected


def test_mark_read_is_the_documented_request() -> None:
    expected = contract("meta/send-mark-read-request.json")
    assert mark_read(expected["message_id"]) == expected


def test_typing_events_and_receipts_are_not_planned_as_messages() -> None:
    event = GenesysOutbound.model_validate(contract("genesys/outbound-event-typing.json"))
    with pytest.raises(UnsupportedOutbound, match="Event"):
        _plan(event)


# -- every form passes the emulated Graph API's validation of send bodies -------------------------------

_LONG = "An option with a title far longer than any WhatsApp row or button allows"
_FORMS: dict[str, GenesysOutbound] = {
    "text": _genesys("Hello https://example.com " + "x " * 3000),
    "image": _attachment("caption " * 200),
    "document": _attachment("manual", mime="application/pdf", filename="m.pdf"),
    "sticker": _attachment("hi", mime="image/webp", filename="s.webp"),
    "buttons": _genesys("Pick", _quick_replies(_LONG, _LONG + " 2", "x")),
    "list": _genesys("y" * 2000, _quick_replies(*[f"{_LONG} {n}" for n in range(10)])),
    "card": _genesys(None, [{"contentType": "Card", "card": {
        "title": "T" * 100, "description": "D" * 2000, "image": "https://i.example/a.png",
        "actions": [{"type": "Postback", "text": _LONG, "payload": "p"},
                    {"type": "Link", "text": "L", "url": "https://l.example"}]}}]),
    "cta": _genesys(None, [{"contentType": "Card", "card": {"title": "T", "actions": [
        {"type": "Link", "text": _LONG, "url": "https://l.example"}]}}]),
    "list picker": _genesys(None, [{"contentType": "ListPicker", "listPicker": {
        "sections": [{"title": _LONG, "items": [{"id": f"i{n}", "title": _LONG, "subtitle": _LONG * 2}
                                               for n in range(3)]},
                     {"items": [{"id": "j", "title": "J"}]}],
        "receivedMessage": {"header": _LONG * 2, "title": "Choose", "buttonLabel": _LONG}}}]),
    "date picker": _genesys(None, [{"contentType": "DatePicker", "datePicker": {
        "title": "When", "availableTimes": [{"dateTime": "2026-03-03T09:30:00Z", "duration": 900}]}}]),
    "location": _genesys("Here", [{"contentType": "Location", "location": {"latitude": 1.5, "longitude": 2.5}}]),
    "template": _notification({"id": "ns@t", "language": "en_US", "body": {"parameters": [{"text": "a"}]},
                               "buttons": [{"type": "QuickReply", "index": 0, "payload": "p"}]}),
}  # fmt: skip


@pytest.mark.parametrize("form", sorted(_FORMS))
def test_every_form_passes_the_emulated_graph_api_validation(form: str) -> None:
    plan = _plan(_FORMS[form])

    assert plan.sends
    for send in plan.sends:
        kind = send["type"]
        if plan.attachment is not None and kind == plan.attachment.whatsapp_type:
            send = {**send, kind: {**send[kind], "id": "4490709327384033"}}  # the uploaded media id
        validate_messages_body(send)  # raises the documented code-100 error on any violation
