"""Pure transforms between Meta and Genesys wire formats: no I/O, no clock, no globals."""
