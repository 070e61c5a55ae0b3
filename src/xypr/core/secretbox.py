"""Tenant secrets at rest: AES-256-GCM, the tenant id as associated data, versioned master keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretBox", "SecretBoxError", "generate_master_key", "key_file"]


class SecretBoxError(Exception):
    """A ciphertext that cannot be opened (wrong key, wrong tenant, tampered)."""


def generate_master_key(version: str = "v1") -> str:
    """A fresh master key in the `XYPR_MASTER_KEY` format."""
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


def key_file(path: Path, *, create: bool) -> str | None:
    """The master key kept in `path` (owner-only), made first when `create`; None when absent.

    Development set-ups (`xypr run --sandbox`, `xypr up --local`) keep their key beside their data,
    so every later command in the same folder opens the same tenants.
    """
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_master_key() + "\n")
    return path.read_text().strip()


class SecretBox:
    """Seals and opens secrets; the newest key seals, every listed key opens (rotation)."""

    def __init__(self, master_keys: str) -> None:
        self._keys: dict[str, bytes] = {}
        self._current = ""
        for item in filter(None, (part.strip() for part in master_keys.split(","))):
            version, sep, encoded = item.partition(":")
            if not sep or not version.isalnum():
                raise ValueError("XYPR_MASTER_KEY entries look like 'v1:<base64 of 32 bytes>'")
            key = base64.b64decode(encoded)
            if len(key) != 32:
                raise ValueError(f"master key {version} must be 32 bytes")
            self._keys[version] = key
            self._current = version
        if not self._keys:
            raise ValueError("XYPR_MASTER_KEY is empty")

    def seal(self, plaintext: str, *, tenant_id: str) -> str:
        """Encrypt `plaintext` bound to `tenant_id`: `<version>:<base64 nonce+ciphertext>`."""
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self._current]).encrypt(nonce, plaintext.encode(), tenant_id.encode())
        return f"{self._current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, tenant_id: str) -> str:
        """Decrypt a sealed secret of `tenant_id`; raises `SecretBoxError` on any mismatch."""
        version, _, encoded = token.partition(":")
        key = self._keys.get(version)
        if key is None:
            raise SecretBoxError(f"unknown master key version {version!r}")
        raw = base64.b64decode(encoded)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], tenant_id.encode()).decode()
        except Exception as exc:  # cryptography raises InvalidTag
            raise SecretBoxError("secret cannot be opened") from exc

    def derive(self, purpose: str) -> bytes:
        """A sub-key for one purpose (e.g. signing media URLs), from the current master key."""
        return hmac.new(self._keys[self._current], purpose.encode(), hashlib.sha256).digest()
