"""Conversation state: customer ↔ conversation mapping and message tracking (both ids, direction, status)."""
