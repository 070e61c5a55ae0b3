"""The emulated Genesys login: OAuth clients for the code grant, users with roles in organisations, PKCE codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["AuthorizationCode", "LoginClient", "SandboxAccounts", "SandboxUser", "UserToken"]

CODE_TTL_SECONDS = 300.0


@dataclass(slots=True)
class LoginClient:
    """An OAuth client of the code grant; no secret = a public client, which must use PKCE."""

    client_id: str
    redirect_uris: list[str]
    name: str = "Code grant client"
    client_secret: str | None = None


@dataclass(slots=True)
class SandboxUser:
    """A person of an organisation, with Genesys role names and permission strings."""

    id: str
    org_id: str
    name: str
    email: str
    roles: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AuthorizationCode:
    """An issued code: single use, bound to its client, redirect URI and PKCE challenge."""

    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    challenge: str | None
    expires_at: float


@dataclass(slots=True)
class UserToken:
    """An access token issued to a user through a client."""

    token: str
    user_id: str
    client_id: str
    expires_at: float


def s256(verifier: str) -> str:
    """RFC 7636 S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class SandboxAccounts:
    """Login clients, users, organisations' names, codes and user tokens of the emulator."""

    def __init__(self) -> None:
        self.clients: dict[str, LoginClient] = {}
        self.users: dict[str, SandboxUser] = {}
        self.org_names: dict[str, str] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, UserToken] = {}
        self.sessions: dict[str, str] = {}  # browser session id → user id

    def clear(self) -> None:
        """Forget everything (registry reset)."""
        for registry in (self.clients, self.users, self.org_names, self.codes, self.tokens, self.sessions):
            registry.clear()

    def start_session(self, user_id: str) -> str:
        """A browser session of a signed-in user (the login host's cookie)."""
        session = secrets.token_urlsafe(24)
        self.sessions[session] = user_id
        return session

    def session_user(self, session: str) -> SandboxUser | None:
        """The user of a browser session, if it exists and the user still does."""
        user_id = self.sessions.get(session) if session else None
        return self.users.get(user_id) if user_id else None

    def register_client(self, client: LoginClient) -> LoginClient:
        """Add or replace a code-grant client."""
        self.clients[client.client_id] = client
        return client

    def add_user(self, user: SandboxUser, org_name: str | None = None) -> SandboxUser:
        """Add or replace a user (and name their organisation)."""
        self.users[user.id] = user
        if org_name:
            self.org_names[user.org_id] = org_name
        return user

    def user_by_login(self, login: str) -> SandboxUser | None:
        """A user by id or email (case-insensitive)."""
        if login in self.users:
            return self.users[login]
        wanted = login.strip().lower()
        return next((user for user in self.users.values() if user.email.lower() == wanted), None)

    def issue_code(self, client_id: str, redirect_uri: str, user_id: str, challenge: str | None) -> str:
        """A new authorization code."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            code, client_id, redirect_uri, user_id, challenge, time.time() + CODE_TTL_SECONDS
        )
        return code

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str, verifier: str | None
    ) -> tuple[SandboxUser | None, str]:
        """The user behind a code, or None and why not; the code is spent whether or not it is accepted."""
        issued = self.codes.pop(code, None)
        if issued is None or issued.expires_at <= time.time():
            return None, "authorization code is invalid, expired or already used"
        if issued.client_id != client_id:
            return None, "authorization code was issued to another client"
        if issued.redirect_uri != redirect_uri:
            return None, "redirect_uri does not match the authorization request"
        if issued.challenge is not None:
            if not verifier:
                return None, "code_verifier is required"
            if not hmac.compare_digest(s256(verifier), issued.challenge):
                return None, "code_verifier does not match the code_challenge"
        user = self.users.get(issued.user_id)
        return (user, "") if user else (None, "user no longer exists")

    def issue_token(self, user_id: str, client_id: str, ttl: int) -> UserToken:
        """A user access token living `ttl` seconds."""
        access = UserToken(secrets.token_urlsafe(48), user_id, client_id, time.time() + ttl)
        self.tokens[access.token] = access
        return access

    def token_user(self, token: str) -> SandboxUser | None:
        """The user behind a live user token."""
        access = self.tokens.get(token)
        if access is None or access.expires_at <= time.time():
            return None
        return self.users.get(access.user_id)

    def expire_tokens(self) -> int:
        """Expire every user token now."""
        for access in self.tokens.values():
            access.expires_at = 0.0
        return len(self.tokens)

    @staticmethod
    def role_id(name: str) -> str:
        """A stable id for a role name (Genesys role ids are GUIDs)."""
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"genesys-role:{name}"))
