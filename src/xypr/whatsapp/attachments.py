"""Agent attachments for WhatsApp: the media types and sizes Meta takes, and a fetch from Genesys hosts only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from xypr.core.errors import TransientError

__all__ = [
    "MAX_REDIRECTS",
    "AttachmentRefused",
    "FetchedAttachment",
    "MediaKind",
    "attachment_url_refusal",
    "fetch_attachment",
    "media_kind",
    "mime_of",
]

_MB: Final = 1024 * 1024
MAX_REDIRECTS: Final = 3


@dataclass(frozen=True, slots=True)
class MediaKind:
    """How WhatsApp takes one MIME type: the message type, the largest file, whether a caption fits."""

    whatsapp_type: str
    max_bytes: int

    @property
    def takes_caption(self) -> bool:
        """Image, video and document messages carry a caption; audio and stickers do not."""
        return self.whatsapp_type in ("image", "video", "document")


_IMAGE = MediaKind("image", 5 * _MB)
_AUDIO = MediaKind("audio", 16 * _MB)
_VIDEO = MediaKind("video", 16 * _MB)
# Meta allows 500 KB for animated stickers and 100 KB for static ones; the bytes do not say which
# one a webp is without decoding it, so the larger limit applies and Meta has the last word.
_STICKER = MediaKind("sticker", 500 * 1024)
_DOCUMENT = MediaKind("document", 100 * _MB)

# The types of the contracts page ("Media") and Meta's supported-media list for documents.
_KINDS: Final[dict[str, MediaKind]] = {
    "image/jpeg": _IMAGE,
    "image/png": _IMAGE,
    **dict.fromkeys(("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), _AUDIO),
    "video/mp4": _VIDEO,
    "video/3gpp": _VIDEO,
    "image/webp": _STICKER,
    **dict.fromkeys(
        (
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        _DOCUMENT,
    ),
}
_ALIASES: Final = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/mp3": "audio/mpeg"}
# When Genesys names no MIME type, the file name's extension decides (no system mime table: pure).
_EXTENSIONS: Final = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
    "aac": "audio/aac", "amr": "audio/amr", "mp3": "audio/mpeg", "m4a": "audio/mp4", "ogg": "audio/ogg",
    "opus": "audio/ogg", "mp4": "video/mp4", "3gp": "video/3gpp", "txt": "text/plain", "pdf": "application/pdf",
    "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}  # fmt: skip


def mime_of(mime: str | None, filename: str | None) -> str | None:
    """The normalised MIME type of an attachment: the declared one, else guessed from the file name."""
    if mime:
        base = mime.split(";", 1)[0].strip().lower()
        return _ALIASES.get(base, base) or None
    if filename and "." in filename:
        return _EXTENSIONS.get(filename.rsplit(".", 1)[1].lower())
    return None


def media_kind(mime: str | None) -> MediaKind | None:
    """How WhatsApp sends this MIME type, or None when WhatsApp refuses it (e.g. image/gif)."""
    if not mime:
        return None
    return _KINDS.get(mime)


class AttachmentRefused(Exception):
    """An attachment that will not be sent, with the Genesys receipt reason code for the agent."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class FetchedAttachment:
    """The bytes of an attachment and the content type the server gave."""

    data: bytes
    content_type: str | None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower().rstrip("."), port


def _is_ip_or_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def attachment_url_refusal(url: str, *, region: str, api_url: str = "") -> str | None:
    """Why `url` must not be fetched, or None when it is on a Genesys host of this tenant.

    Allowed: https on the tenant's region domain or one of its subdomains (default port), or the exact
    scheme, host and port of `XYPR_GENESYS_API_URL` below its path when it is set (plain http only there).
    Never IP literals, localhost, other hosts, or URLs with credentials.
    """
    try:
        parts = urlsplit(url)
        scheme, host, port = _origin(url)
    except ValueError:
        return "the attachment URL is not a valid URL"
    if not host:
        return "the attachment URL has no host"
    if parts.username is not None or parts.password is not None:
        return "attachment URLs with credentials are not fetched"
    is_override = False
    if api_url:
        o_scheme, o_host, o_port = _origin(api_url)
        is_override = (scheme, host, port) == (o_scheme, o_host, o_port)
    if scheme != "https" and not (scheme == "http" and is_override):
        return f"only https attachment URLs are fetched (got {scheme or 'no scheme'})"
    if is_override:
        # Only below the override's own path: the configured API, not every route of that host.
        prefix = urlsplit(api_url).path.rstrip("/")
        path = parts.path
        climbs = ".." in unquote(path).split("/")
        if climbs or (prefix and not (path == prefix or path.startswith(prefix + "/"))):
            return f"attachment path {path} is outside {prefix or '/'}"
        return None
    if _is_ip_or_local(host):
        return f"attachment host {host} is an address, not a Genesys host"
    domain = region.lower().strip(".")
    if domain and (host == domain or host.endswith("." + domain)) and port == 443:
        return None
    return f"attachment host {host} is not a Genesys host of this tenant ({domain})"


async def fetch_attachment(
    http: httpx.AsyncClient, url: str, *, region: str, api_url: str, max_bytes: int
) -> FetchedAttachment:
    """Download an agent attachment from Genesys, refusing other hosts and stopping past `max_bytes`.

    Redirects are followed only to the same host (and only if that host passes the same check), at most
    `MAX_REDIRECTS` times. Network trouble, 429 and 5xx are transient; anything else is an
    `AttachmentRefused` with the receipt reason for the agent.
    """
    refusal = attachment_url_refusal(url, region=region, api_url=api_url)
    if refusal:
        raise AttachmentRefused("GeneralError", refusal)
    first_host = _origin(url)[1]
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with http.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    refusal = attachment_url_refusal(target, region=region, api_url=api_url)
                    if refusal or _origin(target)[1] != first_host:
                        raise AttachmentRefused(
                            "GeneralError", f"the attachment URL redirects elsewhere: {refusal or 'another host'}"
                        )
                    current = target
                    continue
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientError(f"attachment download answered HTTP {response.status_code}")
                if not response.is_success:
                    raise AttachmentRefused(
                        "GeneralError", f"the attachment could not be downloaded (HTTP {response.status_code})"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise AttachmentRefused(
                        "InvalidMediaContentLength",
                        f"the attachment has {declared} bytes; WhatsApp takes at most {max_bytes} for this type",
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise AttachmentRefused(
                            "InvalidMediaContentLength",
                            f"the attachment is larger than {max_bytes} bytes, the WhatsApp limit for this type",
                        )
                    chunks.append(chunk)
                if size == 0:
                    raise AttachmentRefused("InvalidMediaContentLength", "the attachment is empty")
                return FetchedAttachment(b"".join(chunks), response.headers.get("content-type"))
        except httpx.HTTPError as exc:
            raise TransientError(f"attachment download failed: {type(exc).__name__}") from exc
    raise AttachmentRefused("GeneralError", f"the attachment URL redirects more than {MAX_REDIRECTS} times")
