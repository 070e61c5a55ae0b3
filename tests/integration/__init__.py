"""Integration tests: the backends against real services (or their embedded twins)."""
