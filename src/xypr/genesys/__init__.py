"""Genesys Cloud Open Messaging: wire models, webhook signature, OAuth + API client."""
