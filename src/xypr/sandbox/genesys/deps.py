"""Route dependencies of the Genesys emulator."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from xypr.sandbox.genesys.state import GenesysSandbox

__all__ = ["SandboxDep", "get_sandbox"]


def get_sandbox(request: Request) -> GenesysSandbox:
    """The `GenesysSandbox` of the app serving this request (also when mounted under a prefix)."""
    sandbox: GenesysSandbox = request.app.state.sandbox
    return sandbox


SandboxDep = Annotated[GenesysSandbox, Depends(get_sandbox)]
