"""Configuration: one pydantic-settings class per concern, composed into `Settings`.

Every variable is `DATASTORAGE_<CONCERN>_<NAME>` (or `DATASTORAGE_<NAME>` for the service itself),
so the names in the operations docs stay flat and stable. Any variable can instead be read from a
file named by `<VARIABLE>_FILE`, which is how secrets arrive in containers.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_EVENT_CATEGORIES = (
    "gateway",
    "notification",
    "analysis",
    "aiagent",
    "signalprocessing",
    "workflow",
    "workflowexecution",
    "orchestration",
    "webhook",
    "approval",
    "effectiveness",
    "actiontype",
    "apifrontend",
    "security",
    "agentsession",
    "datastorage",
)


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class _FileSecretsSource(PydanticBaseSettingsSource):
    """Reads `<PREFIX><FIELD>_FILE` variables: the file's content (stripped) is the value."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        variable = f"{prefix}{field_name}_FILE".upper()
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise SettingsError(f"{variable}: cannot read {path}: {exc.strerror}") from exc

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class _Section(BaseSettings):
    """Common behaviour: env variables win over `_FILE` secrets, unknown variables are ignored."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSecretsSource(settings_cls)


class ServiceSettings(_Section):
    """The HTTP service itself."""

    model_config = SettingsConfigDict(env_prefix="DATASTORAGE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    mode: Mode = Mode.DEVELOPMENT
    workers: int = Field(1, ge=1, le=64)
    max_batch_size: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    problem_base_uri: str = "https://kubernaut.ai/problems/"
    log_format: str = Field("auto", pattern="^(auto|json|console)$")
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")
    data_dir: Path | None = None


class DatabaseSettings(_Section):
    """PostgreSQL, the system of record."""

    model_config = SettingsConfigDict(
        env_prefix="DATASTORAGE_DATABASE_", extra="ignore", frozen=True
    )

    url: str | None = None
    read_url: str | None = None
    pool_size: int = Field(20, ge=1, le=500)
    connect_timeout_s: float = Field(5.0, gt=0)
    statement_timeout_ms: int = Field(30_000, ge=0)
    auto_migrate: bool = True

    @field_validator("url", "read_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (the driver is chosen internally)")
        return value


class RedisSettings(_Section):
    """Redis: dead-letter queue, fan-out, rate limits."""

    model_config = SettingsConfigDict(env_prefix="DATASTORAGE_REDIS_", extra="ignore", frozen=True)

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class DlqSettings(_Section):
    """The Redis dead-letter queue."""

    model_config = SettingsConfigDict(env_prefix="DATASTORAGE_DLQ_", extra="ignore", frozen=True)

    max_len: int = Field(10_000, ge=1)
    max_retries: int = Field(6, ge=1, le=1000)
    replay_batch: int = Field(500, ge=1, le=10_000)
    replay_concurrency: int = Field(3, ge=1, le=32)
    claim_idle_s: float = Field(30.0, gt=0)
    monitor_interval_s: float = Field(10.0, gt=0)


class WriterSettings(_Section):
    """The group-commit writer every audit write goes through."""

    model_config = SettingsConfigDict(env_prefix="DATASTORAGE_WRITER_", extra="ignore", frozen=True)

    max_batch: int = Field(1000, ge=1, le=100_000)
    max_wait_ms: float = Field(5.0, ge=0, le=10_000)
    queue_max: int = Field(50_000, ge=1)
    flushers: int = Field(2, ge=1, le=64)
    enqueue_timeout_s: float = Field(2.0, ge=0)
    retry_after_s: int = Field(1, ge=1)
    breaker_failures: int = Field(5, ge=1)
    breaker_open_s: float = Field(2.0, gt=0)


class ShutdownSettings(_Section):
    """Graceful shutdown on SIGTERM (see docs/architecture.md)."""

    model_config = SettingsConfigDict(
        env_prefix="DATASTORAGE_SHUTDOWN_", extra="ignore", frozen=True
    )

    delay_s: float = Field(5.0, ge=0, le=300)
    timeout_s: float = Field(30.0, ge=0, le=3600)
    dlq_budget_s: float = Field(10.0, ge=0, le=3600)


class AuditSettings(_Section):
    """Rules for accepting and keeping audit events."""

    model_config = SettingsConfigDict(env_prefix="DATASTORAGE_AUDIT_", extra="ignore", frozen=True)

    categories: tuple[str, ...] = DEFAULT_EVENT_CATEGORIES
    backfill_days: int = Field(7, ge=0, le=3650)
    future_skew_minutes: int = Field(60, ge=0, le=1440)
    partitions_ahead: int = Field(3, ge=1, le=36)
    partition_check_interval_s: float = Field(3600.0, gt=0)
    hash_key: str | None = None
    event_schemas_dir: Path | None = None


class GraphQLSettings(_Section):
    """The GraphQL surface."""

    model_config = SettingsConfigDict(
        env_prefix="DATASTORAGE_GRAPHQL_", extra="ignore", frozen=True
    )

    graphiql: bool | None = None
    introspection: bool | None = None
    max_first: int = Field(500, ge=1, le=10_000)
    max_depth: int = Field(12, ge=1)
    max_tokens: int = Field(5000, ge=10)
    max_aliases: int = Field(30, ge=1)
    cache_size: int = Field(1024, ge=1)
    allowlist_file: Path | None = None


class Settings(BaseModel):
    """All settings, one section per concern."""

    model_config = ConfigDict(frozen=True)
    SECTIONS: ClassVar[dict[str, type[_Section]]] = {
        "service": ServiceSettings,
        "database": DatabaseSettings,
        "redis": RedisSettings,
        "dlq": DlqSettings,
        "writer": WriterSettings,
        "audit": AuditSettings,
        "graphql": GraphQLSettings,
        "shutdown": ShutdownSettings,
    }

    service: ServiceSettings
    database: DatabaseSettings
    redis: RedisSettings
    dlq: DlqSettings
    writer: WriterSettings
    audit: AuditSettings
    graphql: GraphQLSettings
    shutdown: ShutdownSettings

    @property
    def graphiql_enabled(self) -> bool:
        if self.graphql.graphiql is not None:
            return self.graphql.graphiql
        return self.service.mode is Mode.DEVELOPMENT

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql.introspection is not None:
            return self.graphql.introspection
        return self.service.mode is Mode.DEVELOPMENT


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def load_settings(**overrides: dict[str, Any]) -> Settings:
    """Read every section from the environment; `overrides` maps a section name to field values."""
    sections: dict[str, Any] = {}
    for name, cls in Settings.SECTIONS.items():
        try:
            sections[name] = cls(**overrides.get(name, {}))
        except ValidationError as exc:
            raise SettingsError(_describe(cls, exc)) from None
    return Settings(**sections)


def _describe(cls: type[_Section], exc: ValidationError) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        variable = f"{prefix}{field}".upper()
        lines.append(f"{variable}: {error['msg']} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(lines)
