"""Access to the published Meta and Genesys example payloads in `../shared/contracts`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CONTRACTS", "contract"]

CONTRACTS = Path(__file__).resolve().parents[2].parent / "shared" / "contracts"


def contract(name: str) -> Any:
    """A contract file as JSON, e.g. `contract("meta/webhook-text.json")`."""
    return json.loads((CONTRACTS / name).read_text())
