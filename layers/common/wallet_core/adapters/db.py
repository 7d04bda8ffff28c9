"""The database connections of this process (one, in a Lambda container) and the translation of
driver errors into domain errors. psycopg only: SQLAlchemy is for Alembic and the migration function.

A Lambda container serves one request at a time, so a process keeps its connections itself
(`ConnectionPool`, `DB_POOL_SIZE` of them, one in AWS) instead of paying for a pool library at every
cold start. A connection is opened on first use, reused by every request after it, replaced after
`RECYCLE_SECONDS`, pinged by the unit of work only after it sat idle (`uow.IDLE_PING_SECONDS`), and
thrown away when it broke. Every connection is in autocommit mode: the raw session (session.py)
sends BEGIN, COMMIT and ROLLBACK itself, in the pipelines of the statements around them.

In AWS the connection is TLS that verifies the server: `sslmode=verify-full` against the RDS CA
bundle shipped in this layer (certs/rds-ca-bundle.pem: the RDS root CAs of every region, and the
Amazon Trust Services roots that RDS Proxy's certificates chain to). Credentials come from the
database secret, read once per container; when PostgreSQL refuses them (the secret was rotated),
the secret is read again straight from Secrets Manager, past every cache, and the connection is
retried once with it.

Errors name neither the statement's values nor, in logs, anything but the server's message: psycopg
never puts parameters into an error, and a statement that fails is noted on its error as
"[SQL parameters hidden: hide_parameters]" (the setting SQLAlchemy had for the same purpose).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import quote, urlencode

from wallet_core.config import Settings, get_settings
from wallet_core.domain import errors

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

# SQLSTATEs after which the whole transaction can simply be run again.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
LOCK_NOT_AVAILABLE = "55P03"
UNIQUE_VIOLATION = "23505"
# invalid_password, invalid_authorization_specification. A refused login carries no SQLSTATE in
# psycopg (libpq reports it as text), hence the message check in `is_authentication_failure`.
AUTHENTICATION_SQLSTATES = {"28P01", "28000"}

RDS_CA_BUNDLE = Path(__file__).resolve().parents[1] / "certs" / "rds-ca-bundle.pem"

# The service's URLs name the driver as SQLAlchemy does (postgresql+psycopg://), because the
# migration function hands the same URL to Alembic; libpq is given it without the driver.
DRIVER_SCHEME = "postgresql+psycopg"
# A connection older than this is closed and replaced when it is next taken (as SQLAlchemy's
# pool_recycle did): a proxy or a failover never finds one that lived for hours.
RECYCLE_SECONDS = 300.0
# How long a request waits for one of the process's connections (only a process that serves
# requests concurrently, the local runtime or the tests, ever waits).
CHECKOUT_TIMEOUT_SECONDS = 30.0
HIDDEN_PARAMETERS_NOTE = "[SQL parameters hidden: hide_parameters]"


def _normalise(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if separator and scheme in ("postgresql", "postgres"):
        return f"{DRIVER_SCHEME}://{rest}"
    return url


def libpq_url(url: str) -> str:
    """The service's URL as libpq reads it (no driver in the scheme)."""
    scheme, separator, rest = url.partition("://")
    return f"postgresql://{rest}" if separator and scheme.startswith("postgres") else url


def _url(
    *, user: str, password: str | None, host: str, port: int, database: str, query: dict[str, str]
) -> str:
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    address = f"[{host}]" if ":" in host else host
    parameters = f"?{urlencode(query, quote_via=quote)}" if query else ""
    return f"{DRIVER_SCHEME}://{login}@{address}:{port}/{quote(database, safe='')}{parameters}"


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
    return _url(
        user=secret["username"],
        password=secret["password"] if with_password else None,
        host=settings.database_host or secret["host"],
        port=int(secret.get("port", 5432)),
        database=secret.get("dbname", "postgres"),
        query=_tls(settings),
    )


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return _normalise(settings.database_url)
    if settings.database_iam_auth:
        if not (settings.database_host and settings.database_user):
            raise errors.ServiceUnavailableError("IAM database auth needs DATABASE_HOST and DATABASE_USER.")
        return _url(
            user=settings.database_user,
            password=None,
            host=settings.database_host,
            port=settings.database_port,
            database=settings.database_name,
            query=_tls(settings),  # RDS refuses IAM tokens over a clear-text connection
        )
    if settings.database_secret_arn:
        return _secret_url(settings, _secret_from_extension(settings.database_secret_arn))
    raise errors.ServiceUnavailableError("No database is configured (DATABASE_URL or DATABASE_SECRET_ARN).")


@functools.cache
def _secrets_client() -> Any:  # a boto3 client: boto3 ships no types
    # Only a container whose password was rotated pays for boto3, and only then.
    import boto3

    return boto3.client("secretsmanager")


Login = Callable[[dict[str, Any]], "psycopg.Connection"]


class SecretCredentials:
    """The database secret of one process: read through the extension once; read again from Secrets
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
                return self._secret  # another thread of this process already refreshed it
            response = _secrets_client().get_secret_value(SecretId=self._secret_arn)
            fresh: dict[str, Any] = json.loads(response["SecretString"])
            if fresh.get("username") == refused.get("username") and fresh.get("password") == refused.get(
                "password"
            ):
                return None
            self._secret = fresh
            return fresh

    def connect(self, login: Login) -> psycopg.Connection:
        """Log in with the current secret; once more with a fresh one if the server refuses it."""
        secret = self.current()
        try:
            return login({"user": secret["username"], "password": secret["password"]})
        except Exception as exc:
            if not is_authentication_failure(exc):
                raise
            fresh = self.refresh(secret)
            if fresh is None:
                raise
        logger.info("database login refused; connecting again with the rotated secret")
        return login({"user": fresh["username"], "password": fresh["password"]})


def is_authentication_failure(exc: BaseException) -> bool:
    if sqlstate(exc) in AUTHENTICATION_SQLSTATES:
        return True
    return _is_psycopg_error(exc, "OperationalError") and "authentication failed" in str(exc)


@dataclass(eq=False)
class PooledConnection:
    """One of the process's connections, with what the pool and the unit of work know about it."""

    connection: psycopg.Connection
    opened: float = field(default_factory=time.monotonic)
    last_used: float | None = None  # monotonic time its last unit of work ended; None: never used


class ConnectionPool:
    """Up to `size` connections, opened on demand and kept between requests (most recently used
    first, so a container's requests keep to one server session)."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        connect_args: dict[str, Any],
        login: Callable[[Login], psycopg.Connection] | None = None,
    ) -> None:
        """`login` opens a connection with the credentials it adds (default: those of the URL)."""
        self._conninfo = libpq_url(url)
        self._connect_args = connect_args
        self._login = login or _plain_login
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[PooledConnection] = []

    def _open(self) -> PooledConnection:
        import psycopg

        def login(credentials: dict[str, Any]) -> psycopg.Connection:
            return psycopg.Connection.connect(
                self._conninfo, autocommit=True, **self._connect_args, **credentials
            )

        return PooledConnection(self._login(login))

    def checkout(self) -> PooledConnection:
        """A connection for one unit of work; give it back with `checkin` (or `discard`)."""
        if not self._slots.acquire(timeout=CHECKOUT_TIMEOUT_SECONDS):
            raise errors.ServiceUnavailableError()
        try:
            with self._lock:
                pooled = self._idle.pop() if self._idle else None
            if pooled is not None and time.monotonic() - pooled.opened > RECYCLE_SECONDS:
                pooled.connection.close()
                pooled = None
            return pooled if pooled is not None else self._open()
        except BaseException:
            self._slots.release()
            raise

    def reopen(self, pooled: PooledConnection) -> PooledConnection:
        """Replace a checked-out connection that turned out dead (its slot stays taken)."""
        pooled.connection.close()
        return self._open()

    def checkin(self, pooled: PooledConnection) -> None:
        pooled.last_used = time.monotonic()
        with self._lock:
            self._idle.append(pooled)
        self._slots.release()

    def discard(self, pooled: PooledConnection) -> None:
        """Give back a connection that broke: closed, and the next checkout opens a new one."""
        try:
            pooled.connection.close()
        finally:
            self._slots.release()

    def dispose(self, *, close: bool = True) -> None:
        """Let go of the idle connections; `close=False` drops them without a word on their sockets
        (after a SnapStart restore, where they lead nowhere, or to a session other copies share)."""
        with self._lock:
            idle, self._idle = self._idle, []
        if close:
            for pooled in idle:
                pooled.connection.close()


def _connect_args(settings: Settings) -> dict[str, Any]:
    connect_args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "application_name": f"wallet-{settings.stage}",
    }
    if settings.database_secret_arn or settings.database_iam_auth:
        # Behind RDS Proxy prepared statements pin connections to one client: turn them off.
        connect_args["prepare_threshold"] = None
    return connect_args


@functools.cache
def get_pool() -> ConnectionPool:
    settings = get_settings()
    login: Callable[[Login], psycopg.Connection] = _plain_login
    if settings.database_secret_arn and not (settings.database_url or settings.database_iam_auth):
        # The password is not in the URL: every new connection logs in through `credentials`.
        credentials = SecretCredentials(settings.database_secret_arn)
        url = _secret_url(settings, credentials.current(), with_password=False)
        login = credentials.connect
    else:
        url = resolve_database_url(settings)
        if settings.database_iam_auth and not settings.database_url:
            login = _iam_login
    return ConnectionPool(url, size=settings.db_pool_size, connect_args=_connect_args(settings), login=login)


def _plain_login(login: Login) -> psycopg.Connection:
    return login({})  # the URL says who logs in, and how


def _iam_login(login: Login) -> psycopg.Connection:
    """With IAM database auth, every new connection signs a fresh token as its password."""
    settings = get_settings()
    params: dict[str, Any] = {
        "host": settings.database_host,
        "port": settings.database_port,
        "user": settings.database_user,
    }
    with_iam_token(params)
    return login({"password": params["password"]})


@functools.cache
def _rds_client() -> Any:  # a boto3 client: boto3 ships no types
    # Only IAM-auth deployments pay for boto3, and only when they first connect.
    import boto3

    return boto3.client("rds")


def with_iam_token(cparams: dict[str, Any]) -> None:
    """A fresh token as `cparams["password"]`, for a new connection (here and in the migration
    function's engine): tokens live 15 minutes, connections are recycled after 5, and generating one
    is a local signature."""
    cparams["password"] = _rds_client().generate_db_auth_token(
        DBHostname=cparams["host"], Port=int(cparams.get("port") or 5432), DBUsername=cparams["user"]
    )


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error (None for anything else)."""
    return exc.sqlstate if _is_psycopg_error(exc) else None


def _is_psycopg_error(exc: BaseException, kind: str = "Error") -> TypeGuard[psycopg.Error]:
    # psycopg loads with the first connection, not with this module: a handler's cold import does
    # not pay for it. Not loaded = not its error.
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, getattr(psycopg, kind))


def is_disconnect(exc: BaseException) -> bool:
    """The connection itself failed (server gone, network, terminated backend)."""
    state = sqlstate(exc)
    if (state or "").startswith("08") or state in ("57P01", "57P02", "57P03"):
        return True
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


def note_hidden_parameters(exc: BaseException) -> None:
    """Say on a database error that reaches the logs that its statement's values were left out."""
    if _is_psycopg_error(exc) and HIDDEN_PARAMETERS_NOTE not in getattr(exc, "__notes__", ()):
        exc.add_note(HIDDEN_PARAMETERS_NOTE)


# ---------------------------------------------------------------- SnapStart


def drop_process_state() -> None:
    """Forget what this process took from the outside before a snapshot: after a restore it may run
    in many environments at once, minutes or days later.

    - the connection pool: a connection is a socket to a server that has long since dropped it (and,
      copied into many environments, would be one session shared by all); the pool also holds the
      database secret (`SecretCredentials`), read again on the next connect, so a password rotated
      since the snapshot is picked up without a failed login first;
    - boto3 clients (rare: only after a rotation or with IAM auth): credentials resolved before;
    - the `random` module's state, the same in every restored copy (uuid4 and `secrets` read the
      OS's entropy and need nothing).

    Settings stay: they come from environment variables, which a restore does not change. Nothing
    else is needed for Powertools: its cold-start flag is flipped by the first invocation, and none
    runs before the snapshot, so each restored environment reports its first request as cold."""
    if get_pool.cache_info().currsize:
        # close=False: the connections are not closed (that would talk on sockets that are dead, or
        # worse, shared with other restored copies), only let go.
        get_pool().dispose(close=False)
    get_pool.cache_clear()
    _secrets_client.cache_clear()
    _rds_client.cache_clear()
    if "random" in sys.modules:  # imported before the snapshot (if not, it seeds itself when it is)
        sys.modules["random"].seed()  # not for secrets: only so restored copies do not share a sequence


def load_driver() -> None:
    """Import psycopg without connecting. It loads with the first connection otherwise (part of the
    first request); run before a SnapStart snapshot, it is in it. Not at import: a cold start
    without SnapStart would only move that time into init."""
    import psycopg  # noqa: F401


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
