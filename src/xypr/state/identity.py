"""A customer changed phone number or BSUID: their conversation follows them, Genesys keeps its customer id."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from xypr.core.logging import get_logger
from xypr.state.details import MessageDetails
from xypr.state.models import Conversation, Message
from xypr.state.service import find_conversation

__all__ = ["follow_identity", "keep_told_as"]

log = get_logger(__name__)


def keep_told_as(notice: Message, conversation: Conversation) -> str:
    """The id Genesys is told an identity notice under: the one it knows the customer by, kept on the
    notice's row the first time so that a redelivery (after the move) tells the same."""
    details = notice.details or MessageDetails()
    told_as = details.customer_id or conversation.genesys_customer_id
    notice.details = details.merged(MessageDetails(customer_id=told_as))
    return told_as


async def follow_identity(
    session: AsyncSession, conversation: Conversation, *, new_key: str | None, new_bsuid: str | None, change: str | None
) -> None:
    """Move the conversation to the customer's new key (unless a conversation has it already: that one
    stays theirs, nothing is merged) and new BSUID. Only the WhatsApp side moves."""
    if new_key and new_key != conversation.wa_id:
        taken = await find_conversation(session, tenant_id=conversation.tenant_id, wa_id=new_key)
        if taken is not None:
            log.info("inbound.identity_target_exists", tenant_id=conversation.tenant_id, conversation_id=taken.id)
            return
        log.info("inbound.identity_changed", tenant_id=conversation.tenant_id, conversation_id=conversation.id,
                 change=change)  # fmt: skip
        conversation.wa_id = new_key
    if new_bsuid:
        conversation.bsuid = new_bsuid
    await session.flush()
