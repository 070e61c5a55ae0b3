"""A small `multipart/form-data` reader on the standard library (no python-multipart needed)."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

__all__ = ["FormPart", "MultipartError", "parse_form_data"]


class MultipartError(ValueError):
    """The body is not a readable `multipart/form-data` document."""


@dataclass(frozen=True, slots=True)
class FormPart:
    """One form field: its bytes, and for files the filename and declared content type."""

    name: str
    content: bytes
    filename: str | None
    content_type: str | None

    @property
    def text(self) -> str:
        """The field's value as text."""
        return self.content.decode("utf-8", errors="replace")


def parse_form_data(content_type: str, body: bytes) -> dict[str, FormPart]:
    """Parse a `multipart/form-data` body; later fields of the same name win."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise MultipartError("expected multipart/form-data with a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise MultipartError("no parts found")
    parts: dict[str, FormPart] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        declared = part.get("content-type")
        parts[name] = FormPart(
            name=name,
            content=content,
            filename=part.get_filename(),
            content_type=part.get_content_type() if declared else None,
        )
    return parts
