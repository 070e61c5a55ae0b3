"""Route dependencies of the Meta emulator: its state and the caller's access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from xypr.sandbox.meta.state import MetaSandbox

__all__ = ["SandboxDep", "TokenDep", "bearer_token", "get_sandbox"]


def get_sandbox(request: Request) -> MetaSandbox:
    """The `MetaSandbox` of the app serving this request (also when mounted under a prefix)."""
    sandbox: MetaSandbox = request.app.state.sandbox
    return sandbox


def bearer_token(request: Request) -> str | None:
    """`Authorization: Bearer <token>`, or Graph's `access_token` query parameter."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query_params.get("access_token") or None


SandboxDep = Annotated[MetaSandbox, Depends(get_sandbox)]
TokenDep = Annotated[str | None, Depends(bearer_token)]
