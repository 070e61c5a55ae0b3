"""Backends: one interface per concern (db, broker, cache, storage), production and embedded implementations."""
