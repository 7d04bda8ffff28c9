"""All configuration in one place, read from the environment on first use (never at import)."""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, Field, field_validator

from wallet_core.domain.money import DEFAULT_CURRENCIES


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

    @field_validator("supported_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(code.strip().upper() for code in value.split(",") if code.strip())
        return value

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
