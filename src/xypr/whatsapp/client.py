"""Graph API client: sends with the tenant's token and classifies Meta errors by `code`."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson

from xypr.core.errors import PermanentError, TransientError
from xypr.core.http import HttpxPoster, JsonAnswer, JsonPoster, UpstreamUnreachable
from xypr.core.metrics import UPSTREAM_LATENCY
from xypr.whatsapp.errors import PAIR_RATE_LIMIT, TOKEN_EXPIRED, TRANSIENT_CODES, describe, receipt_reason

__all__ = ["GraphClient", "TokenExpired", "WhatsAppCredentials"]

MEDIA_UPLOAD_ERROR: Final = 131053
_SIZE_WORDS: Final = re.compile(r"\b(bytes|size|large|limit)\b", re.I)


@dataclass(frozen=True, slots=True)
class WhatsAppCredentials:
    """What the client needs to send from one business phone number."""

    phone_number_id: str
    access_token: str = field(repr=False)


class TokenExpired(TransientError):
    """Meta error 190: re-read the tenant's token, then retry."""


class OutcomeUnknown(TransientError):
    """No answer from Meta (connection broken, timed out): the request may or may not have been accepted."""


class GraphClient:
    """Calls `{graph}/{version}/…` for one tenant at a time."""

    def __init__(
        self, http: httpx.AsyncClient, *, graph_url: str, api_version: str, poster: JsonPoster | None = None
    ) -> None:
        self._http = http  # media uploads (multipart)
        self._poster = poster or HttpxPoster(http)  # message sends, one per message part
        self._base = f"{graph_url.rstrip('/')}/{api_version}"

    async def send_message(self, number: WhatsAppCredentials, body: dict[str, Any]) -> dict[str, Any]:
        """POST `/{phone_number_id}/messages`; returns Meta's answer (accepted, not yet delivered)."""
        return await self._call(
            lambda: self._poster.post_json(
                f"{self._base}/{number.phone_number_id}/messages",
                orjson.dumps(body),
                headers={"Authorization": f"Bearer {number.access_token}"},
            )
        )

    async def read_number(self, number: WhatsAppCredentials, *, fields: str) -> httpx.Response:
        """`GET /{phone_number_id}?fields=…` with the number's token: Meta's response, for the caller to read
        (an operator's check of the token and the number); a network failure raises `httpx.HTTPError`."""
        return await self._http.get(
            f"{self._base}/{number.phone_number_id}",
            params={"fields": fields},
            headers={"Authorization": f"Bearer {number.access_token}"},
        )

    async def upload_media(self, number: WhatsAppCredentials, *, data: bytes, mime_type: str, filename: str) -> str:
        """POST `/{phone_number_id}/media` (multipart `messaging_product`, `file`, `type`); returns the media id."""
        answer = await self._call(
            lambda: self._http.post(
                f"{self._base}/{number.phone_number_id}/media",
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (filename, data, mime_type)},
                headers={"Authorization": f"Bearer {number.access_token}"},
            )
        )
        media_id = answer.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise TransientError("Graph API media upload answered without an id")
        return media_id

    async def _call(self, post: Callable[[], Awaitable[httpx.Response | JsonAnswer]]) -> dict[str, Any]:
        """Make one Graph API call, timed; Meta's answer, or its error classified."""
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await post()
        except (UpstreamUnreachable, httpx.HTTPError) as exc:
            what = str(exc) if isinstance(exc, UpstreamUnreachable) else type(exc).__name__
            raise OutcomeUnknown(f"Graph API unreachable: {what}") from exc
        else:
            outcome = str(response.status_code)
            return self._answer(response)
        finally:
            UPSTREAM_LATENCY.labels("meta", outcome).observe(time.perf_counter() - started)

    @staticmethod
    def _answer(response: httpx.Response | JsonAnswer) -> dict[str, Any]:
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = {}
        if response.is_success and isinstance(payload, dict):
            return payload
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(f"Graph API HTTP {response.status_code}", retry_after=_retry_after(response))
            raise PermanentError(f"Graph API HTTP {response.status_code}", reason="GeneralError")
        code = error.get("code")
        text = describe(error)
        if code == TOKEN_EXPIRED:
            raise TokenExpired(text, upstream_code=code)
        if code in TRANSIENT_CODES or (code is None and response.status_code >= 500):
            # Pair rate limit (one user): Meta asks for 4^n seconds between tries.
            growth = 4.0 if code == PAIR_RATE_LIMIT else 2.0
            raise TransientError(text, retry_after=_retry_after(response), growth=growth, upstream_code=code)
        reason = receipt_reason(code, text)
        if code == MEDIA_UPLOAD_ERROR and _SIZE_WORDS.search(text):
            # Meta uses 131053 for both a refused type and a refused size; its details tell which.
            reason = "InvalidMediaContentLength"
        raise PermanentError(text, reason=reason, upstream_code=code)


def _retry_after(response: httpx.Response | JsonAnswer) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
