"""Alembic environment: runs on the connection handed over by `xypr.backends.db.migrate`.

The migrations are the schema: running them needs no model, so this imports none (the ORM models live
above the backends). A caller that compares models with the schema passes their metadata as
`config.attributes["target_metadata"]`."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
