"""inbound-transformer: Meta webhook items → Open Messaging requests, with state."""
