"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["EVENTS", "QUEUE_DEPTH", "STAGE_LATENCY", "UPSTREAM_LATENCY", "WEBHOOKS"]

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
