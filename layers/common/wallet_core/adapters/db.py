"""The engine (one per Lambda container) and the translation of driver errors into domain errors."""

from __future__ import annotations

import functools
import json
import os
import sys
import urllib.request
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from wallet_core.config import Settings, get_settings
from wallet_core.domain import errors

# SQLSTATEs after which the whole transaction can simply be run again.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
LOCK_NOT_AVAILABLE = "55P03"


def _normalise(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _secret_from_extension(secret_arn: str) -> dict[str, Any]:
    """Read a Secrets Manager secret through the AWS Parameters and Secrets Lambda Extension, which
    caches it and spares the API functions a boto3 import."""
    port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
    request = urllib.request.Request(
        f"http://localhost:{port}/secretsmanager/get?secretId={urllib.request.quote(secret_arn, safe='')}",
        headers={"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN", "")},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # nosec B310
        return json.loads(json.loads(response.read())["SecretString"])


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return _normalise(settings.database_url)
    if settings.database_iam_auth:
        if not (settings.database_host and settings.database_user):
            raise errors.ServiceUnavailableError("IAM database auth needs DATABASE_HOST and DATABASE_USER.")
        url = URL.create(
            "postgresql+psycopg",
            username=settings.database_user,
            host=settings.database_host,
            port=settings.database_port,
            database=settings.database_name,
            query={"sslmode": "require"},  # RDS refuses IAM tokens over a clear-text connection
        )
        return url.render_as_string(hide_password=False)
    if settings.database_secret_arn:
        secret = _secret_from_extension(settings.database_secret_arn)
        url = URL.create(
            "postgresql+psycopg",
            username=secret["username"],
            password=secret["password"],
            host=settings.database_host or secret["host"],
            port=int(secret.get("port", 5432)),
            database=secret.get("dbname", "postgres"),
            query={"sslmode": "require"},
        )
        return url.render_as_string(hide_password=False)
    raise errors.ServiceUnavailableError("No database is configured (DATABASE_URL or DATABASE_SECRET_ARN).")


@functools.cache
def get_engine() -> Engine:
    settings = get_settings()
    connect_args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "application_name": f"wallet-{settings.stage}",
    }
    if settings.database_secret_arn or settings.database_iam_auth:
        # Behind RDS Proxy prepared statements pin connections to one client: turn them off.
        connect_args["prepare_threshold"] = None
    engine = create_engine(
        resolve_database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # No ping before every checkout (a round trip per request): a connection that died while the
        # container slept fails its first statement, is invalidated, and the request answers 503
        # (retryable); the unit of work pings only a connection that sat idle for a while.
        pool_pre_ping=False,
        pool_recycle=300,
        connect_args=connect_args,
    )
    return use_iam_tokens(engine, settings)


def use_iam_tokens(engine: Engine, settings: Settings) -> Engine:
    """With IAM database auth, every new connection of this engine signs a token as its password."""
    if settings.database_iam_auth and not settings.database_url:
        event.listen(engine, "do_connect", _with_iam_token)
    return engine


@functools.cache
def _rds_client():
    # Only IAM-auth deployments pay for boto3, and only when they first connect.
    import boto3

    return boto3.client("rds")


def _with_iam_token(dialect, connection_record, cargs, cparams) -> None:
    """A fresh token for every new connection: tokens live 15 minutes, connections are recycled
    after 5, and generating one is a local signature (no API call)."""
    cparams["password"] = _rds_client().generate_db_auth_token(
        DBHostname=cparams["host"], Port=int(cparams.get("port") or 5432), DBUsername=cparams["user"]
    )


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, raised through SQLAlchemy or straight from psycopg."""
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None)
    if _is_psycopg_error(exc):
        return exc.sqlstate
    return None


def _is_psycopg_error(exc: BaseException, kind: str = "Error") -> bool:
    # psycopg loads with the first connection (SQLAlchemy's dialect imports it), not with this
    # module: a handler's cold import does not pay for it. Not loaded = not its error.
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, getattr(psycopg, kind))


def is_disconnect(exc: BaseException) -> bool:
    """The connection itself failed (server gone, network, terminated backend)."""
    state = sqlstate(exc)
    if (state or "").startswith("08") or state in ("57P01", "57P02", "57P03"):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or (isinstance(exc, OperationalError) and state is None)
    return _is_psycopg_error(exc, "OperationalError") and state is None


def translate_error(exc: BaseException) -> errors.WalletServiceError | None:
    """Driver errors that mean something to callers become domain errors; others stay as they are."""
    state = sqlstate(exc)
    if state in RETRYABLE_SQLSTATES or state == LOCK_NOT_AVAILABLE:
        # lock_not_available outside the idempotency claim: a wallet lock waited past lock_timeout.
        return errors.ConcurrencyConflictError()
    if is_disconnect(exc) or state == "53300":  # connection lost, shutting down, too many connections
        return errors.ServiceUnavailableError()
    return None
