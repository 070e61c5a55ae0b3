"""Local account passwords: argon2id hashes (PHC strings), a constant-work check for unknown accounts."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from xypr.core.errors import BadRequest

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_strength", "hash_password", "needs_rehash", "verify_password"]

MIN_PASSWORD_LENGTH = 12

# argon2-cffi's defaults are RFC 9106's low-memory profile for argon2id (t=3, m=64 MiB, p=4).
_HASHER = PasswordHasher()
# Verified against when the account does not exist, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not-a-real-password-only-burns-time")


def check_password_strength(password: str) -> None:
    """Refuse passwords too short to resist guessing (`BadRequest` naming the rule)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"password: must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if len(password) > 1024:
        raise BadRequest("password: must be at most 1024 characters", field="password")


def hash_password(password: str) -> str:
    """The argon2id PHC string of `password` (salt included)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash still spends the same work and answers False."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehash on next login)."""
    return _HASHER.check_needs_rehash(password_hash)
