"""Agent attachment rules: which URLs and addresses may be fetched, and the media types WhatsApp takes.

The fetches themselves (a local CDN, a stub resolver, TLS) are in tests/integration/test_attachment_fetch.py.
"""

from __future__ import annotations

import pytest

from xypr.genesys.attachments import AttachmentPolicy, address_refusal
from xypr.whatsapp.mediatypes import media_kind, mime_of

CDN = "d3123134sdf42l.cloudfront.net"
CDN_ADDRESS = "52.84.12.34"  # a public address (CloudFront's range); the test connection leads it to 127.0.0.1
SANDBOX_API = "http://127.0.0.1:8080/sandbox/genesys"


@pytest.mark.parametrize(
    "url",
    [
        f"https://{CDN}/2021/02/image.jpg?Signature=abc",
        "https://api-downloads.usw2.pure.cloud/api/v2/downloads/pce1234456",
        "https://files.example.org:8443/a.pdf",
        "http://127.0.0.1:8080/sandbox/genesys/api/v2/downloads/abc",
        "http://127.0.0.1:8080/media/tenant/x/a.jpg",  # the whole origin of XYPR_GENESYS_API_URL, any path
    ],
)
def test_https_urls_and_the_configured_genesys_origin_pass_the_url_check(url: str) -> None:
    refusal, _trusted = AttachmentPolicy.from_settings(
        genesys_api_url=SANDBOX_API, host_allowlist="", timeout_seconds=5
    ).url_refusal(url)
    assert refusal is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"http://{CDN}/a.jpg", "https"),
        ("http://127.0.0.1:8081/sandbox/genesys/a", "https"),  # another port: not the configured origin
        ("https://user:pw@api.usw2.pure.cloud/a", "credentials"),
        ("file:///etc/passwd", "host"),
        ("ftp://api.usw2.pure.cloud/a", "https"),
    ],
)
def test_other_schemes_credentials_and_hostless_urls_are_refused(url: str, why: str) -> None:
    refusal, _ = AttachmentPolicy.from_settings(
        genesys_api_url=SANDBOX_API, host_allowlist="", timeout_seconds=5
    ).url_refusal(url)
    assert refusal is not None
    assert why in refusal


def test_an_operator_allowlist_admits_only_its_hosts_and_their_subdomains_when_asked() -> None:
    policy = AttachmentPolicy.from_settings(
        genesys_api_url="", host_allowlist="*.cloudfront.net, api-downloads.usw2.pure.cloud", timeout_seconds=5
    )
    assert policy.url_refusal(f"https://{CDN}/a.jpg")[0] is None
    assert policy.url_refusal("https://api-downloads.usw2.pure.cloud/a")[0] is None
    refusal = policy.url_refusal("https://evil.example/a.jpg")[0]
    assert refusal is not None
    assert "XYPR_ATTACHMENT_HOST_ALLOWLIST" in refusal
    assert policy.url_refusal("https://cloudfront.net.evil.example/a")[0] is not None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a public address"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_internal_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    refusal = address_refusal(address)
    assert refusal is not None
    assert why in refusal


@pytest.mark.parametrize("address", [CDN_ADDRESS, "93.184.215.14", "2600:9000:2000::1", "::ffff:52.84.12.34"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


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


# -- fetching -----------------------------------------------------------------------------------------
