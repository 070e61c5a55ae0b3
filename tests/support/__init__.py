"""Helpers shared by the test suites (service emulators, fixtures' building blocks)."""
