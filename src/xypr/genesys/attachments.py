"""Genesys agent attachments: a download that reaches public addresses only, with size and media-type caps."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
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
    "Resolve",
    "address_refusal",
    "fetch_attachment",
    "probe_attachment",
    "system_resolve",
]

MAX_REDIRECTS: Final = 3


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
    # Whether the receiving side takes a (normalised, lower-case) media type; None: any type.
    accepts_type: Callable[[str], bool] | None = None

    @classmethod
    def from_settings(
        cls,
        *,
        genesys_api_url: str,
        host_allowlist: str,
        timeout_seconds: float,
        accepts_type: Callable[[str], bool] | None = None,
        also_trusted: Sequence[str] = (),
    ) -> AttachmentPolicy:
        """The policy of the settings: the configured Genesys API origin trusted, the allowlist parsed."""
        urls = [url for url in (genesys_api_url, *also_trusted) if url.strip()]
        trusted = frozenset(_origin(url) for url in urls)
        hosts = tuple(
            host.strip().lower().rstrip(".").removeprefix("*") for host in host_allowlist.split(",") if host.strip()
        )
        return cls(
            trusted_origins=trusted, host_allowlist=hosts, timeout_seconds=timeout_seconds, accepts_type=accepts_type
        )

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


def _media_type_refusal(content_type: str | None, accepts_type: Callable[[str], bool] | None) -> str | None:
    if not content_type or accepts_type is None:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if not mime or mime in _OPAQUE_TYPES or accepts_type(mime):
        return None
    return f"the attachment server sent {mime}, a type WhatsApp does not take"


@asynccontextmanager
async def _final_answer(url: str, policy: AttachmentPolicy, resolve: Resolve) -> AsyncIterator[aiohttp.ClientResponse]:
    """The answer at the end of the redirect chain, each hop checked, resolved once and connected to at exactly
    the addresses checked (TLS still verifies the name); network trouble while it is open is transient."""
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
                    yield response
                    return
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise TransientError(f"attachment download failed: {type(exc).__name__}") from exc
    raise AttachmentRefused("GeneralError", f"the attachment URL redirects more than {MAX_REDIRECTS} times")


async def fetch_attachment(
    url: str, *, policy: AttachmentPolicy, max_bytes: int, resolve: Resolve = system_resolve
) -> FetchedAttachment:
    """Download an agent attachment, reaching only public addresses and stopping past `max_bytes`.

    Each URL of the chain (redirects are followed by hand, at most `MAX_REDIRECTS`) is checked, resolved
    once, and connected to at exactly the addresses checked; TLS still verifies the name. Network trouble,
    429 and 5xx are transient; anything else is an `AttachmentRefused` with the receipt reason for the agent.
    """
    async with _final_answer(url, policy, resolve) as response:
        return await _read(response, max_bytes, policy.accepts_type)


async def probe_attachment(
    url: str, *, policy: AttachmentPolicy, max_bytes: int, resolve: Resolve = system_resolve
) -> str | None:
    """Check, before anything is sent, that `url` answers with a file that could be sent: by the same rules as
    `fetch_attachment` (addresses, redirects, status, media type, declared size), reading no body. Returns
    the content type the server gave."""
    async with _final_answer(url, policy, resolve) as response:
        return _checked_answer(response, max_bytes, policy.accepts_type)


def _checked_answer(
    response: aiohttp.ClientResponse, max_bytes: int, accepts_type: Callable[[str], bool] | None
) -> str | None:
    """The content type of a final answer whose status, type and declared size allow it to be read."""
    status = response.status
    if status == 429 or status >= 500:
        raise TransientError(f"attachment download answered HTTP {status}")
    if not 200 <= status < 300:
        raise AttachmentRefused("GeneralError", f"the attachment could not be downloaded (HTTP {status})")
    content_type = response.headers.get("content-type")
    refusal = _media_type_refusal(content_type, accepts_type)
    if refusal:
        raise AttachmentRefused("MediaTypeNotAllowed", refusal)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AttachmentRefused(
            "InvalidMediaContentLength",
            f"the attachment has {declared} bytes; WhatsApp takes at most {max_bytes} for this type",
        )
    return content_type


async def _read(
    response: aiohttp.ClientResponse, max_bytes: int, accepts_type: Callable[[str], bool] | None
) -> FetchedAttachment:
    """The body of a final answer, within the size and type caps (checked before and while reading)."""
    content_type = _checked_answer(response, max_bytes, accepts_type)
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
