"""Agent attachments in the Genesys emulator: files an agent sends, served like Genesys download URLs."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from xypr.sandbox.multipart import MultipartError, parse_form_data
from xypr.sandbox.served_files import file_response

__all__ = ["AgentAttachment", "AgentAttachments", "AttachmentRequest", "router"]


@dataclass(frozen=True, slots=True)
class AgentAttachment:
    """A file an agent attached to a message."""

    attachment_id: str
    content: bytes
    mime_type: str
    filename: str | None
    answer_status: int | None = None


class AgentAttachments:
    """The files agents attached, and every download of them (to prove what was fetched)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.files: dict[str, AgentAttachment] = {}
        self.downloads: deque[str] = deque(maxlen=100_000)

    def add(
        self, content: bytes, mime_type: str, filename: str | None, answer_status: int | None = None
    ) -> AgentAttachment:
        """Keep a file under a fresh id (`answer_status`: its download always fails with that status)."""
        attachment = AgentAttachment(secrets.token_hex(16), content, mime_type, filename, answer_status)
        self.files[attachment.attachment_id] = attachment
        return attachment

    def url(self, attachment: AgentAttachment) -> str:
        """Where Xypr downloads it (the emulator's API host, as Genesys serves `/api/v2/downloads/…`)."""
        return f"{self.base_url}/api/v2/downloads/{attachment.attachment_id}"


class AttachmentRequest(BaseModel):
    """A file for an agent message: base64 bytes, MIME type, file name."""

    data_base64: str
    mime_type: str = Field(default="image/jpeg", min_length=3)
    filename: str | None = None
    answer_status: int | None = Field(default=None, ge=400, le=599, description="make every download fail so")


def get_attachments(request: Request) -> AgentAttachments:
    """The attachments of the emulator app serving this request."""
    attachments: AgentAttachments = request.app.state.agent_attachments
    return attachments


AttachmentsDep = Annotated[AgentAttachments, Depends(get_attachments)]

router = APIRouter(tags=["genesys sandbox"])


@router.post("/_sandbox/attachments")
async def add_attachment(request: Request, attachments: AttachmentsDep) -> dict[str, Any]:
    """Store a file an agent will attach; answers the `attachment` object to put in a message's content.

    JSON (`AttachmentRequest`: base64 bytes) or a multipart form with a `file` (what the sandbox page uploads).
    """
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    answer_status: int | None = None
    if content_type.startswith("multipart/"):
        try:
            form = parse_form_data(content_type, raw)
        except MultipartError as exc:
            raise HTTPException(400, str(exc)) from exc
        file = form.get("file")
        if file is None:
            raise HTTPException(400, "file is required")
        content, filename = file.content, file.filename
        mime_type = file.content_type or "application/octet-stream"
    else:
        try:
            body = AttachmentRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        try:
            content = base64.b64decode(body.data_base64, validate=True)
        except binascii.Error as exc:
            raise HTTPException(400, "data_base64 is not valid base64") from exc
        mime_type, filename, answer_status = body.mime_type, body.filename, body.answer_status
    if not content:
        raise HTTPException(400, "the file is empty")
    attachment = attachments.add(content, mime_type, filename, answer_status)
    media_type = {"image": "Image", "video": "Video", "audio": "Audio"}.get(mime_type.split("/")[0], "File")
    return {
        "id": attachment.attachment_id,
        "mediaType": media_type,
        "url": attachments.url(attachment),
        "mime": attachment.mime_type,
        "filename": attachment.filename,
        "contentSizeBytes": len(content),
    }


@router.get("/_sandbox/attachments/{attachment_id}/content")
async def attachment_content(attachment_id: str, attachments: AttachmentsDep) -> Response:
    """An agent attachment for the sandbox page to show; unlike the download URL, not counted as a download."""
    attachment = attachments.files.get(attachment_id)
    if attachment is None:
        raise HTTPException(404, f"attachment {attachment_id} not found")
    return file_response(attachment.content, attachment.mime_type, attachment.filename)


@router.get("/_sandbox/attachments/downloads")
async def attachment_downloads(attachments: AttachmentsDep) -> list[str]:
    """Ids of the attachments downloaded, in order (one entry per download)."""
    return list(attachments.downloads)


@router.get("/api/v2/downloads/{attachment_id}")
async def download(attachment_id: str, attachments: AttachmentsDep) -> Response:
    """The bytes of an agent attachment."""
    attachment = attachments.files.get(attachment_id)
    if attachment is None:
        raise HTTPException(404, f"download {attachment_id} not found")
    attachments.downloads.append(attachment_id)
    if attachment.answer_status is not None:
        return Response(status_code=attachment.answer_status)
    safe_name = re.sub(r"[^\w.\- ]", "_", attachment.filename or "")
    headers = {"Content-Disposition": f'attachment; filename="{safe_name}"'} if safe_name else None
    return Response(attachment.content, media_type=attachment.mime_type, headers=headers)
