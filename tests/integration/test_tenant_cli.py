"""`xypr tenant create --file`: prints the tenant without secrets; bad files fail naming the field."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.tenants.test_tenant_file import GOOD
from xypr.core.secretbox import generate_master_key

SECRETS = ("csecret", "0123456789abcdef", "EAAG", "appsecret", "verify")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XYPR_")}
    return {**clean, "XYPR_DATA_DIR": str(tmp_path / "data"), "XYPR_MASTER_KEY": generate_master_key(),
            "XYPR_LOG_LEVEL": "WARNING"}  # fmt: skip


def _create(
    env: dict[str, str], tmp_path: Path, spec: Any, name: str = "tenant.json"
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return subprocess.run(
        [sys.executable, "-m", "xypr.cli", "tenant", "create", "--file", str(path)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_create_prints_the_tenant_with_its_id_and_no_secret(env: dict[str, str], tmp_path: Path) -> None:
    result = _create(env, tmp_path, GOOD)

    assert result.returncode == 0, result.stderr
    tenant = json.loads(result.stdout)
    assert len(tenant["id"]) == 36
    assert tenant["whatsapp"]["phoneNumberId"] == "106540352242922"
    assert tenant["genesys"]["integrationId"] == "int-1"
    assert tenant["createdAt"].endswith("Z"), "RFC 3339 UTC, like every time the API answers"
    for secret in SECRETS:
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_secrets_are_not_in_clear_text_in_the_database(env: dict[str, str], tmp_path: Path) -> None:
    assert _create(env, tmp_path, GOOD).returncode == 0
    dump = "\n".join(sqlite3.connect(tmp_path / "data" / "xypr.sqlite3").iterdump())
    assert "106540352242922" in dump  # the routing key is stored in clear, as it should be
    for secret in ("csecret", "0123456789abcdef", "appsecret"):
        assert secret not in dump


def test_duplicate_phone_number_or_integration_is_refused_naming_the_field(env: dict[str, str], tmp_path: Path) -> None:
    assert _create(env, tmp_path, GOOD).returncode == 0
    again = _create(env, tmp_path, GOOD, "again.json")
    assert again.returncode != 0
    assert "whatsapp.phoneNumberId" in again.stderr

    other_number = json.loads(json.dumps(GOOD))
    other_number["whatsapp"]["phone_number_id"] = "999"
    clash = _create(env, tmp_path, other_number, "clash.json")
    assert clash.returncode != 0
    assert "genesys.integrationId" in clash.stderr


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s["genesys"].pop("client_id"), "genesys.client_id"),
        (lambda s: s["genesys"].update(webhook_secret="too-short"), "genesys.webhook_secret"),
        (lambda s: s.pop("whatsapp"), "whatsapp"),
    ],
)
def test_bad_file_exits_non_zero_naming_the_field(env: dict[str, str], tmp_path: Path, mutate: Any, field: str) -> None:
    spec = json.loads(json.dumps(GOOD))
    mutate(spec)
    result = _create(env, tmp_path, spec)
    assert result.returncode != 0
    assert field in result.stderr
    assert "Traceback" not in result.stderr


def test_not_json_and_missing_file_are_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    broken = _create(env, tmp_path, "{oops")
    assert broken.returncode != 0
    assert "not valid JSON" in broken.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "xypr.cli", "tenant", "create", "--file", str(tmp_path / "nope.json")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "cannot read" in missing.stderr
