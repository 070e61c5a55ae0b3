"""One `Settings` object: every variable is prefixed `XYPR_` and documented in `.env.example`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


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

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    # Pipeline tuning.
    partitions: int = Field(default=4, ge=1, le=64)
    worker_concurrency: int = Field(default=64, ge=1, le=4096)
    max_attempts: int = Field(default=6, ge=1, le=50)
    retry_base_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    max_webhook_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)

    @property
    def embedded_database_url(self) -> str:
        """The SQLite URL used when `database_url` is empty."""
        return f"sqlite+aiosqlite:///{(self.data_dir / 'xypr.sqlite3').resolve()}"

    @property
    def effective_database_url(self) -> str:
        """The database URL in force."""
        return self.database_url or self.embedded_database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
