"""The tenant service: tenants CRUD, onboarding checks and setup, suspension."""
