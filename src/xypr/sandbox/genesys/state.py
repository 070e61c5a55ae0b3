"""In-memory state and behaviour of the emulated Genesys Cloud (one asyncio loop; no await inside a mutation)."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx

from xypr.core.http import create_http_client
from xypr.core.retry import RetryPolicy
from xypr.sandbox.delivery import deliver, retry_on_timeout_429_5xx
from xypr.sandbox.genesys.accounts import SandboxAccounts
from xypr.sandbox.genesys.webhooks import encode_body, genesys_time, sign

__all__ = ["AccessToken", "Fault", "GenesysSandbox", "Integration", "ReceivedRecord", "SentRecord", "ServiceClient"]


@dataclass(slots=True)
class Integration:
    """An Open Messaging integration, the OAuth client that may use it, and its outbound webhook."""

    integration_id: str
    name: str
    client_id: str
    client_secret: str
    webhook_url: str
    webhook_secret: str
    org_id: str
    # Integrations created through the API are `Initiated` until `completes_at` (Genesys creates them async).
    create_status: str = "Completed"
    completes_at: float = 0.0
    date_created: str = ""

    def current_create_status(self) -> str:
        """`createStatus` now: Initiated until the creation completes."""
        return (
            "Completed"
            if self.create_status == "Initiated" and time.time() >= self.completes_at
            else self.create_status
        )


@dataclass(slots=True)
class ServiceClient:
    """A client-credentials OAuth client of an organisation, registered without an integration."""

    client_id: str
    client_secret: str
    org_id: str


@dataclass(slots=True)
class AccessToken:
    """A client-credentials token."""

    token: str
    client_id: str
    expires_at: float


@dataclass(slots=True)
class Fault:
    """The next `remaining` API calls (of one integration, or any) answer `status`; with `seconds`, every
    call does for that long, counted from the first call it answers."""

    status: int
    remaining: int
    integration_id: str | None = None
    retry_after: int | None = None
    seconds: float | None = None
    until: float | None = None


@dataclass(slots=True)
class ReceivedRecord:
    """A valid inbound request Xypr made, and what the emulator answered."""

    kind: str
    integration_id: str
    id: str
    customer_id: str | None
    conversation_id: str | None
    body: dict[str, Any]
    response: dict[str, Any]
    time: str
    matched_outbound: bool | None = None


@dataclass(slots=True)
class SentRecord:
    """An outbound webhook the emulator posted to Xypr, and how delivery went."""

    id: str
    integration_id: str
    to: str | None
    type: str
    body: Any
    time: str
    webhook_status: int | None = None
    attempts: int = 0
    error: str | None = None


class GenesysSandbox:
    """The emulated Genesys Cloud: integrations, OAuth tokens, inbound API, conversations, agent webhooks."""

    def __init__(
        self,
        *,
        base_url: str,
        token_ttl: int = 86400,
        webhook_retries: int = 5,
        webhook_backoff: float = 0.2,
        webhook_timeout: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        history_limit: int = 100_000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_ttl = token_ttl
        self.webhook_timeout = webhook_timeout
        # Genesys: the first try plus up to `webhook_retries` retries, on timeout / 429 / 5xx only.
        self.retry_policy = RetryPolicy(
            max_attempts=1 + max(0, webhook_retries), base=webhook_backoff, cap=max(webhook_backoff * 16, 0.001)
        )
        self._http = http_client
        self._owns_http = http_client is None
        self._history_limit = history_limit
        self.integrations: dict[str, Integration] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.service_clients: dict[str, ServiceClient] = {}
        # How long Genesys takes to complete an integration created through the API.
        self.integration_create_seconds = 0.2
        # Open Messaging calls are recorded at once and answered this many seconds later.
        self.answer_delay_seconds = 0.0
        # User login (code grant + PKCE, users/me): login clients, users, codes, user tokens.
        self.accounts = SandboxAccounts()
        # Client app integrations (Interaction Widgets) by id: `agent.ClientApp`.
        self.client_apps: dict[str, Any] = {}
        self._init_traffic()

    def _init_traffic(self) -> None:
        self.faults: list[Fault] = []
        self.received: deque[ReceivedRecord] = deque(maxlen=self._history_limit)
        self.sent: deque[SentRecord] = deque(maxlen=self._history_limit)
        self.conversations: dict[tuple[str, str], str] = {}
        self._outbound_ids: dict[str, str] = {}

    # -- registry and OAuth ------------------------------------------------------------------------

    def register_integration(self, integration: Integration) -> Integration:
        """Add or replace an integration."""
        self.integrations[integration.integration_id] = integration
        return integration

    def authenticate_client(self, client_id: str, client_secret: str) -> bool:
        """True when these client credentials belong to a registered client or integration."""
        client = self.service_clients.get(client_id)
        if client is not None and hmac.compare_digest(client.client_secret, client_secret):
            return True
        return any(
            i.client_id == client_id and hmac.compare_digest(i.client_secret, client_secret)
            for i in self.integrations.values()
        )

    def client_secret(self, client_id: str) -> str | None:
        """The secret of a registered client (standalone, or the one an integration was registered with)."""
        client = self.service_clients.get(client_id)
        if client is not None:
            return client.client_secret
        return next((i.client_secret for i in self.integrations.values() if i.client_id == client_id), None)

    def client_org(self, client_id: str) -> str | None:
        """The organisation a client belongs to."""
        client = self.service_clients.get(client_id)
        if client is not None:
            return client.org_id
        return next((i.org_id for i in self.integrations.values() if i.client_id == client_id), None)

    def create_integration(self, client_id: str, *, name: str, webhook_url: str, webhook_secret: str) -> Integration:
        """An integration created through the API by `client_id`: `Initiated`, completed a moment later."""
        integration = Integration(
            integration_id=str(uuid.uuid4()),
            name=name,
            client_id=client_id,
            client_secret=self.client_secret(client_id) or "",
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            org_id=self.client_org(client_id) or "",
            create_status="Initiated",
            completes_at=time.time() + self.integration_create_seconds,
            date_created=genesys_time(),
        )
        return self.register_integration(integration)

    def issue_token(self, client_id: str) -> AccessToken:
        """A new token for an authenticated client, living `token_ttl` seconds."""
        access = AccessToken(secrets.token_urlsafe(48), client_id, time.time() + self.token_ttl)
        self.tokens[access.token] = access
        return access

    def token_client(self, token: str) -> str | None:
        """The client id behind a live token, or None for an unknown or expired one."""
        access = self.tokens.get(token)
        if access is None or access.expires_at <= time.time():
            return None
        return access.client_id

    def expire_tokens(self) -> int:
        """Expire every token now; returns how many there were."""
        for access in self.tokens.values():
            access.expires_at = 0.0
        return len(self.tokens) + self.accounts.expire_tokens()

    def client_may_use(self, client_id: str, integration: Integration) -> bool:
        """A client may use its own integrations and those of its organisation."""
        if integration.client_id == client_id:
            return True
        if (client := self.service_clients.get(client_id)) is not None and client.org_id == integration.org_id:
            return True
        return any(i.client_id == client_id and i.org_id == integration.org_id for i in self.integrations.values())

    # -- faults ------------------------------------------------------------------------------------

    def take_fault(self, integration_id: str) -> Fault | None:
        """Consume one call's worth of the oldest fault that applies to this integration."""
        for fault in list(self.faults):
            if fault.integration_id in (None, integration_id):
                if fault.seconds is not None:
                    now = time.monotonic()
                    if fault.until is None:
                        fault.until = now + fault.seconds
                    if now >= fault.until:
                        self.faults.remove(fault)
                        continue  # over: the next fault (or none) applies
                    return fault
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- conversations and inbound -----------------------------------------------------------------

    def conversation_for(self, integration_id: str, customer_id: str) -> str:
        """The customer's open conversation on this integration (created on first message)."""
        key = (integration_id, customer_id)
        if key not in self.conversations:
            self.conversations[key] = str(uuid.uuid4())
        return self.conversations[key]

    def disconnect(self, integration_id: str, customer_id: str) -> str | None:
        """End the customer's conversation: the next message starts a new one."""
        return self.conversations.pop((integration_id, customer_id), None)

    def record_received(self, record: ReceivedRecord) -> None:
        """Keep what Xypr posted."""
        self.received.append(record)

    def is_outbound_id(self, integration_id: str, message_id: str) -> bool:
        """True when `message_id` is an outbound message this emulator sent on the integration."""
        return self._outbound_ids.get(message_id) == integration_id

    # -- outbound webhooks -------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The client webhooks go out with (created on first use when none was injected)."""
        if self._http is None:
            self._http = create_http_client(timeout=self.webhook_timeout)
        return self._http

    async def send_outbound(self, integration: Integration, body: Any, *, raw: bytes | None = None) -> SentRecord:
        """Sign (base64 HMAC) and POST an outbound webhook to Xypr, retrying as Genesys does."""
        payload = raw if raw is not None else encode_body(body)
        channel = body.get("channel") if isinstance(body, dict) else None
        to = channel.get("to", {}).get("id") if isinstance(channel, dict) else None
        record = SentRecord(
            id=str(body.get("id", "")) if isinstance(body, dict) else "",
            integration_id=integration.integration_id,
            to=to,
            type=str(body.get("type", "")) if isinstance(body, dict) else "",
            body=body,
            time=genesys_time(),
        )
        self.sent.append(record)
        self._outbound_ids[record.id] = integration.integration_id
        if len(self._outbound_ids) > self._history_limit:
            del self._outbound_ids[next(iter(self._outbound_ids))]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Genesys-Open-Messaging",
            "X-Hub-Signature-256": sign(integration.webhook_secret, payload),
        }
        delivery = await deliver(
            self.http,
            integration.webhook_url,
            payload,
            headers,
            policy=self.retry_policy,
            should_retry=retry_on_timeout_429_5xx,
            request_timeout=self.webhook_timeout,
        )
        record.webhook_status, record.attempts, record.error = delivery.status, delivery.attempts, delivery.error
        return record

    # -- lifecycle ---------------------------------------------------------------------------------

    def reset(self, *, registry: bool = False) -> None:
        """Forget traffic, faults and conversations; with `registry`, integrations and tokens too."""
        self._init_traffic()
        self.answer_delay_seconds = 0.0
        if registry:
            self.integrations.clear()
            self.tokens.clear()
            self.service_clients.clear()
            self.accounts.clear()
            self.client_apps.clear()

    async def aclose(self) -> None:
        """Close the HTTP client if this sandbox created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
