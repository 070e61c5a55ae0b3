"""genesys-webhook: `POST /webhook/genesys` — verify the base64 signature, route by integration id, publish, ack."""
