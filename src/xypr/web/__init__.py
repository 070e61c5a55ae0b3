"""Shared ground of the server-rendered pages: the packaged static assets."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "STATIC_PREFIX", "static_files"]

STATIC_DIR = Path(__file__).parent / "static"
# Every page loads its scripts and styles from here; `vendor/` holds the pinned third-party assets
# (`make vendor`, checksums in vendor/vendor.sha256), so no page ever asks an outside host.
STATIC_PREFIX = "/static"


def static_files() -> StaticFiles:
    """The ASGI app serving the packaged assets (mounted at `/static` on every HTTP process; public)."""
    return StaticFiles(directory=STATIC_DIR)
