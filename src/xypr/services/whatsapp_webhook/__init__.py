"""whatsapp-webhook: `GET/POST /webhook/whatsapp` — verify, route by phone number id, publish, ack."""
