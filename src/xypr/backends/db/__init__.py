"""Database: SQLAlchemy 2 async over PostgreSQL (asyncpg) or SQLite (aiosqlite), one set of migrations."""

from xypr.backends.db.engine import Database, create_database, migrate

__all__ = ["Database", "create_database", "migrate"]
