"""Customer media on the Graph API: media id → a short-lived URL → bytes (with the number's token), checked
against WhatsApp's types, sizes and Meta's sha256. Storing and recording the copy is the caller's business."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import mimetypes
import re
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from xypr.core.metrics import UPSTREAM_LATENCY
from xypr.whatsapp.client import WhatsAppCredentials
from xypr.whatsapp.errors import TOKEN_EXPIRED, TRANSIENT_CODES, describe
from xypr.whatsapp.models import WaMedia

__all__ = [
    "ACCEPTED_TYPES",
    "SIZE_LIMITS",
    "MediaDownload",
    "MediaDownloader",
    "MediaInfo",
    "MediaUnavailable",
    "base_mime",
    "media_extension",
    "sha256_matches",
]

_MB: Final = 1024 * 1024
# WhatsApp's limits per message type (contracts README, "Media"); stickers: the animated limit, the larger one.
SIZE_LIMITS: Final[dict[str, int]] = {
    "image": 5 * _MB,
    "audio": 16 * _MB,
    "video": 16 * _MB,
    "document": 100 * _MB,
    "sticker": 500 * 1024,
}
# Media types WhatsApp supports per message type; documents may be any file.
ACCEPTED_TYPES: Final[dict[str, frozenset[str] | None]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/opus"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "sticker": frozenset({"image/webp"}),
    "document": None,
}
_MAX_REDIRECTS: Final = 3
# Hosts Meta serves media URLs from; the bearer token is never sent anywhere else.
_META_MEDIA_DOMAINS: Final = ("fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net")
_EXTENSIONS: Final = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/mp4": ".m4a",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}
_STEMS: Final = {"image": "image", "video": "video", "sticker": "sticker", "document": "document"}
_UNSAFE_FILENAME_CHARS: Final = re.compile(r"[\x00-\x1f\x7f/\\]")


class MediaUnavailable(Exception):
    """WhatsApp did not give us the media; `retryable` says whether another try may help."""

    def __init__(self, reason: str, *, retryable: bool, agent_note: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        # A short, safe explanation for the agent (limits); None for failures that mean nothing to them.
        self.agent_note = agent_note


class MediaInfo(BaseModel):
    """`GET /{media_id}` answer (media-get-url-response.json)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class MediaDownload:
    """The checked bytes of one customer media, with the type and the file name to show."""

    data: bytes
    mime_type: str
    sha256_hex: str
    filename: str


def base_mime(mime_type: str | None) -> str:
    """`audio/ogg; codecs=opus` → `audio/ogg`."""
    return (mime_type or "").split(";", 1)[0].strip().lower()


def sha256_matches(digest: bytes, expected: str) -> bool:
    """True when `expected` (hex, as the media URL answer gives it, or base64, as webhooks do) names `digest`."""
    value = expected.strip()
    if len(value) == 64 and all(char in "0123456789abcdefABCDEF" for char in value):
        return hmac.compare_digest(value.lower(), digest.hex())
    try:
        decoded = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(decoded, digest)


def media_extension(mime_type: str) -> str:
    """The file extension to name a file of this media type with (`.bin` when nothing better is known)."""
    base = base_mime(mime_type)
    return _EXTENSIONS.get(base) or mimetypes.guess_extension(base) or ".bin"


def _filename(kind: str, media: WaMedia, mime_type: str) -> str:
    if kind == "document" and media.filename:
        cleaned = _UNSAFE_FILENAME_CHARS.sub("_", media.filename).strip()[:255]
        if cleaned:
            return cleaned
    stem = ("voice-message" if media.voice else "audio") if kind == "audio" else _STEMS.get(kind, "file")
    return stem + media_extension(mime_type)


def _limits_note(kind: str, mime_type: str, size: int | None) -> str | None:
    """Why WhatsApp's limits refuse this media (for the agent), or None when it is within them."""
    accepted = ACCEPTED_TYPES.get(kind)
    base = base_mime(mime_type)
    if accepted is not None and base not in accepted:
        return f"type {base or 'unknown'} is not accepted for {kind} messages"
    limit = SIZE_LIMITS.get(kind)
    if limit is not None and size is not None and size > limit:
        return f"{_size(size)} is over the {_size(limit)} limit for {kind} messages"
    return None


def _size(size: int) -> str:
    return f"{size / _MB:.1f} MB" if size >= _MB else f"{max(1, round(size / 1024))} KB"


class MediaDownloader:
    """Downloads customer media from the Graph API; the bearer token goes to Meta's hosts only."""

    def __init__(self, http: httpx.AsyncClient, *, graph_url: str, api_version: str) -> None:
        self._http = http
        self._graph = f"{graph_url.rstrip('/')}/{api_version}"
        self._graph_host = urlsplit(graph_url).hostname or ""

    async def download(self, number: WhatsAppCredentials, kind: str, media: WaMedia) -> MediaDownload:
        """The media's bytes, checked; raises `MediaUnavailable` (with `retryable`) when WhatsApp cannot give them."""
        info = await self._media_info(number, media.id)
        mime_type = base_mime(info.mime_type) or base_mime(media.mime_type) or "application/octet-stream"
        note = _limits_note(kind, mime_type, info.file_size)
        if note:
            raise MediaUnavailable(note, retryable=False, agent_note=note)
        limit = SIZE_LIMITS.get(kind, SIZE_LIMITS["document"])
        data = await self._fetch(number, info.url, limit=limit, kind=kind)
        digest = hashlib.sha256(data).digest()
        # The media URL answer's hash describes the bytes behind that URL; the webhook's is the fallback.
        expected = info.sha256 or media.sha256
        if expected and not sha256_matches(digest, expected):
            raise MediaUnavailable("downloaded bytes do not match Meta's sha256", retryable=True)
        return MediaDownload(
            data=data, mime_type=mime_type, sha256_hex=digest.hex(), filename=_filename(kind, media, mime_type)
        )

    async def _media_info(self, number: WhatsAppCredentials, media_id: str) -> MediaInfo:
        started = time.perf_counter()
        outcome = "error"
        try:
            # No `phone_number_id` filter: Meta documents it for media *uploaded* on a number, and a
            # refusal there would cost every customer attachment; the token already scopes the WABA.
            response = await self._http.get(
                f"{self._graph}/{media_id}", headers={"Authorization": f"Bearer {number.access_token}"}
            )
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"Graph API unreachable: {type(exc).__name__}", retryable=True) from exc
        finally:
            UPSTREAM_LATENCY.labels("meta-media", outcome).observe(time.perf_counter() - started)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success and isinstance(payload, dict):
            try:
                return MediaInfo.model_validate(payload)
            except ValidationError as exc:
                raise MediaUnavailable("media URL answer without a url", retryable=True) from exc
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            retryable = code in TRANSIENT_CODES or code == TOKEN_EXPIRED or response.status_code >= 500
            raise MediaUnavailable(f"media {media_id}: {describe(error)}", retryable=retryable)
        retryable = response.status_code >= 500 or response.status_code == 429
        raise MediaUnavailable(f"media {media_id}: Graph API HTTP {response.status_code}", retryable=retryable)

    def _trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host and host == self._graph_host:
            return parts.scheme in ("https", "http")
        meta = any(host == domain or host.endswith("." + domain) for domain in _META_MEDIA_DOMAINS)
        return meta and parts.scheme == "https"

    async def _fetch(self, number: WhatsAppCredentials, url: str, *, limit: int, kind: str) -> bytes:
        headers = {"Authorization": f"Bearer {number.access_token}"}
        for _ in range(_MAX_REDIRECTS + 1):
            if not self._trusted(url):
                # The token goes only to Meta: a media URL elsewhere is refused, not followed.
                raise MediaUnavailable(f"media URL on an untrusted host {urlsplit(url).hostname!r}", retryable=False)
            started = time.perf_counter()
            outcome = "error"
            try:
                async with self._http.stream("GET", url, headers=headers) as response:
                    outcome = str(response.status_code)
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if not response.is_success:
                        # 404 is an expired URL, 401 a token refreshed meanwhile: a new try asks for a new URL.
                        raise MediaUnavailable(f"media download HTTP {response.status_code}", retryable=True)
                    return await _read_capped(response, limit=limit, kind=kind)
            except httpx.HTTPError as exc:
                raise MediaUnavailable(f"media download failed: {type(exc).__name__}", retryable=True) from exc
            finally:
                UPSTREAM_LATENCY.labels("meta-media-download", outcome).observe(time.perf_counter() - started)
        raise MediaUnavailable("media download redirected too often", retryable=False)


async def _read_capped(response: httpx.Response, *, limit: int, kind: str) -> bytes:
    """The body, refused as soon as it grows past `limit` (a lying Content-Length included)."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        note = f"{_size(int(declared))} is over the {_size(limit)} limit for {kind} messages"
        raise MediaUnavailable(note, retryable=False, agent_note=note)
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > limit:
            note = f"it is over the {_size(limit)} limit for {kind} messages"
            raise MediaUnavailable(note, retryable=False, agent_note=note)
        chunks.append(chunk)
    if not received:
        raise MediaUnavailable("media download returned no bytes", retryable=True)
    return b"".join(chunks)
