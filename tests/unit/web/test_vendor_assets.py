"""The packaged browser assets are the pinned files their checksums name, served at /static without a token."""

from __future__ import annotations

import hashlib

from xypr.services.gateway.paths import PathKind, PathRules
from xypr.web import STATIC_DIR


def test_every_vendored_asset_matches_its_recorded_checksum() -> None:
    lines = (STATIC_DIR / "vendor" / "vendor.sha256").read_text().splitlines()
    assert len(lines) >= 5
    for line in lines:
        digest, name = line.split(maxsplit=1)
        content = (STATIC_DIR / "vendor" / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest, name


def test_static_assets_are_public_for_the_gateway() -> None:
    rules = PathRules.of(sandbox_prefixes=(), metrics_public=True)
    assert rules.kind("/static/vendor/htmx-2.0.4.min.js") is PathKind.PUBLIC
    assert rules.kind("/staticky") is PathKind.PROTECTED
