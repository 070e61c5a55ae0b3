"""Meta WhatsApp Cloud API: wire models, webhook signature, Graph API client."""
