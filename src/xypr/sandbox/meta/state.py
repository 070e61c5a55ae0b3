"""In-memory state and behaviour of the emulated Meta Graph API (one loop; no await inside a mutation)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import secrets
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from xypr.core.http import create_http_client
from xypr.core.retry import RetryPolicy
from xypr.sandbox.delivery import Delivery, deliver, retry_on_non_2xx
from xypr.sandbox.meta.errors import status_error
from xypr.sandbox.meta.validation import MarkRead, Send
from xypr.sandbox.meta.webhooks import (
    Customer,
    NumberMetadata,
    encode_body,
    inbound_message,
    new_wamid,
    sign,
    sign_sha1,
    status_update,
)

__all__ = [
    "RE_ENGAGEMENT",
    "BusinessNumber",
    "Fault",
    "InboundRecord",
    "MediaObject",
    "MetaSandbox",
    "ReadReceipt",
    "SentMessage",
    "StatusRecord",
    "Template",
]

RE_ENGAGEMENT = 131047
SERVICE_WINDOW_SECONDS = 24 * 3600
MEDIA_URL_TTL_SECONDS = 300
_DEFAULT_TEMPLATE_CATEGORY = "utility"
# One order across sends and customer messages: their timestamps are whole seconds, so two in the
# same second would otherwise tie (the sandbox page orders a conversation by this).
_SEQUENCE = itertools.count(1)


def _next_sequence() -> int:
    return next(_SEQUENCE)


@dataclass(slots=True)
class BusinessNumber:
    """A registered business phone number, its credentials and where its webhooks go."""

    phone_number_id: str
    display_phone_number: str
    waba_id: str
    access_token: str
    app_secret: str
    verify_token: str
    webhook_url: str
    verified_name: str = "Xypr Sandbox"
    webhook_version: str = "v23.0"

    @property
    def metadata(self) -> NumberMetadata:
        """The `value.metadata` of this number's webhooks."""
        return NumberMetadata(self.waba_id, self.phone_number_id, self.display_phone_number)


@dataclass(slots=True)
class Fault:
    """The next `remaining` sends of a number fail with `code`: synchronously or as a `failed` status."""

    code: int
    remaining: int
    http_status: int | None = None
    mode: str = "response"


@dataclass(slots=True)
class MediaObject:
    """Uploaded or customer-sent media, owned by one business number."""

    media_id: str
    phone_number_id: str
    content: bytes
    mime_type: str
    filename: str | None
    created: float

    @property
    def sha256_hex(self) -> str:
        """Hex SHA-256, as the media URL endpoint reports it."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def sha256_b64(self) -> str:
        """Base64 SHA-256, as media webhooks carry it (webhook-image.json)."""
        return base64.b64encode(hashlib.sha256(self.content).digest()).decode()


@dataclass(slots=True)
class Template:
    """An approved message template of a WABA."""

    name: str
    language: str
    category: str = "UTILITY"
    components: list[dict[str, Any]] = field(default_factory=list)
    id: str = field(default_factory=lambda: str(secrets.randbelow(10**15) + 10**15))
    status: str = "APPROVED"  # or PENDING, REJECTED, PAUSED, DISABLED: listed, but not sendable

    def as_graph(self) -> dict[str, Any]:
        """The item of `GET /{waba_id}/message_templates`."""
        return {
            "name": self.name,
            "parameter_format": "POSITIONAL",
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


@dataclass(slots=True)
class SentMessage:
    """An accepted send and its latest status."""

    wamid: str
    phone_number_id: str
    to: str | None
    recipient: str
    type: str
    body: dict[str, Any]
    timestamp: int
    status: str = "accepted"
    sequence: int = field(default_factory=_next_sequence)


@dataclass(slots=True)
class StatusRecord:
    """A status webhook the emulator posted, with its delivery result."""

    wamid: str
    phone_number_id: str
    recipient: str
    status: str
    timestamp: int
    body: dict[str, Any]
    webhook_status: int | None
    attempts: int


@dataclass(slots=True)
class InboundRecord:
    """A customer message the emulator posted to the business's webhook."""

    wamid: str
    phone_number_id: str
    wa_id: str | None
    user_id: str | None
    name: str
    type: str
    message: dict[str, Any]
    timestamp: int
    webhook_status: int | None
    attempts: int
    sequence: int = field(default_factory=_next_sequence)


@dataclass(slots=True)
class ReadReceipt:
    """A mark-as-read (and typing indicator) request the business made."""

    phone_number_id: str
    message_id: str
    typing_indicator: bool
    timestamp: int


class MetaSandbox:
    """The emulated Meta: registered numbers, sends, statuses, media, customers and the 24 h window."""

    def __init__(
        self,
        *,
        base_url: str,
        status_delay: float = 0.05,
        status_sequence: tuple[str, ...] = ("sent", "delivered", "read"),
        webhook_attempts: int = 3,
        webhook_backoff: float = 0.2,
        webhook_timeout: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        history_limit: int = 100_000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.status_delay = status_delay
        self.status_sequence = status_sequence
        self.webhook_timeout = webhook_timeout
        self.retry_policy = RetryPolicy(
            max_attempts=max(1, webhook_attempts), base=webhook_backoff, cap=max(webhook_backoff * 8, 0.001)
        )
        self._http = http_client
        self._owns_http = http_client is None
        self._history_limit = history_limit
        self._url_key = secrets.token_bytes(32)
        self._tasks: set[asyncio.Task[None]] = set()
        self.numbers: dict[str, BusinessNumber] = {}
        self.templates: dict[str, dict[tuple[str, str], Template]] = {}
        # WABAs our app is subscribed to (`POST /{waba_id}/subscribed_apps`).
        self.subscribed_wabas: set[str] = set()
        self.clock_offset = 0.0
        self._init_traffic()

    def _init_traffic(self) -> None:
        limit = self._history_limit
        self.faults: dict[str, list[Fault]] = {}
        self.media: dict[str, MediaObject] = {}
        self.last_inbound: dict[tuple[str, str], float] = {}
        self.conversations: dict[tuple[str, str], tuple[str, float]] = {}
        self.sent: deque[SentMessage] = deque(maxlen=limit)
        self.statuses: deque[StatusRecord] = deque(maxlen=limit)
        self.inbound: deque[InboundRecord] = deque(maxlen=limit)
        self.read_receipts: deque[ReadReceipt] = deque(maxlen=limit)

    # -- clock -----------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock: wall time shifted by `clock_offset` (to test the 24 h window)."""
        return time.time() + self.clock_offset

    # -- registry ----------------------------------------------------------------------------------

    def register_number(self, number: BusinessNumber) -> BusinessNumber:
        """Add or replace a business number; its WABA gets the `hello_world` template."""
        self.numbers[number.phone_number_id] = number
        waba = self.templates.setdefault(number.waba_id, {})
        waba.setdefault(("hello_world", "en_US"), _hello_world())
        return number

    def add_template(self, waba_id: str, template: Template) -> Template:
        """Add or replace an approved template of a WABA."""
        self.templates.setdefault(waba_id, {})[(template.name, template.language)] = template
        return template

    def number_for_token(self, token: str | None) -> BusinessNumber | None:
        """Any number this access token belongs to."""
        if not token:
            return None
        return next((n for n in self.numbers.values() if hmac.compare_digest(n.access_token, token)), None)

    async def verify_webhook(self, number: BusinessNumber) -> dict[str, Any]:
        """Meta's verification handshake: GET with a challenge; 200 and exactly the challenge pass."""
        challenge = str(secrets.randbelow(9 * 10**9) + 10**9)
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": number.verify_token,
            "hub.challenge": challenge,
        }
        try:
            response = await self.http.get(number.webhook_url, params=params, timeout=self.webhook_timeout)
        except httpx.HTTPError as exc:
            return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}
        ok = response.status_code == 200 and response.text == challenge
        error = None if ok else f"expected 200 with the challenge, got {response.status_code}"
        return {"ok": ok, "status": response.status_code, "error": error}

    # -- faults ------------------------------------------------------------------------------------

    def add_fault(self, phone_number_id: str, fault: Fault) -> None:
        """Queue a fault for the next sends of a number."""
        self.faults.setdefault(phone_number_id, []).append(fault)

    def take_fault(self, phone_number_id: str) -> Fault | None:
        """Consume one send's worth of the oldest pending fault of a number."""
        queue = self.faults.get(phone_number_id)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    # -- sends -------------------------------------------------------------------------------------

    def in_service_window(self, phone_number_id: str, customer: str) -> bool:
        """True when the customer wrote to this number in the last 24 h."""
        last = self.last_inbound.get((phone_number_id, customer))
        return last is not None and self.now() - last <= SERVICE_WINDOW_SECONDS

    def accept_send(
        self, number: BusinessNumber, send: Send, body: dict[str, Any], fault: Fault | None = None
    ) -> dict[str, Any]:
        """Record an accepted send, schedule its status webhooks, answer like send-message-response.json."""
        key = send.recipient_key
        now = self.now()
        wamid = new_wamid(key)
        record = SentMessage(wamid, number.phone_number_id, send.to, key, send.type, body, int(now))
        self.sent.append(record)
        failure: int | None = None
        if fault is not None and fault.mode == "status":
            failure = fault.code
        elif send.type != "template" and not self.in_service_window(number.phone_number_id, key):
            failure = RE_ENGAGEMENT
        self.spawn(self._run_statuses(record, send, failure))
        contact = {"input": send.to, "wa_id": key} if send.to is not None else {"input": key, "user_id": key}
        message: dict[str, Any] = {"id": wamid}
        if send.type == "template":
            message["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}

    def record_read(self, number: BusinessNumber, mark: MarkRead) -> None:
        """Record a mark-as-read / typing indicator request."""
        self.read_receipts.append(
            ReadReceipt(number.phone_number_id, mark.message_id, mark.typing_indicator, int(self.now()))
        )

    async def _run_statuses(self, record: SentMessage, send: Send, failure: int | None) -> None:
        steps = ("failed",) if failure is not None else self.status_sequence
        for status in steps:
            await asyncio.sleep(self.status_delay)
            number = self.numbers.get(record.phone_number_id)
            if number is None:
                return
            payload = status_update(
                number.metadata,
                wamid=record.wamid,
                status=status,
                timestamp=int(self.now()),
                recipient={"recipient_id": record.recipient}
                if send.to is not None
                else {"recipient_user_id": record.recipient},
                conversation=self._conversation(number, record, status) if failure is None else None,
                pricing=self._pricing(number, record) if failure is None and status != "read" else None,
                callback_data=send.callback_data,
                errors=[status_error(failure)] if failure is not None else None,
            )
            delivery = await self.post_webhook(number, payload)
            record.status = status
            self.statuses.append(
                StatusRecord(
                    record.wamid,
                    record.phone_number_id,
                    record.recipient,
                    status,
                    int(self.now()),
                    payload,
                    delivery.status,
                    delivery.attempts,
                )
            )

    def _category(self, number: BusinessNumber, record: SentMessage) -> str:
        if record.type != "template":
            return "service"
        template = record.body.get("template", {})
        language = template.get("language", {}).get("code", "")
        known = self.templates.get(number.waba_id, {}).get((template.get("name", ""), language))
        return known.category.lower() if known else _DEFAULT_TEMPLATE_CATEGORY

    def _conversation(self, number: BusinessNumber, record: SentMessage, status: str) -> dict[str, Any] | None:
        # Graph v24+ webhooks drop the conversation object (webhook-status-v24-no-conversation.json).
        if status == "read" or _version(number.webhook_version) >= (24, 0):
            return None
        key = (number.phone_number_id, record.recipient)
        conversation_id, expires = self.conversations.get(key, ("", 0.0))
        if expires <= self.now():
            conversation_id, expires = secrets.token_hex(16), self.now() + SERVICE_WINDOW_SECONDS
            self.conversations[key] = (conversation_id, expires)
        conversation: dict[str, Any] = {"id": conversation_id}
        if status == "sent":
            conversation["expiration_timestamp"] = str(int(expires))
        conversation["origin"] = {"type": self._category(number, record)}
        return conversation

    def _pricing(self, number: BusinessNumber, record: SentMessage) -> dict[str, Any]:
        category = self._category(number, record)
        billable = category != "service"
        return {
            "billable": billable,
            "pricing_model": "PMP",
            "type": "regular" if billable else "free_customer_service",
            "category": category,
        }

    # -- media -------------------------------------------------------------------------------------

    def store_media(self, phone_number_id: str, content: bytes, mime_type: str, filename: str | None) -> MediaObject:
        """Keep media bytes under a fresh numeric media id."""
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        media = MediaObject(media_id, phone_number_id, content, mime_type, filename, self.now())
        self.media[media_id] = media
        return media

    def media_url(self, media: MediaObject) -> str:
        """A download URL valid for 5 minutes that still needs the bearer token."""
        expires = int(self.now()) + MEDIA_URL_TTL_SECONDS
        url_hash = self._url_hash(media.media_id, expires)
        return f"{self.base_url}/_media/{media.media_id}?expires={expires}&hash={url_hash}"

    def media_url_valid(self, media_id: str, expires: str, url_hash: str) -> bool:
        """True for an unexpired, untampered media URL."""
        if not expires.isdigit() or int(expires) < self.now():
            return False
        return hmac.compare_digest(self._url_hash(media_id, int(expires)), url_hash)

    def _url_hash(self, media_id: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    # -- customers ---------------------------------------------------------------------------------

    async def customer_message(
        self,
        number: BusinessNumber,
        customer: Customer,
        *,
        message_type: str,
        content: dict[str, Any],
        context_id: str | None = None,
    ) -> InboundRecord:
        """A customer writes: open the 24 h window, then post the signed message webhook (with retries)."""
        now = self.now()
        for key in (customer.wa_id, customer.user_id):
            if key:
                self.last_inbound[(number.phone_number_id, key)] = now
        wamid = new_wamid(customer.wa_id or customer.user_id or "")
        payload = inbound_message(
            number.metadata,
            customer,
            wamid=wamid,
            timestamp=int(now),
            message_type=message_type,
            content=content,
            context_id=context_id,
        )
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        record = InboundRecord(
            wamid,
            number.phone_number_id,
            customer.wa_id,
            customer.user_id,
            customer.name,
            message_type,
            message,
            int(now),
            None,
            0,
        )
        self.inbound.append(record)
        delivery = await self.post_webhook(number, payload)
        record.webhook_status, record.attempts = delivery.status, delivery.attempts
        return record

    # -- webhook delivery --------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The client webhooks go out with (created on first use when none was injected)."""
        if self._http is None:
            self._http = create_http_client(timeout=self.webhook_timeout)
        return self._http

    async def post_webhook(self, number: BusinessNumber, payload: Any) -> Delivery:
        """Sign and POST a JSON body to the number's webhook, retrying as Meta does."""
        return await self.post_raw(number, encode_body(payload))

    async def post_raw(self, number: BusinessNumber, raw: bytes) -> Delivery:
        """Sign and POST exactly these bytes to the number's webhook."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": sign_sha1(number.app_secret, raw),
            "X-Hub-Signature-256": sign(number.app_secret, raw),
        }
        return await deliver(
            self.http,
            number.webhook_url,
            raw,
            headers,
            policy=self.retry_policy,
            should_retry=retry_on_non_2xx,
            request_timeout=self.webhook_timeout,
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run background work (status webhooks), keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self, within: float = 5.0) -> bool:
        """Wait (bounded) until no background work is pending; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    def reset(self, *, registry: bool = False) -> None:
        """Forget traffic, faults, media, windows and the clock shift; with `registry`, numbers too."""
        _cancel(self._tasks)
        self._init_traffic()
        self.clock_offset = 0.0
        if registry:
            self.numbers.clear()
            self.templates.clear()
            self.subscribed_wabas.clear()

    async def aclose(self) -> None:
        """Cancel background work and close the HTTP client if this sandbox created it."""
        tasks = list(self._tasks)
        _cancel(tasks)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None


def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    for task in list(tasks):
        task.cancel()


def _version(version: str) -> tuple[int, int]:
    major, _, minor = version.lstrip("v").partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (0, 0)


def _hello_world() -> Template:
    return Template(
        name="hello_world",
        language="en_US",
        category="UTILITY",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to send a "
                "WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the "
                "time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    )
