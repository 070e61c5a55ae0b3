"""The media WhatsApp takes: for each MIME type, the message type, the largest file and whether a caption fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MediaKind", "accepted_media", "media_kind", "mime_of"]

_MB: Final = 1024 * 1024


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
