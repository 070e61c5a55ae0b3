"""The state-manager service: conversation mapping, context, message tracking, media and stats."""
