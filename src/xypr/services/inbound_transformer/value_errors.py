"""Value-level `errors[]` of Meta webhooks (not tied to one message): logged and counted, never a failure."""

from __future__ import annotations

from typing import Any, Final

from xypr.core.logging import get_logger
from xypr.core.metrics import WHATSAPP_ERRORS, WHATSAPP_UNKNOWN_FIELDS
from xypr.events import InboundWhatsAppEvent
from xypr.tenants.service import TenantRuntime

__all__ = ["report_value_error"]

log = get_logger(__name__)

_KNOWN_FIELDS: Final = frozenset({"code", "title", "message", "error_data", "href", "type", "error_subcode"})
# Meta's texts are short; anything longer is cut so one odd payload cannot flood the logs.
_TEXT_LIMIT: Final = 500


def report_value_error(tenant: TenantRuntime, event: InboundWhatsAppEvent) -> str:
    """Log one `value.errors[]` item with its code and texts, count it by code; returns the outcome label."""
    item = event.item
    code = item.get("code")
    label = str(code) if isinstance(code, int) else "unknown"
    unknown = sorted(set(item) - _KNOWN_FIELDS)
    if unknown:
        WHATSAPP_UNKNOWN_FIELDS.labels("error").inc()
    WHATSAPP_ERRORS.labels(label).inc()
    log.warning(
        "whatsapp.value_error",
        tenant_id=tenant.id,
        phone_number_id=event.phone_number_id,
        code=code if isinstance(code, int) else None,
        title=_text(item.get("title")),
        message=_text(item.get("message")),
        details=_text(_details(item)),
        unknown_fields=unknown[:20] or None,
    )
    return "reported"


def _details(item: dict[str, Any]) -> object:
    data = item.get("error_data")
    return data.get("details") if isinstance(data, dict) else None


def _text(value: object) -> str | None:
    return str(value)[:_TEXT_LIMIT] if value is not None else None
