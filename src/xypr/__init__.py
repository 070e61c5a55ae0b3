"""Xypr: a multi-tenant bridge between the WhatsApp Business Cloud API and Genesys Cloud Open Messaging."""

__version__ = "0.1.0"
