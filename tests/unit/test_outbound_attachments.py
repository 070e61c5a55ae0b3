"""Agent attachments: only Genesys hosts are fetched, never more than WhatsApp's limit, redirects checked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from xypr.core.errors import TransientError
from xypr.whatsapp.attachments import AttachmentRefused, attachment_url_refusal, fetch_attachment, media_kind, mime_of

REGION = "usw2.pure.cloud"
OVERRIDE = "http://127.0.0.1:8080/sandbox/genesys"


@pytest.mark.parametrize(
    "url",
    [
        "https://api-downloads.usw2.pure.cloud/api/v2/downloads/pce1234456",
        "https://api.usw2.pure.cloud/api/v2/downloads/x",
        "https://usw2.pure.cloud/file.jpg",
        "http://127.0.0.1:8080/sandbox/genesys/api/v2/downloads/abc",
    ],
)
def test_genesys_hosts_of_the_tenant_and_the_configured_api_host_are_fetched(url: str) -> None:
    assert attachment_url_refusal(url, region=REGION, api_url=OVERRIDE) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://api-downloads.usw2.pure.cloud/a", "https"),
        ("https://api.mypurecloud.ie/a", "not a Genesys host"),
        ("https://evil.example/usw2.pure.cloud/a", "not a Genesys host"),
        ("https://usw2.pure.cloud.evil.example/a", "not a Genesys host"),
        ("https://evilusw2.pure.cloud/a", "not a Genesys host"),
        ("https://169.254.169.254/latest/meta-data", "address"),
        ("https://[::1]/a", "address"),
        ("https://localhost/a", "address"),
        ("http://127.0.0.1:8081/sandbox/genesys/a", "https"),
        ("https://127.0.0.1:8080/a", "address"),
        ("https://api.usw2.pure.cloud:8443/a", "not a Genesys host"),
        ("https://user:pw@api.usw2.pure.cloud/a", "credentials"),
        ("file:///etc/passwd", "host"),
        ("ftp://api.usw2.pure.cloud/a", "https"),
    ],
)
def test_other_hosts_addresses_and_schemes_are_refused(url: str, why: str) -> None:
    refusal = attachment_url_refusal(url, region=REGION, api_url=OVERRIDE)
    assert refusal is not None
    assert why in refusal


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/metrics",
        "http://127.0.0.1:8080/media/tenant/x",
        "http://127.0.0.1:8080/sandbox/genesys/../../metrics",
        "http://127.0.0.1:8080/sandbox/genesys/%2e%2e/meta/x",
        "http://127.0.0.1:8080/sandbox/genesysX/a",
    ],
)
def test_on_the_api_override_host_only_the_api_path_is_fetched(url: str) -> None:
    refusal = attachment_url_refusal(url, region=REGION, api_url=OVERRIDE)
    assert refusal is not None
    assert "outside /sandbox/genesys" in refusal


def test_without_an_api_override_plain_http_is_never_fetched() -> None:
    assert attachment_url_refusal("http://127.0.0.1:8080/a", region=REGION, api_url="") is not None


@pytest.mark.parametrize(
    ("mime", "filename", "kind"),
    [("image/jpeg", None, "image"), ("IMAGE/JPG", None, "image"), ("audio/ogg; codecs=opus", None, "audio"),
     ("audio/mp4", None, "audio"), ("video/mp4", None, "video"), ("image/webp", None, "sticker"),
     (None, "report.PDF", "document"), ("application/pdf", None, "document"), ("image/gif", None, None),
     ("application/zip", None, None), (None, "noextension", None)],
)  # fmt: skip
def test_media_kinds_follow_whatsapp_supported_types(mime: str | None, filename: str | None, kind: str | None) -> None:
    found = media_kind(mime_of(mime, filename))
    assert (found.whatsapp_type if found else None) == kind


URL = "https://api-downloads.usw2.pure.cloud/api/v2/downloads/f1"


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False)


async def _fetch(client: httpx.AsyncClient, url: str = URL, max_bytes: int = 1000) -> bytes:
    fetched = await fetch_attachment(client, url, region=REGION, api_url="", max_bytes=max_bytes)
    return fetched.data


async def test_a_file_within_the_limit_is_downloaded() -> None:
    async with _client(
        lambda request: httpx.Response(200, content=b"x" * 1000, headers={"content-type": "image/png"})
    ) as c:
        assert await _fetch(c) == b"x" * 1000


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async with _client(lambda request: httpx.Response(200, content=b"x" * 1001)) as client:
        with pytest.raises(AttachmentRefused) as refused:
            await _fetch(client)
    assert refused.value.reason == "InvalidMediaContentLength"


async def test_a_stream_without_length_is_cut_once_it_passes_the_limit() -> None:
    produced: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(100):  # bounded: 100 chunks of 100 bytes, far past the 1 000-byte limit
            produced.append(100)
            yield b"y" * 100

    async with _client(lambda request: httpx.Response(200, content=endless())) as client:
        with pytest.raises(AttachmentRefused) as refused:
            await _fetch(client)
    assert refused.value.reason == "InvalidMediaContentLength"
    assert sum(produced) <= 1100  # stopped reading right after the limit


async def test_a_redirect_to_another_host_is_refused_and_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://attacker.example/steal"})

    async with _client(handler) as client:
        with pytest.raises(AttachmentRefused, match="redirects elsewhere"):
            await _fetch(client)
    assert seen == [URL]


async def test_a_redirect_on_the_same_host_is_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/f1"):
            return httpx.Response(302, headers={"location": "/api/v2/downloads/f1-real"})
        return httpx.Response(200, content=b"real")

    async with _client(handler) as client:
        assert await _fetch(client) == b"real"


async def test_redirect_loops_are_cut() -> None:
    async with _client(lambda request: httpx.Response(302, headers={"location": URL})) as client:
        with pytest.raises(AttachmentRefused, match="more than"):
            await _fetch(client)


async def test_server_errors_are_transient_and_missing_files_are_refused() -> None:
    async with _client(lambda request: httpx.Response(503)) as client:
        with pytest.raises(TransientError):
            await _fetch(client)
    async with _client(lambda request: httpx.Response(404)) as client:
        with pytest.raises(AttachmentRefused, match="HTTP 404"):
            await _fetch(client)


async def test_a_foreign_url_is_refused_without_any_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"secret")

    async with _client(handler) as client:
        with pytest.raises(AttachmentRefused, match="not a Genesys host"):
            await _fetch(client, url="https://metadata.internal.example/")
    assert seen == []
