"""The migration history stays one line: parallel branches are merged before they land."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from xypr.backends.db.engine import MIGRATIONS


def test_alembic_has_exactly_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several Alembic heads {sorted(heads)}: add a merge revision"
