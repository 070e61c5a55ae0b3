"""Emulated Genesys Cloud: OAuth client credentials, Open Messaging inbound API, agent webhooks."""

from xypr.sandbox.genesys.app import create_genesys_app
from xypr.sandbox.genesys.state import GenesysSandbox

__all__ = ["GenesysSandbox", "create_genesys_app"]
