"""Agent attachments for WhatsApp: the media types and sizes Meta takes; a fetch that reaches public addresses only."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from xypr.core.errors import TransientError
from xypr.core.http import USER_AGENT

__all__ = [
    "MAX_REDIRECTS",
    "AttachmentPolicy",
    "AttachmentRefused",
    "FetchedAttachment",
    "MediaKind",
    "Resolve",
    "accepted_media",
    "address_refusal",
    "fetch_attachment",
    "media_kind",
    "mime_of",
    "system_resolve",
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


def accepted_media() -> dict[str, MediaKind]:
    """Every MIME type WhatsApp takes from an agent, with how it sends it (for documentation and forms)."""
    return dict(_KINDS)


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


Origin = tuple[str, str, int]


def _origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower().rstrip("."), port


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """Which attachment URLs may be fetched.

    Any https URL whose name resolves only to public addresses, unless the operator set an allowlist of
    host names (`XYPR_ATTACHMENT_HOST_ALLOWLIST`). The origin of `XYPR_GENESYS_API_URL` (the emulator in
    development) is trusted whole: its scheme may be http and its address private.
    """

    trusted_origins: frozenset[Origin] = frozenset()
    # Exact host names, or ".example.com" / "*.example.com" for every subdomain of example.com.
    host_allowlist: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    # The certificate authorities TLS trusts; None: the system's (tests hand in their own CA).
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, *, genesys_api_url: str, host_allowlist: str, timeout_seconds: float) -> AttachmentPolicy:
        """The policy of the settings: the configured Genesys API origin trusted, the allowlist parsed."""
        trusted = frozenset({_origin(genesys_api_url)}) if genesys_api_url.strip() else frozenset()
        hosts = tuple(
            host.strip().lower().rstrip(".").removeprefix("*") for host in host_allowlist.split(",") if host.strip()
        )
        return cls(trusted_origins=trusted, host_allowlist=hosts, timeout_seconds=timeout_seconds)

    def url_refusal(self, url: str) -> tuple[str | None, bool]:
        """Why `url` must not be fetched (None when it may be), and whether its origin is trusted whole."""
        try:
            parts = urlsplit(url)
            origin = _origin(url)
        except ValueError:
            return "the attachment URL is not a valid URL", False
        scheme, host, _port = origin
        if not host:
            return "the attachment URL has no host", False
        if parts.username is not None or parts.password is not None:
            return "attachment URLs with credentials are not fetched", False
        if origin in self.trusted_origins:
            return None, True
        if scheme != "https":
            return f"only https attachment URLs are fetched (got {scheme or 'no scheme'})", False
        if self.host_allowlist and not any(_host_matches(host, allowed) for allowed in self.host_allowlist):
            return f"attachment host {host} is not in XYPR_ATTACHMENT_HOST_ALLOWLIST", False
        return None, False


def _host_matches(host: str, allowed: str) -> bool:
    if allowed.startswith("."):
        return host.endswith(allowed)
    return host == allowed


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to the IPv4 internet (mapped, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def address_refusal(address: str) -> str | None:
    """Why an attachment server at `address` must not be reached (None for a public unicast address)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_refusal(str(embedded))
            return f"{address} carries {inner}" if inner else None
    for flag, what in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
    ):
        if flag:
            return f"{address} is {what}"
    if not ip.is_global:  # shared address space (100.64/10) and the like: not the public internet either
        return f"{address} is not a public address"
    return None


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host` (IPv4 and IPv6, duplicates removed)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedResolver(AbstractResolver):
    """Hands aiohttp only the addresses already checked for a name: it never asks DNS itself, so a
    rebinding DNS server cannot swap in another address between the check and the connection."""

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.pins.get((host.lower().rstrip("."), port))
        if not addresses:
            raise OSError(f"{host}:{port} was not checked before connecting")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(slots=True)
class _Hop:
    url: str
    host: str
    port: int
    trusted: bool
    addresses: list[str] = field(default_factory=list)


async def _checked_hop(url: str, policy: AttachmentPolicy, resolve: Resolve) -> _Hop:
    """Check one URL of the chain (the first or a redirect target) and resolve it to allowed addresses."""
    refusal, trusted = policy.url_refusal(url)
    if refusal:
        raise AttachmentRefused("GeneralError", refusal)
    _scheme, host, port = _origin(url)
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
        addresses = [literal]
    except ValueError:
        try:
            addresses = list(await resolve(host, port))
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise AttachmentRefused("GeneralError", f"attachment host {host} does not resolve") from exc
            raise TransientError(f"attachment host {host} could not be resolved: {exc}") from exc
        except OSError as exc:
            raise TransientError(f"attachment host {host} could not be resolved: {exc}") from exc
    if not addresses:
        raise AttachmentRefused("GeneralError", f"attachment host {host} does not resolve")
    if not trusted:
        # Every address must be public: refusing only some would let DNS pick which one we reach.
        for address in addresses:
            why = address_refusal(address)
            if why:
                raise AttachmentRefused("GeneralError", f"attachment host {host} refused: {why}")
    return _Hop(url, host, port, trusted, addresses)


# What a CDN may call any file; everything else must be a type WhatsApp takes (an HTML error page is not).
_OPAQUE_TYPES: Final = frozenset({"application/octet-stream", "binary/octet-stream"})


def _media_type_refusal(content_type: str | None) -> str | None:
    if not content_type:
        return None
    mime = mime_of(content_type, None)
    if mime is None or mime in _OPAQUE_TYPES or media_kind(mime) is not None:
        return None
    return f"the attachment server sent {mime}, a type WhatsApp does not take"


async def fetch_attachment(
    url: str, *, policy: AttachmentPolicy, max_bytes: int, resolve: Resolve = system_resolve
) -> FetchedAttachment:
    """Download an agent attachment, reaching only public addresses and stopping past `max_bytes`.

    Each URL of the chain (redirects are followed by hand, at most `MAX_REDIRECTS`) is checked, resolved
    once, and connected to at exactly the addresses checked; TLS still verifies the name. Network trouble,
    429 and 5xx are transient; anything else is an `AttachmentRefused` with the receipt reason for the agent.
    """
    hop = await _checked_hop(url, policy, resolve)
    pinned = _PinnedResolver()
    timeout = aiohttp.ClientTimeout(total=policy.timeout_seconds * 3, sock_connect=policy.timeout_seconds)
    # One session per download: its connections were made to addresses of this check only. No proxy from the
    # environment: a proxy would resolve the name again, out of our sight.
    connector = aiohttp.TCPConnector(
        resolver=pinned, use_dns_cache=False, limit=4, ssl=policy.tls if policy.tls is not None else True
    )
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, headers={"User-Agent": USER_AGENT}
    ) as session:
        for _ in range(MAX_REDIRECTS + 1):
            pinned.pins[(hop.host, hop.port)] = hop.addresses
            try:
                async with session.get(hop.url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        target = urljoin(hop.url, response.headers.get("location", ""))
                        try:
                            hop = await _checked_hop(target, policy, resolve)
                        except AttachmentRefused as refused:
                            raise AttachmentRefused(
                                "GeneralError", f"the attachment URL redirects elsewhere: {refused.message}"
                            ) from refused
                        continue
                    return await _read(response, max_bytes)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise TransientError(f"attachment download failed: {type(exc).__name__}") from exc
    raise AttachmentRefused("GeneralError", f"the attachment URL redirects more than {MAX_REDIRECTS} times")


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> FetchedAttachment:
    """The body of a final answer, within the size and type caps (checked before and while reading)."""
    status = response.status
    if status == 429 or status >= 500:
        raise TransientError(f"attachment download answered HTTP {status}")
    if not 200 <= status < 300:
        raise AttachmentRefused("GeneralError", f"the attachment could not be downloaded (HTTP {status})")
    content_type = response.headers.get("content-type")
    refusal = _media_type_refusal(content_type)
    if refusal:
        raise AttachmentRefused("MediaTypeNotAllowed", refusal)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AttachmentRefused(
            "InvalidMediaContentLength",
            f"the attachment has {declared} bytes; WhatsApp takes at most {max_bytes} for this type",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise AttachmentRefused(
                "InvalidMediaContentLength",
                f"the attachment is larger than {max_bytes} bytes, the WhatsApp limit for this type",
            )
        chunks.append(chunk)
    if size == 0:
        raise AttachmentRefused("InvalidMediaContentLength", "the attachment is empty")
    return FetchedAttachment(b"".join(chunks), content_type)
