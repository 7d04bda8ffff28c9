"""The engine (one per Lambda container) and the translation of driver errors into domain errors.

In AWS the connection is TLS that verifies the server: `sslmode=verify-full` against the RDS CA
bundle shipped in this layer (certs/rds-ca-bundle.pem: the RDS root CAs of every region, and the
Amazon Trust Services roots that RDS Proxy's certificates chain to). Credentials come from the
database secret, read once per container; when PostgreSQL refuses them (the secret was rotated),
the secret is read again straight from Secrets Manager, past every cache, and the connection is
retried once with it.

With SnapStart, every execution environment of a version resumes from one snapshot taken after
init: `drop_process_state` runs after each restore (registered with the runtime's
`snapshot_restore_py`) and forgets whatever connects to the outside or was read from it before.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from wallet_core.config import Settings, get_settings
from wallet_core.domain import errors

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
    from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)

# SQLSTATEs after which the whole transaction can simply be run again.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
LOCK_NOT_AVAILABLE = "55P03"
# invalid_password, invalid_authorization_specification. A refused login carries no SQLSTATE in
# psycopg (libpq reports it as text), hence the message check in `is_authentication_failure`.
AUTHENTICATION_SQLSTATES = {"28P01", "28000"}

RDS_CA_BUNDLE = Path(__file__).resolve().parents[1] / "certs" / "rds-ca-bundle.pem"


def _normalise(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _secret_from_extension(secret_arn: str) -> dict[str, Any]:
    """Read a Secrets Manager secret through the AWS Parameters and Secrets Lambda Extension, which
    caches it and spares the API functions a boto3 import."""
    import urllib.parse
    import urllib.request  # only deployments that read a secret pay for it (http.client, email)

    port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
    request = urllib.request.Request(
        f"http://localhost:{port}/secretsmanager/get?secretId={urllib.parse.quote(secret_arn, safe='')}",
        headers={"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN", "")},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # nosec B310
        secret: dict[str, Any] = json.loads(json.loads(response.read())["SecretString"])
    return secret


def _tls(settings: Settings) -> dict[str, str]:
    query = {"sslmode": settings.database_sslmode}
    if settings.database_sslmode in ("verify-ca", "verify-full"):
        query["sslrootcert"] = settings.database_sslrootcert or str(RDS_CA_BUNDLE)
    return query


def _secret_url(settings: Settings, secret: dict[str, Any], *, with_password: bool = True) -> str:
    url = URL.create(
        "postgresql+psycopg",
        username=secret["username"],
        password=secret["password"] if with_password else None,
        host=settings.database_host or secret["host"],
        port=int(secret.get("port", 5432)),
        database=secret.get("dbname", "postgres"),
        query=_tls(settings),
    )
    return url.render_as_string(hide_password=False)


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
            query=_tls(settings),  # RDS refuses IAM tokens over a clear-text connection
        )
        return url.render_as_string(hide_password=False)
    if settings.database_secret_arn:
        return _secret_url(settings, _secret_from_extension(settings.database_secret_arn))
    raise errors.ServiceUnavailableError("No database is configured (DATABASE_URL or DATABASE_SECRET_ARN).")


@functools.cache
def _secrets_client() -> Any:  # a boto3 client: boto3 ships no types
    # Only a container whose password was rotated pays for boto3, and only then.
    import boto3

    return boto3.client("secretsmanager")


class SecretCredentials:
    """The database secret of one engine: read through the extension once; read again from Secrets
    Manager itself (the extension may still serve the old value for its TTL) when a login fails."""

    def __init__(self, secret_arn: str) -> None:
        self._secret_arn = secret_arn
        self._lock = threading.Lock()
        self._secret: dict[str, Any] | None = None

    def current(self) -> dict[str, Any]:
        with self._lock:
            if self._secret is None:
                self._secret = _secret_from_extension(self._secret_arn)
            return self._secret

    def refresh(self, refused: dict[str, Any]) -> dict[str, Any] | None:
        """The fresh secret, or None if it is still the one that was refused (nothing to retry)."""
        with self._lock:
            if self._secret is not None and self._secret.get("password") != refused.get("password"):
                return self._secret  # another thread of this container already refreshed it
            response = _secrets_client().get_secret_value(SecretId=self._secret_arn)
            fresh: dict[str, Any] = json.loads(response["SecretString"])
            if fresh.get("username") == refused.get("username") and fresh.get("password") == refused.get(
                "password"
            ):
                return None
            self._secret = fresh
            return fresh

    def connect(
        self,
        dialect: Dialect,
        connection_record: ConnectionPoolEntry,
        cargs: tuple[Any, ...],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        """`do_connect` listener: log in with the current secret; once more with a fresh one if the
        server refuses it."""
        secret = self.current()
        cparams.update(user=secret["username"], password=secret["password"])
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not is_authentication_failure(exc):
                raise
            fresh = self.refresh(secret)
            if fresh is None:
                raise
        logger.info("database login refused; connecting again with the rotated secret")
        cparams.update(user=fresh["username"], password=fresh["password"])
        return dialect.connect(*cargs, **cparams)


def is_authentication_failure(exc: BaseException) -> bool:
    if sqlstate(exc) in AUTHENTICATION_SQLSTATES:
        return True
    return _is_psycopg_error(exc, "OperationalError") and "authentication failed" in str(exc)


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
    credentials = None
    if settings.database_secret_arn and not (settings.database_url or settings.database_iam_auth):
        # The password is not in the URL: every new connection logs in through `credentials`.
        credentials = SecretCredentials(settings.database_secret_arn)
        url = _secret_url(settings, credentials.current(), with_password=False)
    else:
        url = resolve_database_url(settings)
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # No ping before every checkout (a round trip per request): a connection that died while the
        # container slept fails its first statement, is invalidated, and the request answers 503
        # (retryable); the unit of work pings only a connection that sat idle for a while.
        pool_pre_ping=False,
        pool_recycle=300,
        # Errors name the statement, never its values (amounts, references, metadata): they are
        # logged with every 500.
        hide_parameters=True,
        connect_args=connect_args,
    )
    if credentials is not None:
        event.listen(engine, "do_connect", credentials.connect)
    return use_iam_tokens(engine, settings)


def use_iam_tokens(engine: Engine, settings: Settings) -> Engine:
    """With IAM database auth, every new connection of this engine signs a token as its password."""
    if settings.database_iam_auth and not settings.database_url:
        event.listen(engine, "do_connect", _with_iam_token)
    return engine


@functools.cache
def _rds_client() -> Any:  # a boto3 client: boto3 ships no types
    # Only IAM-auth deployments pay for boto3, and only when they first connect.
    import boto3

    return boto3.client("rds")


def _with_iam_token(
    dialect: Dialect, connection_record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> None:
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


def _is_psycopg_error(exc: BaseException, kind: str = "Error") -> TypeGuard[psycopg.Error]:
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


# ---------------------------------------------------------------- SnapStart


def drop_process_state() -> None:
    """Forget what this process took from the outside before a snapshot: after a restore it may run
    in many environments at once, minutes or days later.

    - the engine and its pool: a pooled connection is a socket to a server that has long since
      dropped it (and, copied into many environments, would be one session shared by all); the
      engine also holds the database secret (`SecretCredentials`), read again on the next connect,
      so a password rotated since the snapshot is picked up without a failed login first;
    - boto3 clients (rare: only after a rotation or with IAM auth): credentials resolved before;
    - the `random` module's state, the same in every restored copy (uuid4 and `secrets` read the
      OS's entropy and need nothing).

    Settings stay: they come from environment variables, which a restore does not change. Nothing
    else is needed for Powertools: its cold-start flag is flipped by the first invocation, and none
    runs before the snapshot, so each restored environment reports its first request as cold."""
    if get_engine.cache_info().currsize:
        # close=False: the pooled connections are not closed (that would talk on sockets that are
        # dead, or worse, shared with other restored copies), only let go.
        get_engine().dispose(close=False)
    get_engine.cache_clear()
    _secrets_client.cache_clear()
    _rds_client.cache_clear()
    if "random" in sys.modules:  # imported before the snapshot (if not, it seeds itself when it is)
        sys.modules["random"].seed()  # not for secrets: only so restored copies do not share a sequence


def load_driver() -> None:
    """Import psycopg and SQLAlchemy's dialect for it, without connecting. They load with the first
    connection otherwise (about 40 ms of the first request); run before a SnapStart snapshot, they
    are in it. Not at import: a cold start without SnapStart would only move that time into init."""
    import psycopg  # noqa: F401
    from sqlalchemy.dialects.postgresql import psycopg as _dialect  # noqa: F401


@functools.cache  # once per process: a second registration would only run the hooks twice
def register_snapstart_hooks() -> bool:
    """Register `load_driver` to run before the SnapStart snapshot and `drop_process_state` after
    every restore. `snapshot_restore_py` is part of the Lambda Python runtime (python3.12+);
    elsewhere (tests, the local runtime) it may be absent and there is no snapshot to take."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(load_driver)
    register_after_restore(drop_process_state)
    return True


register_snapstart_hooks()  # at import, i.e. during init: the only time hooks can be registered
