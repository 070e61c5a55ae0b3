"""Agent attachments: fetched from any public address (never an internal one), within WhatsApp's limits.

A local server plays the CDN; a stub resolver gives its public-looking name a public address, and the
stubbed connection (the pinned resolver's answer) leads to the local server, so the tests prove what the
address check sees and what is connected to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.contracts import contract
from xypr.core.errors import TransientError
from xypr.genesys import attachments
from xypr.genesys.attachments import AttachmentPolicy, AttachmentRefused, fetch_attachment
from xypr.genesys.models import GenesysOutbound
from xypr.services.outbound_transformer.worker import whatsapp_takes
from xypr.transform.outbound import plan_outbound

CDN = "d3123134sdf42l.cloudfront.net"
CDN_ADDRESS = "52.84.12.34"  # a public address (CloudFront's range); the test connection leads it to 127.0.0.1
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 500


def _tls_for(*names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throw-away CA and a certificate for `names`: (server context, client context trusting only that CA)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xypr test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    chain = leaf.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "c.pem").write_bytes(chain)
        (Path(folder) / "k.pem").write_bytes(key_pem)
        server.load_cert_chain(Path(folder) / "c.pem", Path(folder) / "k.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


class _Cdn:
    """A local https server playing the CDN, and the record of what reached it."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, str | None]] = []  # (path, Host header, SNI name)
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> _Cdn:
        server_tls, self.client_tls = _tls_for(CDN, "cdn2.example.com")
        snis: list[str | None] = []
        server_tls.sni_callback = lambda _sock, name, _ctx: snis.append(name)  # type: ignore[assignment,misc,func-returns-value]

        async def record(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.path_qs, request.headers.get("Host", ""), snis[-1] if snis else None))
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
def dialled(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Stub the connection: the pinned addresses are recorded, then dialled at 127.0.0.1 (the test's CDN)."""
    seen: list[list[str]] = []
    original = attachments._PinnedResolver.resolve

    async def to_local(self: Any, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        results = await original(self, host, port, family)
        seen.append([result["host"] for result in results])
        return [{**result, "host": "127.0.0.1", "family": 2} for result in results]  # type: ignore[typeddict-item]

    monkeypatch.setattr(attachments._PinnedResolver, "resolve", to_local)
    return seen


def _resolver(table: dict[str, Sequence[str]], asked: list[str] | None = None) -> attachments.Resolve:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if asked is not None:
            asked.append(host)
        return table[host]

    return resolve


def _policy(cdn: _Cdn, **extra: Any) -> AttachmentPolicy:
    return AttachmentPolicy(tls=cdn.client_tls, timeout_seconds=5, accepts_type=whatsapp_takes, **extra)


def _file(body: bytes = JPEG, content_type: str = "image/jpeg") -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return serve


async def test_a_cdn_name_resolving_to_a_public_address_is_fetched_from_that_address_with_tls_for_the_name(
    dialled: list[list[str]],
) -> None:
    asked: list[str] = []
    async with _Cdn(_file()) as cdn:
        url = f"https://{CDN}:{cdn.port}/2021/02/image.jpg?Signature=abc"
        fetched = await fetch_attachment(
            url, policy=_policy(cdn), max_bytes=5_000_000, resolve=_resolver({CDN: [CDN_ADDRESS]}, asked)
        )
    assert fetched.data == JPEG
    assert fetched.content_type == "image/jpeg"
    assert asked == [CDN]  # resolved once: no second lookup that rebinding could change
    assert dialled == [[CDN_ADDRESS]]  # connected to exactly the checked address
    assert cdn.requests == [("/2021/02/image.jpg?Signature=abc", f"{CDN}:{cdn.port}", CDN)]


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.0.0.7"], "private"),
        (["169.254.169.254"], "link-local"),
        (["::1"], "loopback"),
        ([CDN_ADDRESS, "10.0.0.7"], "private"),  # one bad address among good ones refuses the name
    ],
)
async def test_a_name_resolving_to_an_internal_address_is_refused_before_any_connection(
    dialled: list[list[str]], addresses: list[str], why: str
) -> None:
    async with _Cdn(_file()) as cdn:
        with pytest.raises(AttachmentRefused) as refused:
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=5_000_000,
                resolve=_resolver({CDN: addresses}),
            )  # fmt: skip
    assert refused.value.reason == "GeneralError"
    assert CDN in refused.value.message
    assert why in refused.value.message
    assert dialled == []
    assert cdn.requests == []


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/a.jpg", "https://10.1.2.3/a.jpg", "https://169.254.169.254/latest", "https://[::1]/a"]
)
async def test_address_literals_of_internal_hosts_are_refused(url: str) -> None:
    with pytest.raises(AttachmentRefused) as refused:
        await fetch_attachment(url, policy=AttachmentPolicy(), max_bytes=1000, resolve=_resolver({}))
    assert "refused" in refused.value.message


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/a.jpg",
        "https://10.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/a.jpg",
        "https://internal.example/a.jpg",  # a name resolving to a private address
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused_and_not_followed(
    dialled: list[list[str]], target: str
) -> None:
    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": target})

    async with _Cdn(redirect) as cdn:
        with pytest.raises(AttachmentRefused) as refused:
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=1000,
                resolve=_resolver({CDN: [CDN_ADDRESS], "internal.example": ["192.168.1.1"]}),
            )  # fmt: skip
    assert "redirects elsewhere" in refused.value.message
    assert len(cdn.requests) == 1
    assert dialled == [[CDN_ADDRESS]]


async def test_a_redirect_to_another_public_host_is_checked_and_followed(dialled: list[list[str]]) -> None:
    async def serve(request: web.Request) -> web.Response:
        if request.path == "/a.jpg":
            return web.Response(status=302, headers={"Location": f"https://cdn2.example.com:{request.url.port}/b.jpg"})
        return web.Response(body=JPEG, headers={"Content-Type": "image/jpeg"})

    async with _Cdn(serve) as cdn:
        fetched = await fetch_attachment(
            f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=5_000_000,
            resolve=_resolver({CDN: [CDN_ADDRESS], "cdn2.example.com": ["93.184.215.14"]}),
        )  # fmt: skip
    assert fetched.data == JPEG
    assert dialled == [[CDN_ADDRESS], ["93.184.215.14"]]
    assert [(host.split(":")[0], sni) for _, host, sni in cdn.requests] == [
        (CDN, CDN),
        ("cdn2.example.com", "cdn2.example.com"),
    ]


async def test_redirect_loops_are_cut(dialled: list[list[str]]) -> None:
    async def loop(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": str(request.path)})

    async with _Cdn(loop) as cdn:
        with pytest.raises(AttachmentRefused, match="more than"):
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=1000,
                resolve=_resolver({CDN: [CDN_ADDRESS]}),
            )  # fmt: skip
    assert len(cdn.requests) == attachments.MAX_REDIRECTS + 1


async def test_a_declared_length_over_the_limit_is_refused_before_reading(dialled: list[list[str]]) -> None:
    async with _Cdn(_file(b"x" * 1001)) as cdn:
        with pytest.raises(AttachmentRefused) as refused:
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=1000,
                resolve=_resolver({CDN: [CDN_ADDRESS]}),
            )  # fmt: skip
    assert refused.value.reason == "InvalidMediaContentLength"


async def test_a_stream_without_length_is_cut_once_it_passes_the_limit(dialled: list[list[str]]) -> None:
    produced: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(2000):  # bounded: 2000 chunks of 1 KB, far past the 10 KB limit
                produced.append(1024)
                await response.write(b"y" * 1024)
                await asyncio.sleep(0.002)  # a slow origin: the client's cut, not socket buffers, ends it
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    async with _Cdn(endless) as cdn:
        with pytest.raises(AttachmentRefused) as refused:
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=10_000,
                resolve=_resolver({CDN: [CDN_ADDRESS]}),
            )  # fmt: skip
    assert refused.value.reason == "InvalidMediaContentLength"
    assert sum(produced) < 500 * 1024  # the connection was dropped long before the server was done


async def test_a_type_whatsapp_does_not_take_is_refused_while_streaming(dialled: list[list[str]]) -> None:
    async with _Cdn(_file(b"<html>login</html>", "text/html; charset=utf-8")) as cdn:
        with pytest.raises(AttachmentRefused) as refused:
            await fetch_attachment(
                f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=1000,
                resolve=_resolver({CDN: [CDN_ADDRESS]}),
            )  # fmt: skip
    assert refused.value.reason == "MediaTypeNotAllowed"
    assert "text/html" in refused.value.message


async def test_server_errors_are_transient_and_missing_files_are_refused(dialled: list[list[str]]) -> None:
    for status, expected in ((503, TransientError), (429, TransientError), (404, AttachmentRefused)):

        async def answer(_request: web.Request, status: int = status) -> web.Response:
            return web.Response(status=status)

        async with _Cdn(answer) as cdn:
            with pytest.raises(expected):
                await fetch_attachment(
                    f"https://{CDN}:{cdn.port}/a.jpg", policy=_policy(cdn), max_bytes=1000,
                    resolve=_resolver({CDN: [CDN_ADDRESS]}),
                )  # fmt: skip


async def test_a_name_that_does_not_exist_is_refused_and_a_dns_outage_is_transient() -> None:
    async def nxdomain(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def outage(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(AttachmentRefused, match="does not resolve"):
        await fetch_attachment(f"https://{CDN}/a.jpg", policy=AttachmentPolicy(), max_bytes=1000, resolve=nxdomain)
    with pytest.raises(TransientError):
        await fetch_attachment(f"https://{CDN}/a.jpg", policy=AttachmentPolicy(), max_bytes=1000, resolve=outage)


async def test_the_configured_genesys_origin_is_trusted_over_plain_http_on_a_private_address() -> None:
    app = web.Application()
    app.router.add_get("/media/tenant/x/a.jpg", _file())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        policy = AttachmentPolicy.from_settings(
            genesys_api_url=f"http://127.0.0.1:{port}/sandbox/genesys", host_allowlist="", timeout_seconds=5
        )
        fetched = await fetch_attachment(f"http://127.0.0.1:{port}/media/tenant/x/a.jpg", policy=policy, max_bytes=1000)
        assert fetched.data == JPEG
        # The same address on another port is not the configured origin.
        with pytest.raises(AttachmentRefused):
            await fetch_attachment(f"http://127.0.0.1:{port + 1}/a.jpg", policy=policy, max_bytes=1000)
    finally:
        await runner.cleanup()


async def test_the_captured_genesys_attachment_goes_through_the_outbound_plan_and_is_fetched(
    dialled: list[list[str]],
) -> None:
    captured: dict[str, Any] = contract("genesys/captured-openmessaging-outbound-attachment-image.json")
    async with _Cdn(_file()) as cdn:
        # The capture's URL, served by the test CDN (same name, its port).
        original = captured["content"][0]["attachment"]["url"]
        host = original.split("/")[2]
        captured["content"][0]["attachment"]["url"] = original.replace(host, f"{CDN}:{cdn.port}")
        message = GenesysOutbound.model_validate(captured)
        plan = plan_outbound(message, to=message.channel.to.id, id_type=message.channel.to.id_type)
        assert plan.attachment is not None, plan
        source = plan.attachment
        fetched = await fetch_attachment(
            source.url, policy=_policy(cdn), max_bytes=source.max_bytes, resolve=_resolver({CDN: [CDN_ADDRESS]})
        )
    assert fetched.data == JPEG
    assert source.mime_type == "image/jpeg"
    assert cdn.requests[0][0] == "/api/v2/downloads/pce1234456"
