"""Alembic environment: runs on the connection handed over by `xypr.backends.db.migrate`."""

from alembic import context

from xypr.backends.db.base import Base
from xypr.models import load_all

load_all()
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
