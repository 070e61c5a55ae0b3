"""The admin dashboard: its pages under `/admin` and the operator API they use (`/ops`, `/dlq`, `/audit`, `/users`)."""
