"""All configuration in one place, read from the environment on first use (never at import)."""

from __future__ import annotations

import functools
import os
from datetime import timedelta

from pydantic import BaseModel, Field, field_validator

from wallet_core.domain.money import DEFAULT_CURRENCIES


def normalise_provider(name: str) -> str:
    """One provider, one name: "ACME-PAY " and "acme-pay" are the same provider (and dedup key)."""
    return name.strip().lower()


class Settings(BaseModel):
    database_url: str = ""
    database_secret_arn: str = ""
    database_host: str = ""
    # IAM database authentication instead of the secret's password: a short-lived token per
    # connection, signed with the function's role (rds-db:connect).
    database_iam_auth: bool = False
    database_user: str = ""
    database_name: str = "postgres"
    database_port: int = Field(default=5432, ge=1, le=65535)
    stage: str = "dev"
    app_version: str = "0.0.0-dev"
    git_sha: str = "unknown"
    build_time: str = "unknown"
    # The CI run that built the deployed artifact and its branch (template parameters CiRunNumber,
    # GitBranch -> CI_RUN_NUMBER, GIT_BRANCH), shown by /version.
    ci_run_number: str = "unknown"
    git_branch: str = "unknown"
    supported_currencies: frozenset[str] = Field(default=frozenset(DEFAULT_CURRENCIES))
    db_pool_size: int = Field(default=1, ge=1, le=64)
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60)
    # How long a request waits for an in-flight request with the same Idempotency-Key before
    # answering 409 idempotency_request_in_progress.
    idempotency_wait_seconds: float = Field(default=5.0, ge=0.05, le=60)
    # TLS to the database when it is reached through a secret or IAM auth (AWS). verify-full checks
    # the server's certificate and host name against `database_sslrootcert`: by default the RDS CA
    # bundle (and the Amazon roots RDS Proxy chains to) shipped in this layer.
    database_sslmode: str = "verify-full"
    database_sslrootcert: str = ""
    # Provider events: the accepted provider names (normalised: trimmed, lower case), and, on a
    # queue only one provider bridge may send to, the one provider every event on it must name.
    wallet_providers: frozenset[str] = Field(default=frozenset({"acme-pay"}))
    wallet_bound_provider: str = ""
    # A payout hold may not expire before the provider can still settle it.
    payout_settlement_window_hours: int = Field(default=120, ge=0, le=720)

    @field_validator("supported_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(code.strip().upper() for code in value.split(",") if code.strip())
        return value

    @field_validator("wallet_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(normalise_provider(name) for name in value.split(",") if name.strip())
        return value

    @field_validator("wallet_bound_provider", mode="after")
    @classmethod
    def _normalise_bound_provider(cls, value: str) -> str:
        return normalise_provider(value)

    @property
    def payout_settlement_window(self) -> timedelta:
        return timedelta(hours=self.payout_settlement_window_hours)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        values = {
            name: environ[name.upper()]
            for name in cls.model_fields
            if environ.get(name.upper()) not in (None, "")
        }
        return cls.model_validate(values)


@functools.cache
def get_settings() -> Settings:
    return Settings.from_environment()
