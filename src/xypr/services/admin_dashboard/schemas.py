"""The operator API's answers: camelCase JSON, times as RFC 3339 UTC with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from xypr.audit.service import AuditRecord
from xypr.deadletters.service import DeadLetterView
from xypr.genesys.client import TokenStatus
from xypr.monitoring.overview import Overview
from xypr.services.admin_dashboard.people import LiveSession, Person
from xypr.services.tenant.operations import NumberStatus, VerificationResult, WebhookHelp
from xypr.state.timeline import MessageSummary, TimelineSearch

__all__ = [
    "AuditPage",
    "DeadLetterDetail",
    "DeadLetterPage",
    "DiscardRequest",
    "GenesysTokenView",
    "NewAdmin",
    "NewPassword",
    "OverviewView",
    "PersonView",
    "ReplayFilter",
    "ReplayResult",
    "SessionList",
    "TimelineView",
    "WebhookHelpView",
    "WhatsAppNumberView",
]


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python (both accepted in bodies)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class DependencyView(ApiModel):
    name: str
    ok: bool
    state: str
    detail: str


class ProcessView(ApiModel):
    id: str
    name: str
    kind: str
    index: int
    count: int
    pid: int
    host: str
    version: str
    started_at: datetime
    last_beat_at: datetime
    uptime_seconds: float
    state: str


class QueueView(ApiModel):
    name: str
    depth: int | None
    oldest_age_seconds: float | None = Field(description="None: the broker cannot tell (RabbitMQ)")
    parked: int | None = Field(
        description="Events of conversations held by an upstream outage, parked in the state database "
        "(retried from there in order); None: the database did not answer"
    )
    state: str
    note: str


class MinuteCount(ApiModel):
    minute: datetime
    inbound: int
    outbound: int


class FailureCount(ApiModel):
    reason: str
    count: int


class OverviewView(ApiModel):
    """`GET /ops/overview`: the health of everything, with states green / amber / red."""

    generated_at: datetime
    state: str
    tenant_id: str | None = Field(description="Set when the overview is scoped to the caller's tenant")
    dependencies: list[DependencyView]
    processes: list[ProcessView]
    queues: list[QueueView]
    messages_per_minute: list[MinuteCount]
    inbound_last_hour: int
    outbound_last_hour: int
    failures_by_reason: list[FailureCount] = Field(description="Messages failed in the last 24 h, by reason")
    failures_last_hour: int
    failure_state: str
    dead_letters: int | None
    dead_letter_state: str
    thresholds: dict[str, tuple[float, float]] = Field(description="name: (amber from, red from)")

    @classmethod
    def of(cls, overview: Overview, thresholds: dict[str, tuple[float, float]]) -> OverviewView:
        """From the service's overview."""
        tp = overview.throughput
        return cls(
            generated_at=_time(overview.generated_at) or datetime.now(UTC),
            state=overview.state,
            tenant_id=overview.tenant_id,
            dependencies=[DependencyView(name=d.name, ok=d.ok, state=d.state, detail=d.detail)
                          for d in overview.dependencies],
            processes=[
                ProcessView(
                    id=p.id, name=p.name, kind=p.kind, index=p.index, count=p.count, pid=p.pid, host=p.host,
                    version=p.version, started_at=_time(p.started_at) or datetime.now(UTC),
                    last_beat_at=_time(p.beat_at) or datetime.now(UTC), uptime_seconds=round(p.uptime_seconds, 1),
                    state=overview.process_state(p),
                )
                for p in overview.processes
            ],
            queues=[QueueView(name=q.name, depth=q.depth, oldest_age_seconds=q.oldest_age_seconds, parked=q.parked,
                              state=q.state, note=q.note) for q in overview.queues],
            messages_per_minute=[
                MinuteCount(minute=_time(m) or datetime.now(UTC), inbound=i, outbound=o)
                for m, i, o in zip(tp.minutes, tp.inbound, tp.outbound, strict=True)
            ],
            inbound_last_hour=tp.inbound_total,
            outbound_last_hour=tp.outbound_total,
            failures_by_reason=[FailureCount(reason=r, count=n) for r, n in overview.failures],
            failures_last_hour=overview.failures_last_hour,
            failure_state=overview.failure_state,
            dead_letters=overview.dead_letters,
            dead_letter_state=overview.dead_letter_state,
            thresholds=thresholds,
        )  # fmt: skip


class TimelineEventView(ApiModel):
    at: datetime
    step: str = Field(
        description="received, transformed, sent, delivered, read, failed, dead_lettered, "
        "retried (replayed from the dead letters), discarded"
    )
    label: str
    detail: str


class MessageView(ApiModel):
    id: str
    tenant_id: str
    direction: str
    kind: str
    status: str
    wamid: str | None
    genesys_message_id: str | None
    conversation_id: str | None
    genesys_conversation_id: str | None
    wa_id: str | None
    created_at: datetime
    error: str | None
    timeline: list[TimelineEventView] | None = None

    @classmethod
    def of(cls, message: MessageSummary) -> MessageView:
        """From the timeline service's summary."""
        return cls(
            id=message.id, tenant_id=message.tenant_id, direction=message.direction, kind=message.kind,
            status=message.status, wamid=message.wamid, genesys_message_id=message.genesys_message_id,
            conversation_id=message.conversation_id, genesys_conversation_id=message.genesys_conversation_id,
            wa_id=message.wa_id, created_at=message.created_at, error=message.error,
            timeline=[TimelineEventView(at=e.at, step=e.step, label=e.label, detail=e.detail) for e in message.events]
            or None,
        )  # fmt: skip


class TimelineView(ApiModel):
    """`GET /messages/timeline`: one message with its timeline, or a conversation's messages, or none."""

    query: str
    found: int
    messages: list[MessageView]

    @classmethod
    def of(cls, search: TimelineSearch) -> TimelineView:
        """From the timeline service's search."""
        return cls(
            query=search.query, found=len(search.messages), messages=[MessageView.of(m) for m in search.messages]
        )


class DeadLetterSummary(ApiModel):
    id: str
    queue: str
    tenant_id: str | None
    conversation: str
    error: str
    attempts: int
    dead_at: datetime
    age_seconds: float

    @classmethod
    def of(cls, letter: DeadLetterView) -> DeadLetterSummary:
        """From the dead-letter service's view (without the payload)."""
        return cls(
            id=letter.id, queue=letter.queue, tenant_id=letter.tenant_id, conversation=letter.conversation,
            error=letter.error, attempts=letter.attempts, dead_at=_time(letter.dead_at) or datetime.now(UTC),
            age_seconds=round(letter.age_seconds, 1),
        )  # fmt: skip


class DeadLetterDetail(DeadLetterSummary):
    """One dead letter with its payload and headers, secrets redacted."""

    accepted_at: datetime | None
    payload: Any
    headers: dict[str, str]

    @classmethod
    def of(cls, letter: DeadLetterView) -> DeadLetterDetail:
        """From the dead-letter service's view."""
        return cls(
            **DeadLetterSummary.of(letter).model_dump(), accepted_at=_time(letter.accepted_at),
            payload=letter.payload, headers=letter.headers,
        )  # fmt: skip


class DeadLetterPage(ApiModel):
    """`GET /dlq`: the matching dead letters (oldest first) and how many match in all."""

    items: list[DeadLetterSummary]
    total: int


# The queues that have dead letters (xypr.topology.QUEUES), as the API document lists them.
QueueName = Literal["inbound.whatsapp", "send.genesys", "outbound.genesys", "send.whatsapp"]


class ReplayFilter(ApiModel):
    """`POST /dlq/replay`: which dead letters to replay (all given criteria must match)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    queue: QueueName | None = None
    error: str | None = Field(default=None, max_length=200, description="Part of the error text")
    older_than_seconds: float | None = Field(default=None, ge=0)

    @field_validator("older_than_seconds", mode="before")
    @classmethod
    def _a_number_not_a_boolean(cls, value: object) -> object:
        # JSON's true/false are not numbers, whatever Python's bool says.
        if isinstance(value, bool):
            raise ValueError("must be a number of seconds")
        return value


class ReplayResult(ApiModel):
    replayed: int


class DiscardRequest(ApiModel):
    """`POST /dlq/{id}/discard`: why this message must never be processed (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class AuditEntryView(ApiModel):
    id: str
    at: datetime
    actor: str
    actor_role: str
    tenant_id: str | None
    action: str
    target: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntryView:
        """From the audit service's record."""
        return cls(
            id=record.id, at=record.at, actor=record.actor, actor_role=record.actor_role, tenant_id=record.tenant_id,
            action=record.action, target=record.target, details=record.details,
        )  # fmt: skip


class AuditPage(ApiModel):
    """`GET /audit`: newest first, with the total."""

    items: list[AuditEntryView]
    total: int
    limit: int
    offset: int


class PersonView(ApiModel):
    id: str
    provider: str
    role: str
    tenant_id: str | None
    email: str | None
    name: str | None
    status: str
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, person: Person) -> PersonView:
        """From the people service."""
        return cls(**{name: getattr(person, name) for name in cls.model_fields})


class SessionView(ApiModel):
    session_id: str
    user_id: str
    email: str | None
    name: str | None
    role: str
    tenant_id: str | None
    last_refresh_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, live: LiveSession) -> SessionView:
        """From the people service."""
        return cls(**{name: getattr(live, name) for name in cls.model_fields})


class SessionList(ApiModel):
    items: list[SessionView]


class NewAdmin(ApiModel):
    """`POST /users`: a Xypr administrator."""

    model_config = ConfigDict(extra="forbid")

    # The same rule as the login's: something, an @, something (white space around it is trimmed).
    email: str = Field(max_length=320, pattern=r"^\s*[^@\s][\s\S]*@[\s\S]*[^@\s]\s*$")
    password: str = Field(min_length=12, max_length=1000)
    name: str | None = Field(default=None, max_length=200)


class NewPassword(ApiModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=12, max_length=1000)


class GenesysTokenView(ApiModel):
    """The tenant's Genesys client-credentials token, described (never the token)."""

    cached: bool
    healthy: bool
    refreshed_at: datetime | None
    expires_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    @classmethod
    def of(cls, status: TokenStatus) -> GenesysTokenView:
        """From the Genesys client's status."""
        return cls(
            cached=status.cached, healthy=status.healthy, refreshed_at=_time(status.refreshed_at),
            expires_at=_time(status.expires_at), last_error=status.last_error,
            last_error_at=_time(status.last_error_at),
        )  # fmt: skip


class WhatsAppNumberView(ApiModel):
    """What Meta says about the number with the stored token."""

    token_valid: bool
    message: str
    throughput: str | None = Field(description="Meta's throughput level, e.g. STANDARD (80 msg/s) or HIGH")
    quality_rating: str | None
    verified_name: str | None

    @classmethod
    def of(cls, status: NumberStatus) -> WhatsAppNumberView:
        """From the tenant operations."""
        return cls(**{name: getattr(status, name) for name in cls.model_fields})


class WebhookHelpView(ApiModel):
    """Where to point Meta and Genesys, the verify token masked, and when each last posted."""

    whatsapp_url: str
    genesys_url: str
    verify_token_masked: str
    last_whatsapp_at: datetime | None
    last_genesys_at: datetime | None

    @classmethod
    def of(cls, help_: WebhookHelp) -> WebhookHelpView:
        """From the tenant operations."""
        return cls(
            whatsapp_url=help_.whatsapp_url, genesys_url=help_.genesys_url,
            verify_token_masked=help_.verify_token_masked, last_whatsapp_at=_time(help_.last_whatsapp_at),
            last_genesys_at=_time(help_.last_genesys_at),
        )  # fmt: skip


class VerificationView(ApiModel):
    ok: bool
    status_code: int | None
    message: str

    @classmethod
    def of(cls, result: VerificationResult) -> VerificationView:
        """From the tenant operations."""
        return cls(ok=result.ok, status_code=result.status_code, message=result.message)
