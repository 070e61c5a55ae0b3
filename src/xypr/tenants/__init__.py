"""Tenants: one organisation = one Genesys org + one WhatsApp Business number; secrets sealed at rest."""
