"""The audit log: who changed what, to which tenant, when."""
