"""The auth service: logins, tokens and sessions (`/auth/...`)."""
