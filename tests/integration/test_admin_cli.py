"""`xypr admin create` / `set-password`: argon2id-hashed passwords read from stdin; the schema matches the models."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import Result
from typer.testing import CliRunner

from tests.support.models import load_all
from xypr.auth.models import RefreshToken, User
from xypr.auth.passwords import verify_password
from xypr.backends.db import create_database, migrate
from xypr.backends.db.base import Base
from xypr.cli import cli
from xypr.config import Settings
from xypr.core.secretbox import generate_master_key

PASSWORD = "a sturdy admin password"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    return {**clean, "XYPR_DATA_DIR": str(tmp_path / "data"), "XYPR_MASTER_KEY": generate_master_key(),
            "XYPR_LOG_LEVEL": "WARNING"}  # fmt: skip


def _xypr(env: dict[str, str], *args: str, stdin: str) -> Result:
    # In-process (CliRunner) rather than a subprocess: the same command, without paying the imports each time.
    return CliRunner().invoke(cli, ["admin", *args], input=stdin, env=env)


def _stored_hash(tmp_path: Path, email: str) -> str:
    with sqlite3.connect(tmp_path / "data" / "xypr.sqlite3") as db:
        row = db.execute("SELECT password_hash, role FROM users WHERE external_id = ?", (email,)).fetchone()
    assert row[1] == "xypr_admin"
    return str(row[0])


def test_admin_create_reads_the_password_from_stdin_and_stores_only_its_argon2id_hash(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = _xypr(env, "create", "--email", "Ops@Example.com", "--name", "Ops", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert '"email": "ops@example.com"' in result.stdout
    assert PASSWORD not in result.output
    stored = _stored_hash(tmp_path, "ops@example.com")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, PASSWORD)


def test_admin_create_refuses_a_short_password_and_a_taken_email(env: dict[str, str], tmp_path: Path) -> None:
    short = _xypr(env, "create", "--email", "ops@example.com", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    assert _xypr(env, "create", "--email", "ops@example.com", stdin=PASSWORD + "\n").exit_code == 0
    again = _xypr(env, "create", "--email", "OPS@example.com", stdin=PASSWORD + "\n")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_admin_set_password_replaces_the_hash(env: dict[str, str], tmp_path: Path) -> None:
    assert _xypr(env, "create", "--email", "ops@example.com", stdin=PASSWORD + "\n").exit_code == 0
    changed = _xypr(env, "set-password", "--email", "ops@example.com", stdin="another sturdy password\n")
    assert changed.exit_code == 0, changed.output
    stored = _stored_hash(tmp_path, "ops@example.com")
    assert verify_password(stored, "another sturdy password")
    assert not verify_password(stored, PASSWORD)
    missing = _xypr(env, "set-password", "--email", "nobody@example.com", stdin="another sturdy password\n")
    assert missing.exit_code == 1


async def test_auth_tables_after_migration_match_the_models(backend_settings: Settings) -> None:
    load_all()
    database = create_database(backend_settings.effective_database_url)
    try:
        await migrate(database)
        async with database.engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await database.close()
    ours = {User.__tablename__, RefreshToken.__tablename__}

    def table_of(change: object) -> str | None:
        item = change[0] if isinstance(change, list) else change
        for part in item[1:] if isinstance(item, tuple) else ():
            name = getattr(part, "name", None) if not isinstance(part, str) else None
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None):
                return str(table.name)
            if name in ours:
                return str(name)
            if isinstance(part, str) and part in ours:
                return part
        return None

    assert [change for change in diff if table_of(change) in ours] == []
