"""End-to-end tests through the HTTP endpoints, the pipeline and the emulators."""
