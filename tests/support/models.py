"""Every ORM model registered on `Base.metadata`, for tests that compare the models with the migrated schema
(the application itself never needs them all at once: the migrations are the schema)."""

__all__ = ["load_all"]


def load_all() -> None:
    """Register every table on `Base.metadata`."""
    import xypr.audit.models
    import xypr.auth.models
    import xypr.state.models
    import xypr.tenants.models  # noqa: F401
