"""whatsapp-api: delivers Graph API sends to Meta; failures come back to Genesys as receipts."""
