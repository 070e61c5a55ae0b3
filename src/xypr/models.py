"""Imports every ORM model so `Base.metadata` is complete (migrations, tests)."""

__all__ = ["load_all"]


def load_all() -> None:
    """Register every table on `Base.metadata`."""
    import xypr.audit.models
    import xypr.auth.models
    import xypr.state.models
    import xypr.tenants.models  # noqa: F401
