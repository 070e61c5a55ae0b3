"""Faithful emulators of Meta Graph API and Genesys Cloud, and the page to play customer and agent."""
