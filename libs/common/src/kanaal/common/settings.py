"""Settings every service shares, read from `KANAAL_*` environment variables.

A service subclasses :class:`ServiceSettings` and adds its own; the README's settings
table lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default HTTP port (health, readiness, metrics, API) per service, as in DESIGN.md.
SERVICE_PORTS: Final[dict[str, int]] = {
    "web": 8081,
    "phone": 8082,
    "counter": 8083,
    "dossier": 8084,
    "email": 8085,
    "router": 8086,
    "desk": 8087,
    "sms": 8088,
}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KANAAL_", extra="ignore")

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@localhost:5672/"), description="RabbitMQ URL"
    )
    config_dir: Path = Field(Path("deploy/config"), description="folder with the YAML files")
    host: str = Field("127.0.0.1", description="address the HTTP port binds to")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = Field("json", description="json or console")
    prefetch: int = Field(32, ge=1, le=2000, description="unacked deliveries per consumer")
    publish_timeout: float = Field(10.0, gt=0, description="seconds to wait for a confirm")
    retry_delay: float = Field(
        2.0, ge=0, description="seconds before a failed delivery is handed back for a retry"
    )
    metrics_token: SecretStr | None = Field(
        None, description="bearer token for /metrics; open when unset"
    )
