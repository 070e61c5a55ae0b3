"""Every inbound WhatsApp message type (published payloads and our own) → the exact Open Messaging request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.contracts import CONTRACTS
from xypr.sandbox.genesys.wire import InboundMessage, InboundStructuredResponse
from xypr.transform.inbound import (
    InboundFacts,
    QuickReply,
    ReferencedMessage,
    StoredMedia,
    message_summary,
    quote,
    referenced_wamid,
    to_genesys_inbound,
)
from xypr.whatsapp.models import WaContact, WaInboundMessage

PAYLOADS = Path(__file__).parent / "payloads" / "meta"

SHEENA = {"id": "16505551234", "idType": "Phone", "nickname": "Sheena Nelson",
          "firstName": "Sheena", "lastName": "Nelson"}  # fmt: skip
PABLO = {"id": "16505551234", "idType": "Phone", "nickname": "Pablo Morales",
         "firstName": "Pablo", "lastName": "Morales"}  # fmt: skip
SHEENA_BSUID = {"id": "US.13491208655302741918", "idType": "Opaque", "nickname": "Sheena Nelson",
                "firstName": "Sheena", "lastName": "Nelson"}  # fmt: skip
MEDIA_URL = "https://media.xypr.test/media/tenant/t1/media/x?expires=1&signature=s"


def _channel(wamid: str, party: dict[str, str], time: str) -> dict[str, Any]:
    return {"messageId": wamid, "from": party, "time": time}


def _load(name: str) -> tuple[WaInboundMessage, WaContact | None]:
    path = CONTRACTS / "meta" / name if (CONTRACTS / "meta" / name).exists() else PAYLOADS / name
    value = json.loads(path.read_text())["entry"][0]["changes"][0]["value"]
    contacts = value.get("contacts") or []
    contact = WaContact.model_validate(contacts[0]) if contacts else None
    return WaInboundMessage.model_validate(value["messages"][0]), contact


@dataclass(frozen=True)
class Case:
    """One payload file, what the worker found out about it, and the request Genesys must get."""

    payload: str
    expected: dict[str, Any]
    facts: InboundFacts = field(default_factory=InboundFacts)
    kind: str = "message"


CASES: dict[str, Case] = {
    "text": Case(
        "webhook-text.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-06-08T20:59:43.000Z"),
         "text": "Does it come in another color?"},
    ),
    "image copied to our store": Case(
        "webhook-image.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-04-11T04:08:16.000Z"),
         "text": "Taj Mahal",
         "content": [{"contentType": "Attachment",
                      "attachment": {"mediaType": "Image", "url": MEDIA_URL, "mime": "image/jpeg",
                                     "filename": "image.jpg", "text": "Taj Mahal", "sha256": "49f2"}}]},
        InboundFacts(media=StoredMedia(MEDIA_URL, "image/jpeg", "image.jpg", "49f2")),
    ),
    "image that could not be retrieved": Case(
        "webhook-image.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-04-11T04:08:16.000Z"),
         "text": "[The customer sent an image that could not be retrieved from WhatsApp.]\nTaj Mahal"},
    ),
    "voice note": Case(
        "webhook-audio-voice.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUI2NUQ0QjYxRTE0QkM5NjA0MgA=", SHEENA,
                             "2025-06-16T19:40:11.000Z"),
         "content": [{"contentType": "Attachment",
                      "attachment": {"mediaType": "Audio", "url": MEDIA_URL, "mime": "audio/ogg",
                                     "filename": "voice-message.ogg"}}]},
        InboundFacts(media=StoredMedia(MEDIA_URL, "audio/ogg", "voice-message.ogg")),
    ),
    "voice note too large": Case(
        "webhook-audio-voice.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUI2NUQ0QjYxRTE0QkM5NjA0MgA=", SHEENA,
                             "2025-06-16T19:40:11.000Z"),
         "text": "[The customer sent a voice message that could not be retrieved from WhatsApp "
                 "(20.0 MB is over the 16.0 MB limit for audio messages).]"},
        InboundFacts(media_problem="20.0 MB is over the 16.0 MB limit for audio messages"),
    ),
    "forwarded video": Case(
        "webhook-video.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTg1NzNENDI4QUY3QkQ0MzNBMgA=", SHEENA,
                             "2025-06-16T19:43:32.000Z"),
         "text": "[Forwarded]\nUnboxing the blender",
         "content": [{"contentType": "Attachment",
                      "attachment": {"mediaType": "Video", "url": MEDIA_URL, "mime": "video/mp4",
                                     "filename": "video.mp4", "text": "Unboxing the blender"}}]},
        InboundFacts(media=StoredMedia(MEDIA_URL, "video/mp4", "video.mp4")),
    ),
    "document with its filename": Case(
        "webhook-document.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTkzNEE1Q0Q1OTg1RDVCQzFCQgA=", SHEENA,
                             "2025-06-16T19:48:27.000Z"),
         "text": "Invoice for order 4411",
         "content": [{"contentType": "Attachment",
                      "attachment": {"mediaType": "File", "url": MEDIA_URL, "mime": "application/pdf",
                                     "filename": "invoice-4411.pdf", "text": "Invoice for order 4411",
                                     "sha256": "abc1"}}]},
        InboundFacts(media=StoredMedia(MEDIA_URL, "application/pdf", "invoice-4411.pdf", "abc1")),
    ),
    "sticker": Case(
        "webhook-sticker.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTc5QUE4RUVDM0Q5OUYyRjE3MAA=", SHEENA,
                             "2025-06-16T19:50:20.000Z"),
         "content": [{"contentType": "Attachment",
                      "attachment": {"mediaType": "Image", "url": MEDIA_URL, "mime": "image/webp",
                                     "filename": "sticker.webp"}}]},
        InboundFacts(media=StoredMedia(MEDIA_URL, "image/webp", "sticker.webp")),
    ),
    "frequently forwarded image without caption, not retrieved": Case(
        "webhook-image-frequently-forwarded.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUE1OTg3RTdCRjM5RjlFQzg1QwA=", SHEENA,
                             "2025-06-16T20:11:40.000Z"),
         "text": "[Forwarded many times]\n[The customer sent an image that could not be retrieved from WhatsApp.]"},
    ),
    "location with a maps link": Case(
        "webhook-location.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTU2MjZEMDBGRkE3MENEMDE0RQA=", SHEENA,
                             "2025-04-11T04:08:16.000Z"),
         "text": "📍 Location: Philz Coffee\n101 Forest Ave, Palo Alto, CA 94301\nhttps://philzcoffee.com/\n"
                 "37.44221496582, -122.16165924072\n"
                 "https://www.google.com/maps/search/?api=1&query=37.44221496582,-122.16165924072"},
    ),
    "contacts as a readable card": Case(
        "webhook-contacts.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-04-11T04:08:16.000Z"),
         "text": "👤 Contact: Lucía Gómez\nOrganisation: Google\nPhone (MOBILE): +1 (983) 555-2319 · on WhatsApp"},
    ),
    "two contacts with every vCard field": Case(
        "webhook-contacts-two-cards.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTJDNTdGQjYyQzBCQTZEMUE4RgA=", SHEENA,
                             "2025-06-16T20:16:40.000Z"),
         "text": "👤 Contact: Lucía Gómez\nOrganisation: Google, Support, Lead\n"
                 "Phone (MOBILE): +1 (983) 555-2319 · on WhatsApp\nPhone (HOME): +1 (983) 555-0000\n"
                 "Email (WORK): lucia@example.com\nWeb (WORK): https://example.com/lucia\n"
                 "Address (WORK): 1 Hacker Way, Menlo Park, CA, 94025, United States\nBirthday: 1990-05-17\n"
                 "\n👤 Contact: Tomás Ruiz\nPhone: +5215512345678 · on WhatsApp"},
    ),
    "button reply to a message we do not know": Case(
        "webhook-interactive-button-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=", SHEENA,
                             "2025-06-15T22:05:36.000Z"),
         "text": "Selected: Cancel"},
    ),
    "button reply to our quick replies": Case(
        "webhook-interactive-button-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=", SHEENA,
                             "2025-06-15T22:05:36.000Z"),
         "type": "Structured",
         "content": [{"contentType": "ButtonResponse",
                      "buttonResponse": {"type": "QuickReply", "text": "Cancel my order", "payload": "CANCEL_ORDER"}}],
         "originatingMessageId": "gen-msg-1"},
        InboundFacts(referenced=ReferencedMessage(
            "Do you want to keep your order?", "gen-msg-1",
            (QuickReply("keep-button", "Keep it", "KEEP_ORDER"),
             QuickReply("cancel-button", "Cancel my order", "CANCEL_ORDER")))),
        kind="structured",
    ),
    "button reply (docs) to a known message without quick replies quotes it": Case(
        "webhook-interactive-button-reply-docs.json",
        {"channel": _channel("wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQThBREYwNzc2RDc2QjA1QTIwMgA=", PABLO,
                             "2024-04-30T20:46:43.000Z"),
         "text": '↪ Replying to: "Your appointment is on Monday. Change or keep?"\nSelected: Change'},
        InboundFacts(referenced=ReferencedMessage("Your appointment is on Monday. Change or keep?", "gen-msg-2")),
    ),
    "button reply whose id we did not offer stays text": Case(
        "webhook-interactive-button-reply-docs.json",
        {"channel": _channel("wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQThBREYwNzc2RDc2QjA1QTIwMgA=", PABLO,
                             "2024-04-30T20:46:43.000Z"),
         "text": '↪ Replying to: "Pick one"\nSelected: Change'},
        InboundFacts(referenced=ReferencedMessage("Pick one", "gen-msg-2", (QuickReply("keep", "Keep", "K"),))),
    ),
    "list reply to our list": Case(
        "webhook-interactive-list-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJDQ0NDM0FEODY4ODkzOTc5RgA=", SHEENA,
                             "2025-06-13T22:42:55.000Z"),
         "type": "Structured",
         "content": [{"contentType": "ButtonResponse",
                      "buttonResponse": {"type": "QuickReply", "text": "Priority Mail Express",
                                         "payload": "shipping:express"}}],
         "originatingMessageId": "gen-msg-3"},
        InboundFacts(referenced=ReferencedMessage(
            "Choose a shipping option", "gen-msg-3",
            (QuickReply("priority_express", "Priority Mail Express", "shipping:express"),))),
        kind="structured",
    ),
    "list reply (docs) as text": Case(
        "webhook-interactive-list-reply-docs.json",
        {"channel": _channel("wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTZDMzFGRUFBQjlDMzIzMzlEQwA=", PABLO,
                             "2024-04-08T16:57:23.000Z"),
         "text": "Selected: Priority Mail Express — Next Day to 2 Days"},
    ),
    "flow answer summarised": Case(
        "webhook-interactive-nfm-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ5RjIxOThDQTk1Mzk3NkQzMgA=", SHEENA,
                             "2025-06-16T20:00:01.000Z"),
         "text": "📋 Form answers\ndelivery_date: 2025-06-20\ntime_slot: morning\nleave_at_door: yes\n"
                 "items: blender, jug"},
    ),
    "template quick reply": Case(
        "webhook-button-template-quick-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0M0MxQzQzMUJCMTMwNUZFOQA=", SHEENA,
                             "2025-06-16T16:24:05.000Z"),
         "text": "Selected: Unsubscribe"},
    ),
    "template quick reply to our template's button": Case(
        "webhook-button-template-quick-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0M0MxQzQzMUJCMTMwNUZFOQA=", SHEENA,
                             "2025-06-16T16:24:05.000Z"),
         "type": "Structured",
         "content": [{"contentType": "ButtonResponse",
                      "buttonResponse": {"type": "Button", "text": "Unsubscribe", "payload": "Unsubscribe"}}],
         "originatingMessageId": "gen-msg-4"},
        InboundFacts(referenced=ReferencedMessage(
            "Our summer sale starts today!", "gen-msg-4",
            (QuickReply("btn-0", "Unsubscribe", "Unsubscribe", "Button"),))),
        kind="structured",
    ),
    "reaction to a known message": Case(
        "webhook-reaction.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-06-08T21:52:24.000Z"),
         "text": 'Reacted 👍 to: "Yes, it comes in blue and green."'},
        InboundFacts(referenced=ReferencedMessage("Yes, it comes in blue and green.")),
    ),
    "reaction to an unknown message": Case(
        "webhook-reaction.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", SHEENA,
                             "2025-06-08T21:52:24.000Z"),
         "text": "Reacted 👍 to a message"},
    ),
    "reaction removed": Case(
        "webhook-reaction-removed.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUY3MUI5QjI2NDRFMDNFNkM0QQA=", SHEENA,
                             "2025-06-16T20:13:20.000Z"),
         "text": 'Removed their reaction to: "Yes, it comes in blue and green."'},
        InboundFacts(referenced=ReferencedMessage("Yes, it comes in blue and green.")),
    ),
    "order summarised": Case(
        "webhook-order.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTEyQjFGNzI1QTQxMjI5QTMyOQA=", SHEENA,
                             "2025-06-16T17:52:05.000Z"),
         "text": "🛒 Order from catalog 194836987003835:\n• 2 x di9ozbzfi4 — 30 USD each\n"
                 "• 1 x nqryix03ez — 25 USD each\nTotal: 85 USD"},
    ),
    "text from a click-to-WhatsApp ad": Case(
        "webhook-text-referral-ctwa.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=", SHEENA,
                             "2025-06-18T19:46:32.000Z"),
         "text": '📣 Came from an ad: "Chat with us" — Summer Succulents are here! (https://fb.me/3cr4Wqqkv)\n'
                 "Hello! Can I get more info on this?"},
    ),
    "text about a product": Case(
        "webhook-text-context-referred-product.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=", SHEENA,
                             "2025-06-15T19:46:40.000Z"),
         "text": "🛍 About product di9ozbzfi4 (catalog 194836987003835)\nIs this still available?"},
    ),
    "reply to a known message quotes it, cut when long": Case(
        "webhook-text-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZFNDI4QkQ3MzA2OTRDOUYyNQA=", SHEENA,
                             "2025-06-16T20:10:00.000Z"),
         "text": '↪ Replying to: "We have it in blue, green and red; the green one ships tomorrow and the others '
                 'next week, if you…"\nYes please, the green one'},
        InboundFacts(referenced=ReferencedMessage(
            "We have it in blue, green and red;\nthe green one ships tomorrow and the others next week, "
            "if you order before Friday.")),
    ),
    "reply to an unknown message": Case(
        "webhook-text-reply.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZFNDI4QkQ3MzA2OTRDOUYyNQA=", SHEENA,
                             "2025-06-16T20:10:00.000Z"),
         "text": "Yes please, the green one"},
    ),
    "number change (no contacts block: the stored name is used)": Case(
        "webhook-system-user-changed-number.json",
        {"channel": _channel("wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==", SHEENA,
                             "2025-06-18T17:55:42.000Z"),
         "text": "[The customer changed their WhatsApp number from 16505551234 to 12195555358. "
                 "Their new messages come from 12195555358.]"},
        InboundFacts(customer_name="Sheena Nelson"),
    ),
    "edit of a known message": Case(
        "webhook-edit.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJFRDEzNTQxNDVBNzE1RDQ4QgA=", SHEENA,
                             "2025-06-16T20:05:00.000Z"),
         "text": '✏️ The customer edited a message.\nBefore: "Does it come in another color?"\n'
                 "Now: Does it come in another colour, say green?"},
        InboundFacts(referenced=ReferencedMessage("Does it come in another color?")),
    ),
    "edit of an unknown message": Case(
        "webhook-edit.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJFRDEzNTQxNDVBNzE1RDQ4QgA=", SHEENA,
                             "2025-06-16T20:05:00.000Z"),
         "text": "✏️ The customer edited a message.\nNow: Does it come in another colour, say green?"},
    ),
    "revoke of a known message": Case(
        "webhook-revoke.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTFEOEM2OTQ0OEQ3M0UwNUU5OQA=", SHEENA,
                             "2025-06-16T20:06:50.000Z"),
         "text": '🗑 The customer deleted a message: "Does it come in another color?"'},
        InboundFacts(referenced=ReferencedMessage("Does it come in another color?")),
    ),
    "revoke of an unknown message": Case(
        "webhook-revoke.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTFEOEM2OTQ0OEQ3M0UwNUU5OQA=", SHEENA,
                             "2025-06-16T20:06:50.000Z"),
         "text": "🗑 The customer deleted a message."},
    ),
    "unsupported, with Meta's error title": Case(
        "webhook-unsupported.json",
        {"channel": _channel("wamid.HBgLMTQyMDU1NTA3NDkVAgASGBI5N0MwRjg0RTVBNUI1RDA2OTkA", SHEENA,
                             "2025-06-16T16:18:22.000Z"),
         "text": "[The customer sent a message that WhatsApp cannot deliver to this channel "
                 "(Message type unknown — Message type is currently not supported).]"},
    ),
    "unknown (older payload), with Meta's error title": Case(
        "webhook-unknown.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUMyMDlDNkFBNjUzMzQ2MDdFRgA=", SHEENA,
                             "2025-06-16T20:15:00.000Z"),
         "text": "[The customer sent a message that WhatsApp cannot deliver to this channel "
                 "(Unsupported message type — Message type is not currently supported).]"},
    ),
    "BSUID only: opaque id, named by profile name": Case(
        "webhook-text-bsuid-only.json",
        {"channel": _channel("wamid.HBgYVVMuMTM0OTEyMDg2NTUzMDI3NDE5MTgVAgASGBQzQTJCQ0U5MDQ2NzM1QzQ4RTZGQgA=",
                             SHEENA_BSUID, "2026-04-15T12:00:00.000Z"),
         "text": "Hi, I ordered a blender last week"},
    ),
    "BSUID only, username only": Case(
        "webhook-text-bsuid-username-only.json",
        {"channel": _channel("wamid.HBgYVVMuMTcwMDkyMzg0NzU2MTAyOTM4NDcVAgASGBQzQTVFMEY4QjY4QTA5QTM1NDkyRAA=",
                             {"id": "US.17009238475610293847", "idType": "Opaque", "nickname": "@quietbuyer"},
                             "2026-04-15T12:01:00.000Z"),
         "text": "hello?"},
    ),
    "phone and BSUID: the phone stays the id": Case(
        "webhook-text-both-ids.json",
        {"channel": _channel("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTBGOTk1NjEyQjNDN0QxN0YyOQA=", SHEENA,
                             "2026-04-15T12:02:00.000Z"),
         "text": "Same person, phone still shared"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_inbound_message_becomes_the_expected_open_messaging_request(case: Case) -> None:
    message, contact = _load(case.payload)

    inbound = to_genesys_inbound(message, contact, case.facts)

    assert (inbound.kind, inbound.body) == (case.kind, case.expected)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_every_request_passes_the_published_open_messaging_model(case: Case) -> None:
    message, contact = _load(case.payload)

    inbound = to_genesys_inbound(message, contact, case.facts)

    model = InboundStructuredResponse if inbound.kind == "structured" else InboundMessage
    model.model_validate(inbound.body)  # what the Genesys emulator enforces: required fields, enums


def _message_payloads() -> list[Path]:
    files = [*sorted((CONTRACTS / "meta").glob("webhook-*.json")), *sorted(PAYLOADS.glob("webhook-*.json"))]
    return [path for path in files if json.loads(path.read_text())["entry"][0]["changes"][0]["value"].get("messages")]


def test_every_published_and_own_message_payload_has_a_case() -> None:
    covered = {case.payload for case in CASES.values()}

    missing = [path.name for path in _message_payloads() if path.name not in covered]

    assert missing == []
    assert len(covered) >= 30


def test_a_message_with_nothing_to_show_still_says_that_it_arrived() -> None:
    message = WaInboundMessage.model_validate({"from": "1", "id": "wamid.E", "timestamp": "1", "type": "text"})

    body = to_genesys_inbound(message, None).body

    assert body["text"] == "[The customer sent a text message with no content.]"


@pytest.mark.parametrize(
    ("payload", "wamid"),
    [
        ("webhook-reaction.json", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"),
        ("webhook-edit.json", "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="),
        ("webhook-revoke.json", "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="),
        ("webhook-text-reply.json", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QjA1RjE2QTk3NTFFN0YwQzYA"),
        ("webhook-interactive-list-reply.json", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA"),
        ("webhook-text.json", None),
    ],
)
def test_the_referenced_wamid_is_the_one_reacted_to_edited_deleted_or_replied_to(payload: str, wamid: str) -> None:
    message, _ = _load(payload)

    assert referenced_wamid(message) == wamid


@pytest.mark.parametrize(
    ("payload", "summary"),
    [
        ("webhook-text.json", "Does it come in another color?"),
        ("webhook-image.json", "Taj Mahal"),
        ("webhook-audio-voice.json", "[voice message]"),
        ("webhook-sticker.json", "[sticker]"),
        ("webhook-location.json", "📍 Philz Coffee"),
        ("webhook-contacts.json", "👤 Lucía Gómez"),
        ("webhook-interactive-list-reply.json", "Priority Mail Express"),
        ("webhook-button-template-quick-reply.json", "Unsubscribe"),
        ("webhook-order.json", "🛒 order of 2 item(s)"),
        ("webhook-edit.json", "Does it come in another colour, say green?"),
        ("webhook-unsupported.json", None),
    ],
)
def test_the_summary_kept_for_later_quotes_says_what_the_message_says(payload: str, summary: str | None) -> None:
    message, _ = _load(payload)

    assert message_summary(message) == summary


def test_quotes_are_one_line_and_cut_at_one_hundred_characters() -> None:
    quoted = quote("a\n" + "b" * 200)

    assert quoted is not None
    assert quoted.startswith('"a b')
    assert quoted.endswith('…"')
    assert len(quoted) == 102
    assert quote("   ") is None
