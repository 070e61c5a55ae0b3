"""What the webhooks take, for the OpenAPI document: the envelopes Meta and Genesys POST, and their signature.

The routers read the raw body themselves (the signature is computed over its exact bytes), so the
bodies are declared here rather than as pydantic parameters. The schemas name what the routers need
to route an event (Meta's `object` and `metadata.phone_number_id`, Genesys's `channel.id` and
`channel.to.id`) and leave the rest open, as the upstream formats grow.
"""

from __future__ import annotations

from typing import Any

from xypr.services.openapi import component_schema, error_responses

__all__ = ["GENESYS_WEBHOOK", "WHATSAPP_VERIFY", "WHATSAPP_WEBHOOK"]

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_MESSAGES_VALUE: dict[str, Any] = {
    "type": "object",
    "required": ["messaging_product", "metadata"],
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "metadata": {
            "type": "object",
            "required": ["phone_number_id"],
            "properties": {
                "phone_number_id": {"type": "string", "pattern": "^[0-9]{1,32}$"},
                "display_phone_number": {"type": "string", "maxLength": 32},
            },
        },
        # Items are checked one by one downstream: a bad one is dead-lettered with its reason, never
        # refusing the others.
        "contacts": {"type": "array", "items": {"type": "object"}},
        "messages": {"type": "array", "items": {"type": "object"}},
        "statuses": {"type": "array", "items": {"type": "object"}},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


component_schema(
    "WhatsAppWebhook",
    {
        "type": "object",
        "description": "Meta's webhook envelope (WhatsApp Business Account); one POST may carry many changes",
        "required": ["object"],
        "properties": {
            "object": {"const": "whatsapp_business_account"},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "description": "The WhatsApp Business Account id"},
                        "changes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "value"],
                                "properties": {
                                    "field": {"type": "string", "description": "messages (others are ignored)"},
                                    "value": {"type": "object"},
                                },
                                # Only `messages` changes are read (and so checked); others are not ours.
                                "if": {"properties": {"field": {"const": "messages"}}},
                                "then": {"properties": {"value": _MESSAGES_VALUE}},
                            },
                        },
                    },
                },
            },
        },
        "examples": [
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "102290129340398",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550783881",
                                        "phone_number_id": "106540352242922",
                                    },
                                    "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                                    "messages": [
                                        {
                                            "from": "16505551234",
                                            "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                            "timestamp": "1749416383",
                                            "type": "text",
                                            "text": {"body": "Does it come in another color?"},
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    },
)

component_schema(
    "GenesysWebhook",
    {
        "type": "object",
        "description": "An Open Messaging outbound message, event or receipt, as Genesys POSTs it",
        "required": ["id", "channel", "type"],
        "properties": {
            "id": _ID,
            "type": {"type": "string", "enum": ["Text", "Structured", "Receipt", "Event"]},
            "direction": {"type": "string", "enum": ["Outbound"]},
            "text": {"type": "string", "maxLength": 4096},
            "channel": {
                "type": "object",
                "required": ["id", "to"],
                "properties": {
                    "id": {**_ID, "description": "The Open Messaging integration id (routes the tenant)"},
                    "platform": {"const": "Open"},
                    "type": {"type": "string", "enum": ["Private"]},
                    "messageId": _ID,
                    "time": {"type": "string", "format": "date-time"},
                    "to": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {**_ID, "maxLength": 64},
                            "idType": {"enum": ["Phone", "Opaque", "Email"]},
                        },
                    },
                    "from": {"type": "object", "properties": {"id": _ID}},
                },
            },
        },
        "examples": [
            {
                "id": "2d5b4fd4-c6e0-4a40-92b1-bf6ff0d2d6c5",
                "channel": {
                    "id": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11",
                    "platform": "Open",
                    "type": "Private",
                    "to": {"id": "16505551234", "idType": "Phone"},
                    "from": {"id": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11"},
                    "time": "2026-11-22T10:00:00.000Z",
                    "messageId": "2d5b4fd4-c6e0-4a40-92b1-bf6ff0d2d6c5",
                },
                "type": "Text",
                "text": "Hello! How can I help?",
                "direction": "Outbound",
            }
        ],
    },
)

component_schema(
    "WebhookAccepted",
    {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"const": "accepted"},
            "events": {"type": "integer", "description": "Events stored for processing"},
            "parked": {"type": "integer", "description": "Events parked for a suspended tenant"},
        },
    },
)


def _signed(schema: str, signature: str) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "X-Hub-Signature-256",
                "in": "header",
                "required": True,
                "description": signature,
                "schema": {"type": "string", "maxLength": 200},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
    }


_ACCEPTED = {
    200: {
        "description": "Stored durably (or parked for a suspended tenant); Meta and Genesys stop retrying",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookAccepted"}}},
    }
}
_REFUSED = error_responses(400, 401, 403, 404, 413, 503)

WHATSAPP_WEBHOOK: dict[str, Any] = {
    "openapi_extra": _signed("WhatsAppWebhook", "sha256=<hex HMAC-SHA256 of the raw body with the Meta app secret>"),
    "responses": {**_ACCEPTED, **_REFUSED},
}
GENESYS_WEBHOOK: dict[str, Any] = {
    "openapi_extra": _signed("GenesysWebhook", "base64 HMAC-SHA256 of the raw body with the integration's secret"),
    "responses": {**_ACCEPTED, **_REFUSED},
}
WHATSAPP_VERIFY: dict[str, Any] = {
    "openapi_extra": {
        "parameters": [
            {"name": "hub.mode", "in": "query", "required": True, "schema": {"const": "subscribe"}},
            {
                "name": "hub.verify_token",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "maxLength": 2000},
            },
            {
                "name": "hub.challenge",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            },
        ]
    },
    "responses": {
        200: {"description": "hub.challenge, echoed", "content": {"text/plain": {"schema": {"type": "string"}}}},
        403: {
            "description": "Not a subscription request, or the verify token is no tenant's",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
        400: {
            "description": "Invalid request",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
}
