"""Authentication and authorisation: who is calling (a `Principal`) and what their role allows."""
