"""Faithful emulators of Meta Graph API and Genesys Cloud, and the page to play customer and agent."""

__all__ = ["SANDBOX_KEY_FILE"]

# The master key `xypr run --sandbox` makes in XYPR_DATA_DIR when XYPR_MASTER_KEY is empty; the other
# commands run in the same folder find it there (the sandbox's tenants are sealed with it).
SANDBOX_KEY_FILE = "sandbox-master.key"
