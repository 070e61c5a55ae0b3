"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "EVENTS",
    "GENESYS_TOKENS",
    "INBOUND_MEDIA",
    "PARKED_EVENTS",
    "QUEUE_DEPTH",
    "SEND_OUTCOMES",
    "STAGE_LATENCY",
    "UPSTREAM_LATENCY",
    "WEBHOOKS",
    "WHATSAPP_ERRORS",
    "WHATSAPP_STATUSES",
    "WHATSAPP_UNKNOWN_FIELDS",
]

WEBHOOKS = Counter(
    "xypr_webhook_requests_total",
    "Webhook requests by source and outcome (accepted, bad_signature, malformed, unknown_tenant, unavailable…)",
    ["source", "outcome"],
)
EVENTS = Counter(
    "xypr_events_total",
    "Pipeline events by stage and outcome (processed, duplicate, retried, failed, dead_lettered, ignored)",
    ["stage", "outcome"],
)
STAGE_LATENCY = Histogram(
    "xypr_stage_latency_seconds",
    "Seconds from webhook acceptance to the end of a stage",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPSTREAM_LATENCY = Histogram(
    "xypr_upstream_request_seconds",
    "Calls to Meta and Genesys by upstream and outcome",
    ["upstream", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("xypr_queue_depth", "Messages waiting per queue (read at scrape time)", ["queue"])
PARKED_EVENTS = Gauge(
    "xypr_parked_events",
    "Events of conversations held by an outage, parked in the state database per queue (read at scrape time)",
    ["queue"],
)
WHATSAPP_STATUSES = Counter(
    "xypr_whatsapp_statuses_total",
    "Meta status webhooks by status and outcome (receipt, recorded, duplicate, unknown_message, ignored…)",
    ["status", "outcome"],
)
WHATSAPP_ERRORS = Counter(
    "xypr_whatsapp_errors_total",
    "Value-level `errors[]` of Meta webhooks (not tied to a message) by Meta error code",
    ["code"],
)
GENESYS_TOKENS = Counter(
    "xypr_genesys_token_requests_total",
    "Client-credentials token requests made to Genesys login, by outcome",
    ["outcome"],
)
WHATSAPP_UNKNOWN_FIELDS = Counter(
    "xypr_whatsapp_unknown_fields_total",
    "Fields Meta sent that this version does not know (kept, logged, never a failure), by where they appeared",
    ["where"],
)
INBOUND_MEDIA = Counter(
    "xypr_inbound_media_total",
    "Customer media copied from WhatsApp, by outcome (copied, reused, retried, unavailable)",
    ["outcome"],
)
SEND_OUTCOMES = Counter(
    "xypr_whatsapp_unknown_send_outcomes_total",
    "WhatsApp parts retried after an attempt with no answer: found accepted (by its status) or sent again",
    ["outcome"],
)
