"""genesys-api: delivers Open Messaging requests to Genesys Cloud."""
