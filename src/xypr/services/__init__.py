"""One package per service of ARCHITECTURE §2: HTTP routers and queue workers."""
