"""Cross-cutting pieces: logging, security, errors, HTTP client, retry policy."""
