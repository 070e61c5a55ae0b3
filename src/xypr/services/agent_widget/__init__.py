"""The agent widget: a Genesys Interaction Widget showing what Genesys cannot about a WhatsApp conversation."""
