"""One typed settings object, read from `ALLSCREEN_*` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from allscreen import defaults
from allscreen.errors import ConfigError


class Settings(BaseSettings):
    """Everything allscreen can be configured with. Unknown `ALLSCREEN_*` keys are refused."""

    model_config = SettingsConfigDict(env_prefix="ALLSCREEN_", extra="forbid")

    broker_url: str | None = Field(
        default=None,
        description="Redis URL; unset means the local default (or, for `demo`, an embedded Redis).",
    )
    database_url: str = defaults.DEFAULT_DATABASE_URL
    model: Path = defaults.DEFAULT_MODEL
    device: str | None = None
    batch_size: int = Field(default=defaults.DEFAULT_BATCH_SIZE, ge=1, le=4096)
    max_queued_batches: int = Field(default=defaults.DEFAULT_MAX_QUEUED_BATCHES, ge=1)
    max_message_bytes: int = Field(default=defaults.DEFAULT_MAX_MESSAGE_BYTES, ge=1024)
    max_image_bytes: int = Field(default=defaults.DEFAULT_MAX_IMAGE_BYTES, ge=1)
    max_image_pixels: int = Field(default=defaults.DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    model_start_timeout: float = Field(default=defaults.DEFAULT_MODEL_START_TIMEOUT, gt=0)
    model_timeout: float = Field(default=defaults.DEFAULT_MODEL_TIMEOUT, gt=0)
    model_attempts: int = Field(default=defaults.DEFAULT_MODEL_ATTEMPTS, ge=1)
    visibility_timeout: float = Field(default=defaults.DEFAULT_VISIBILITY_TIMEOUT, gt=0)
    db_retry_seconds: float = Field(default=defaults.DEFAULT_DB_RETRY_SECONDS, ge=0)
    broker_retry_seconds: float = Field(default=defaults.DEFAULT_BROKER_RETRY_SECONDS, ge=0)
    max_deliveries: int = Field(default=defaults.DEFAULT_MAX_DELIVERIES, ge=1)
    transport: Literal["bytes", "path"] = "bytes"
    prefetch: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Images decoded ahead; unset: automatic (worker.prefetch.decode_ahead).",
    )
    decode_threads: int | None = Field(
        default=None, ge=1, le=64, description="Threads decoding ahead; unset: the CPU's cores."
    )
    reduced_decode: bool = defaults.DEFAULT_REDUCED_DECODE
    decode_margin: float = Field(default=defaults.DEFAULT_DECODE_MARGIN, ge=1.0, le=64.0)
    ship_side: int = Field(default=defaults.DEFAULT_SHIP_SIDE, ge=0)
    queue: str = defaults.QUEUE_NAME
    path_key_file: Path | None = Field(
        default=None,
        description="Key file of `submit --store-paths hashed` (producer side only).",
    )
    archive_root: Path | None = Field(
        default=None,
        description="Where the report and review page read `--store-paths relative` runs' files.",
    )

    @property
    def effective_broker_url(self) -> str:
        """The broker URL in use: the configured one, else the local default."""
        return self.broker_url or defaults.DEFAULT_BROKER_URL


def mask_url(url: str) -> str:
    """Return `url` with any password replaced by `***`, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


#: ALLSCREEN_* variables that are not settings: the reference model's own, the tests', and
#: those allscreen sets for its own child processes (the worker's pool size).
FOREIGN_PREFIXES = ("ALLSCREEN_EIM_", "ALLSCREEN_TEST_", "ALLSCREEN_INTERNAL_")


def unknown_keys(environ: dict[str, str]) -> list[str]:
    """ALLSCREEN_* variables that name no setting (a typo would otherwise be ignored)."""
    known = {f"ALLSCREEN_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        k
        for k in environ
        if k.startswith("ALLSCREEN_") and k not in known and not k.startswith(FOREIGN_PREFIXES)
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process, from the environment; refuse unknown keys."""
    unknown = unknown_keys(dict(os.environ))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as ALLSCREEN_* variables, to hand the same configuration to a child process."""
    env: dict[str, str] = {}
    for key, value in settings.model_dump().items():
        if value is not None:
            env[f"ALLSCREEN_{key.upper()}"] = str(value)
    return env


def checked_settings() -> Settings:
    """The settings, or one ConfigError line naming the bad `ALLSCREEN_*` variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ALLSCREEN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']} (got {e['input']!r})"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid setting {problems}") from exc
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
