"""Unit tests for the pieces that need no database: settings, URL resolution, error translation,
cursors, claims, problem rendering and the idempotency retry loop."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import sqlalchemy

import runner
from wallet_core.adapters import db
from wallet_core.config import Settings
from wallet_core.domain import errors
from wallet_core.http.auth import principal_from_event
from wallet_core.http.problems import STATUS_BY_CODE, problem_for
from wallet_core.service import idempotency
from wallet_core.service.pagination import decode_cursor, encode_cursor


def test_settings_read_the_environment_and_split_currencies():
    settings = Settings.from_environment(
        {"SUPPORTED_CURRENCIES": "usd, eur ,", "DB_POOL_SIZE": "3", "STAGE": ""}
    )

    assert settings.supported_currencies == frozenset({"USD", "EUR"})
    assert settings.db_pool_size == 3
    assert settings.stage == "dev"


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="db_pool_size"):
        Settings.from_environment({"DB_POOL_SIZE": "0"})


def test_a_plain_postgres_url_gets_the_psycopg_driver():
    url = db.resolve_database_url(Settings(database_url="postgresql://u:p@h:5432/d"))

    assert url == "postgresql+psycopg://u:p@h:5432/d"


def test_without_any_database_configuration_the_service_is_unavailable():
    with pytest.raises(errors.ServiceUnavailableError):
        db.resolve_database_url(Settings())


class _SecretsExtension(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        _SecretsExtension.seen.append((self.path, self.headers.get("X-Aws-Parameters-Secrets-Token")))
        secret = {
            "username": "app",
            "password": "pw",
            "host": "writer.internal",
            "port": 5433,
            "dbname": "wallet",
        }
        body = json.dumps({"SecretString": json.dumps(secret)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_secret_is_read_through_the_lambda_extension_and_host_can_be_overridden(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretsExtension)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(server.server_address[1]))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    try:
        url = db.resolve_database_url(
            Settings(
                database_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:db",
                database_host="proxy.internal",
            )
        )
    finally:
        server.shutdown()
        server.server_close()

    bundle = urllib.parse.quote(str(db.RDS_CA_BUNDLE), safe="")
    assert (
        url
        == f"postgresql+psycopg://app:pw@proxy.internal:5433/wallet?sslmode=verify-full&sslrootcert={bundle}"
    )
    path, token = _SecretsExtension.seen[-1]
    assert path.startswith("/secretsmanager/get?secretId=arn%3Aaws%3Asecretsmanager")
    assert token == "session-token"


def test_iam_auth_connects_as_the_user_with_a_fresh_token_as_password(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-key")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    db._rds_client.cache_clear()
    settings = Settings(
        database_iam_auth=True,
        database_host="proxy.internal",
        database_user="wallet_app",
        database_name="wallet",
    )

    url = db.resolve_database_url(settings)
    engine = runner.use_iam_tokens(sqlalchemy.create_engine(url), settings)
    params = {"host": "proxy.internal", "port": 5432, "user": "wallet_app"}
    db.with_iam_token(params)

    assert url.startswith("postgresql+psycopg://wallet_app@proxy.internal:5432/wallet?sslmode=verify-full&")
    assert sqlalchemy.event.contains(engine, "do_connect", runner.iam_token_listener)
    assert params["password"].startswith("proxy.internal:5432/?Action=connect&DBUser=wallet_app")
    assert "X-Amz-Signature=" in params["password"]
    db._rds_client.cache_clear()


def test_iam_auth_without_host_or_user_is_a_clear_503_and_a_url_wins_over_it():
    with pytest.raises(errors.ServiceUnavailableError, match="DATABASE_HOST and DATABASE_USER"):
        db.resolve_database_url(Settings(database_iam_auth=True, database_host="h"))
    settings = Settings(database_iam_auth=True, database_url="postgresql://u@h/d")
    engine = runner.use_iam_tokens(sqlalchemy.create_engine(db.resolve_database_url(settings)), settings)
    assert not sqlalchemy.event.contains(engine, "do_connect", runner.iam_token_listener)


def _driver_error(sqlstate: str | None, cls: type[psycopg.Error] = psycopg.Error) -> psycopg.Error:
    error = cls("boom")
    if sqlstate:
        error.sqlstate = sqlstate  # psycopg sets it from the server; here we fake the server
    return error


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("40001", errors.ConcurrencyConflictError),
        ("40P01", errors.ConcurrencyConflictError),
        ("55P03", errors.ConcurrencyConflictError),
        ("08006", errors.ServiceUnavailableError),
        ("57P01", errors.ServiceUnavailableError),
        ("53300", errors.ServiceUnavailableError),
        ("23505", type(None)),
    ],
)
def test_driver_errors_translate_to_domain_errors(sqlstate, expected):
    exc = _driver_error(sqlstate)

    assert isinstance(db.translate_error(exc), expected)


def test_a_connection_failure_without_sqlstate_is_unavailability():
    exc = _driver_error(None, psycopg.OperationalError)

    assert isinstance(db.translate_error(exc), errors.ServiceUnavailableError)
    assert db.translate_error(ValueError("not a driver error")) is None


def test_cursors_round_trip_and_garbage_is_a_validation_error():
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00+00:00", "x"]), 2) == [
        "2026-01-01T00:00:00+00:00",
        "x",
    ]
    assert decode_cursor(None, 1) is None
    for garbage in ("%%%", encode_cursor([1, 2]), encode_cursor({"a": 1})):
        with pytest.raises(errors.ValidationError):
            decode_cursor(garbage, 1)


@pytest.mark.parametrize(
    ("claims", "admin"),
    [
        ({"sub": "a", "scope": "wallet:admin"}, True),
        ({"sub": "a", "scope": "[wallet:admin other]"}, True),
        ({"sub": "a", "scope": ["wallet:admin"]}, True),
        ({"sub": "a", "scope": "wallet:read"}, False),
        ({"sub": "a"}, False),
    ],
)
def test_scopes_are_read_in_every_shape_api_gateway_produces(claims, admin):
    event = {"requestContext": {"authorizer": {"jwt": {"claims": claims}}}}

    assert principal_from_event(event).is_admin is admin


@pytest.mark.parametrize(
    "event",
    [{}, {"requestContext": {}}, {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": ""}}}}}],
)
def test_missing_claims_are_unauthorized(event):
    with pytest.raises(errors.UnauthorizedError):
        principal_from_event(event)


def test_every_domain_error_has_an_http_status():
    codes = {cls.code for cls in _all_subclasses(errors.WalletServiceError)}

    assert codes <= set(STATUS_BY_CODE)


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_problem_bodies_follow_rfc_9457():
    status, body = problem_for(
        errors.ValidationError("bad", errors=[{"field": "amount", "message": "too big"}])
    )

    assert status == 400
    assert json.loads(body) == {
        "type": "https://wallet.example.com/problems/validation-error",
        "title": "Bad Request",
        "status": 400,
        "detail": "bad",
        "code": "validation_error",
        "errors": [{"field": "amount", "message": "too big"}],
    }


class _FlakyUnitOfWork:
    """Fails the first attempts with a deadlock, as PostgreSQL would under a lock cycle."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.committed = 0
        self.idempotency = self

    def __enter__(self):
        self.attempts += 1
        return self

    def __exit__(self, *exc):
        return None

    def claim(self, *args, **kwargs):
        if self.attempts <= self.failures:
            raise errors.ConcurrencyConflictError()

    claim_with_next_statement = claim  # the attempt's first statement is where the deadlock hits

    def complete(self, *args):
        pass

    def commit(self):
        self.committed += 1


def _execute(uow):
    return idempotency.execute(
        uow,
        idempotency.IdempotentRequest("p", "k", "f"),
        lambda _: "done",
        render=lambda result: (201, result),
        render_rejection=problem_for,
        wait_seconds=1,
    )


def test_deadlocks_are_retried_and_never_reach_the_client():
    uow = _FlakyUnitOfWork(failures=2)

    outcome = _execute(uow)

    assert (outcome.status, outcome.body, uow.attempts, uow.committed) == (201, "done", 3, 1)


def test_persistent_conflicts_give_up_after_a_bounded_number_of_attempts():
    uow = _FlakyUnitOfWork(failures=100)

    with pytest.raises(errors.ConcurrencyConflictError):
        _execute(uow)
    assert uow.attempts == idempotency.MAX_ATTEMPTS
