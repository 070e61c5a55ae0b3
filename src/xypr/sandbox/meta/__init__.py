"""Emulated Meta Graph API (WhatsApp Cloud API): sends, statuses, media, customers, the 24 h window."""

from xypr.sandbox.meta.app import create_meta_app
from xypr.sandbox.meta.state import MetaSandbox

__all__ = ["MetaSandbox", "create_meta_app"]
