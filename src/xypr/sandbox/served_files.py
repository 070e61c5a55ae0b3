"""How the emulators hand stored files to the sandbox page: media inline, everything else as a download."""

from __future__ import annotations

import re

from fastapi import Response

__all__ = ["file_response"]

# Shown in the page as <img>, <audio> or <video>; any other type (HTML, SVG, PDF…) is only downloaded,
# so a file a "customer" uploads can never run as a page of the sandbox's origin.
_INLINE_PREFIXES = ("image/jpeg", "image/png", "image/webp", "image/gif", "audio/", "video/")


def file_response(content: bytes, mime_type: str, filename: str | None) -> Response:
    """The bytes with their type; inline only for images, audio and video, locked down either way."""
    base = mime_type.split(";", 1)[0].strip().lower()
    inline = base.startswith(_INLINE_PREFIXES)
    safe_name = re.sub(r"[^\w.\- ]", "_", filename or "")[:120] or "file"
    headers = {
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{safe_name}"',
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=300",
    }
    return Response(content, media_type=base if inline else "application/octet-stream", headers=headers)
