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
from pydantic import BaseModel, Field

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
async def add_attachment(request: AttachmentRequest, attachments: AttachmentsDep) -> dict[str, Any]:
    """Store a file an agent will attach; answers the `attachment` object to put in a message's content."""
    try:
        content = base64.b64decode(request.data_base64, validate=True)
    except binascii.Error as exc:
        raise HTTPException(400, "data_base64 is not valid base64") from exc
    attachment = attachments.add(content, request.mime_type, request.filename, request.answer_status)
    media_type = {"image": "Image", "video": "Video", "audio": "Audio"}.get(request.mime_type.split("/")[0], "File")
    return {
        "id": attachment.attachment_id,
        "mediaType": media_type,
        "url": attachments.url(attachment),
        "mime": attachment.mime_type,
        "filename": attachment.filename,
        "contentSizeBytes": len(content),
    }


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
