"""One `Settings` object: every variable is prefixed `XYPR_` and documented in `.env.example`."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Runtime configuration; an empty backend URL selects the embedded backend."""

    model_config = SettingsConfigDict(env_prefix="XYPR_", env_file=".env", extra="ignore")

    # Backends: empty means embedded (SQLite file, SQLite queue, in-process cache, local folder).
    database_url: str = ""
    amqp_url: str = ""
    redis_url: str = ""
    s3_endpoint: str = ""
    s3_bucket: str = "xypr-media"
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    data_dir: Path = Path("./.xypr-data")
    # The embedded cache (no `redis_url`): "memory" in the process itself, or "file", a SQLite file in the data
    # folder shared by every process of this machine using it (`xypr run` picks it for its worker processes).
    embedded_cache: str = Field(default="memory", pattern="^(memory|file)$")

    # Namespacing lets several deployments (or test runs) share one broker / Redis.
    namespace: str = "xypr"

    public_url: str = "http://127.0.0.1:3000"
    host: str = "127.0.0.1"
    port: int = 3000

    # Versioned master keys: "v1:<base64 32 bytes>,v2:<...>"; the last one encrypts, all decrypt.
    master_key: SecretStr = SecretStr("")

    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v23.0"
    genesys_api_url: str = ""
    genesys_login_url: str = ""
    # Agent attachments are fetched from any https host that resolves to public addresses only; when set,
    # only from these hosts too (comma-separated; ".example.com" or "*.example.com" for subdomains).
    attachment_host_allowlist: str = ""

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    # Pipeline tuning.
    partitions: int = Field(default=4, ge=1, le=64)
    # Deliveries a process handles at once (different conversations). None: 256 in a worker process, 64 in one
    # that also answers HTTP (`xypr run`), where more handlers on the same event loop delay webhook answers.
    worker_concurrency: int | None = Field(default=None, ge=1, le=4096)
    # `xypr run`: processes running the queue workers beside the one answering HTTP (0: one process does
    # everything). None: 1 where two cores or more are usable (CPU quota and pinning count), else 0.
    run_worker_processes: int | None = Field(default=None, ge=0, le=16)
    # Tries of an event failing with an unexpected error (a bug); transient failures (upstream
    # outages, 429, backends restarting) are retried until the horizon instead.
    max_attempts: int = Field(default=6, ge=1, le=50)
    retry_base_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    retry_horizon_seconds: float = Field(default=6 * 3600.0, gt=0)
    # An event still failing transiently after this many seconds leaves the broker's queue for the parking
    # store (state database): its conversation's later events join it there and are retried in order, while
    # the other conversations of its partition go on (docs/architecture.md, "Parking a held conversation").
    park_after_seconds: float = Field(default=20.0, ge=0)
    # One queue hop per direction: the inbound and outbound transformers call Genesys and WhatsApp themselves
    # instead of queueing each request for genesys-api / whatsapp-api (which still take receipts, widget sends
    # and replayed dead letters). Off: every request takes the second queue, as before (docs/architecture.md).
    direct_send: bool = True
    # On SIGTERM: how long handlers already sending may take to finish before they are cancelled
    # (keep it below the orchestrator's kill timeout, e.g. Kubernetes' 30 s terminationGracePeriod).
    # A WhatsApp send whose answer was lost is sent again only if no status webhook naming it (our id in
    # `biz_opaque_callback_data`) arrived within this many seconds.
    send_outcome_wait_seconds: float = Field(default=15.0, ge=0, le=600)
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    # Embedded queue: how long a claimed message stays owned without renewal (a dead process's
    # messages come back after this), and the longest sleep between polls for other processes'
    # publishes when idle (publishes of the same process wake its consumers at once, and on Linux those of
    # another process ring its doorbell: the poll is the fallback for a lost ring).
    queue_lease_seconds: float = Field(default=60.0, ge=1.0)
    queue_idle_poll_seconds: float = Field(default=0.5, gt=0, le=10.0)
    max_webhook_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    # PostgreSQL connections each process keeps open (no more: busy handlers wait for one); N
    # processes need N x this below the server's max_connections. A quarter (at least one) for the
    # ORM, the rest (at least one) for the hot path's statements (`xypr.backends.db.hot`): 1 means 2.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    # Messages per second one WhatsApp number may send, across every process (a tenant's
    # `throughput_per_second` setting overrides it; Meta's default is 80, up to 1000 after upgrade).
    whatsapp_throughput_per_second: int = Field(default=80, ge=1, le=10000)
    # Lifetime of the media URLs Genesys gets for inbound attachments (S3 presigning allows at most 7 days).
    media_url_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)

    # Authentication and the gateway (docs/architecture.md, "Authentication and gateway").
    genesys_login_client_id: str = ""
    access_token_ttl_seconds: int = Field(default=900, ge=1, le=86400)
    refresh_token_ttl_seconds: int = Field(default=14 * 86400, ge=60)
    rate_limit_per_ip: int = Field(default=3000, ge=0)
    rate_limit_per_tenant: int = Field(default=6000, ge=0)
    # Webhooks: each address may send this many *refused* webhooks a minute (unsigned, badly signed,
    # malformed: floods of garbage are cut); authenticated webhooks count against their tenant's budget only.
    rate_limit_webhooks_per_ip: int = Field(default=3000, ge=0)
    rate_limit_webhooks_per_tenant: int = Field(default=60000, ge=0)
    max_api_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    cors_origins: str = ""
    metrics_public: bool = True
    service_urls: dict[str, str] = Field(default_factory=dict)

    # The agent widget (docs/architecture.md, "Agent widget"): origins besides Genesys Cloud's that may frame
    # it (comma-separated; the sandbox adds its own), the Genesys OAuth client (implicit grant) it signs agents
    # in with (empty: `genesys_login_client_id`), and how often a live view looks for changes.
    widget_frame_ancestors: str = ""
    widget_client_id: str = ""
    widget_poll_seconds: float = Field(default=1.0, gt=0, le=30)

    # Tenant onboarding: how often and how long to wait for a new Genesys integration to be created.
    onboarding_poll_interval_seconds: float = Field(default=1.0, gt=0)
    onboarding_poll_timeout_seconds: float = Field(default=30.0, gt=0)

    @property
    def embedded_database_url(self) -> str:
        """The SQLite URL used when `database_url` is empty."""
        return f"sqlite+aiosqlite:///{(self.data_dir / 'xypr.sqlite3').resolve()}"

    @property
    def effective_database_url(self) -> str:
        """The database URL in force."""
        return self.database_url or self.embedded_database_url

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins allowed to call the API from a browser (`XYPR_CORS_ORIGINS`, comma-separated)."""
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def secure_cookies(self) -> bool:
        """Session cookies carry `Secure` when the public URL is https."""
        return self.public_url.lower().startswith("https://")

    def as_environment(self) -> dict[str, str]:
        """These settings as the `XYPR_*` variables that give them back in another process (unset ones left out)."""
        environment: dict[str, str] = {}
        for name, value in self:
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, dict):
                text = json.dumps(value)
            elif isinstance(value, Path):
                text = str(value.resolve())
            else:
                text = str(value)
            environment[f"XYPR_{name.upper()}"] = text
        return environment
