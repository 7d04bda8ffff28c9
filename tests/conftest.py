"""Shared fixtures: a real PostgreSQL (DATABASE_URL, or an embedded server), the schema from the
Alembic migrations (applied by the migration function's own handler), and handler invocation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.lambda_runtime import FakeLambdaContext, HttpResult, api_event, load_handler, parse_result
from tests.support.routes import resolve
from tools import pgserver

ADMIN = {"sub": "operator-1", "scope": "wallet:admin wallet:read"}
ALICE = {"sub": "alice", "scope": "wallet:read"}
BOB = {"sub": "bob", "scope": "wallet:read"}

# System accounts are left alone: they are created once per currency and never go away.
LEDGER_TABLES = ("entries", "transactions", "wallets", "idempotency_keys")


def _libpq(url: str) -> str:
    from wallet_core.adapters.db import libpq_url

    return libpq_url(url)


class PostgresServer:
    """Creates throwaway databases on one server: the embedded one, or the one DATABASE_URL names."""

    def __init__(self) -> None:
        self._embedded = None
        external = os.environ.get("DATABASE_URL")
        if external:
            self.admin_url = make_url(external).set(drivername="postgresql+psycopg")
        else:
            self._embedded = pgserver.temporary()
            self.admin_url = make_url(self._embedded.url)
        self._created: list[str] = []

    def create_database(self, prefix: str = "wallet_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(
            _libpq(self.admin_url.render_as_string(hide_password=False)), autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            return
        with psycopg.connect(
            _libpq(self.admin_url.render_as_string(hide_password=False)), autocommit=True
        ) as conn:
            for name in self._created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


def reset_caches() -> None:
    from wallet_core.adapters import db
    from wallet_core.adapters.db import get_pool
    from wallet_core.config import get_settings

    if hasattr(db, "_secrets_client"):
        db._secrets_client.cache_clear()  # its region and credentials come from the environment

    if get_pool.cache_info().currsize:
        get_pool().dispose()
    get_pool.cache_clear()
    get_settings.cache_clear()


# The application's login in tests: a member of the migrations' NOLOGIN group role `wallet_app`, as
# the functions' user is in AWS. Roles are cluster-wide, so it is created once per server.
APP_LOGIN = "wallet_app_tester"
APP_PASSWORD = "wallet-app-tester-password"  # a throwaway server's throwaway role


def ensure_app_login(owner_url: str, login: str = APP_LOGIN, password: str = APP_PASSWORD) -> str:
    """Create (or refresh) a login role that is a member of wallet_app; returns its URL."""
    with psycopg.connect(_libpq(owner_url), autocommit=True) as conn:
        conn.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{login}') THEN
                    BEGIN
                        CREATE ROLE {login} LOGIN;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN
                        NULL;
                    END;
                END IF;
            END $$
            """
        )
        conn.execute(f"ALTER ROLE {login} LOGIN NOSUPERUSER PASSWORD '{password}'")
        conn.execute(f"GRANT wallet_app TO {login}")
    url = make_url(owner_url).set(username=login, password=password)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def owner_database_url(postgres_server: PostgresServer) -> str:
    """The application database, migrated to head by the migration function's handler (as the
    migration role, which owns the schema)."""
    url = postgres_server.create_database()
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    reset_caches()
    try:
        result = load_handler("migrations")({"action": "upgrade"}, FakeLambdaContext(function_name="migrate"))
    finally:
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        reset_caches()
    assert result["status"] == "ok", result
    return url


@pytest.fixture(scope="session")
def database_url(owner_database_url: str) -> Iterator[str]:
    """What the service connects with: a login role granted only `wallet_app` (least privilege)."""
    url = ensure_app_login(owner_database_url)
    saved = {
        name: os.environ.get(name) for name in ("DATABASE_URL", "DB_POOL_SIZE", "IDEMPOTENCY_WAIT_SECONDS")
    }
    os.environ.update({"DATABASE_URL": url, "DB_POOL_SIZE": "16", "IDEMPOTENCY_WAIT_SECONDS": "5"})
    reset_caches()
    yield url
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_caches()


@pytest.fixture
def db(database_url: str, owner_database_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection as the schema's owner, for Given steps and for checking what
    was written."""
    with psycopg.connect(_libpq(owner_database_url), autocommit=True) as connection:
        yield connection


def empty_ledger(db: psycopg.Connection) -> None:
    """The append-only triggers refuse TRUNCATE too; only a superuser can switch triggers off for
    its session (replica mode), as here."""
    db.execute("SET session_replication_role = replica")
    try:
        db.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)} CASCADE")
    finally:
        db.execute("RESET session_replication_role")


@pytest.fixture
def clean_ledger(db: psycopg.Connection) -> None:
    """Tests that count rows start from an empty ledger."""
    empty_ledger(db)


class Api:
    """Calls the real handlers with API Gateway v2 events, as the HTTP API would."""

    def call(
        self,
        function: str,
        method: str,
        path: str,
        *,
        claims: dict[str, Any] | None = None,
        body: Any = None,
        raw_body: str | None = None,
        key: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        """`request`, naming the function the route table must send it to (checked)."""
        route, _ = resolve(method, path)
        assert route.module == function, f"{method} {path} is served by {route.module}, not {function}"
        return self.request(
            method,
            path,
            as_user=claims,
            body=body,
            raw_body=raw_body,
            key=key,
            query=query,
            headers=headers,
        )

    # The API as a client sees it: the route (and so the function) is found from template.yaml's
    # route table by method and path, as API Gateway finds it.
    def post(
        self,
        path: str,
        body: Any = None,
        *,
        as_user: dict[str, Any] | None,
        key: str | None = None,
        raw_body: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        """POST with an Idempotency-Key: a fresh one unless `key` is given ("" sends none).
        `as_user` is the verified token's claims (None: no token)."""
        return self.request(
            "POST", path, body=body, as_user=as_user, key=key, raw_body=raw_body, query=query, headers=headers
        )

    def get(
        self,
        path: str,
        *,
        as_user: dict[str, Any] | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        return self.request("GET", path, as_user=as_user, query=query, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        as_user: dict[str, Any] | None,
        body: Any = None,
        raw_body: str | None = None,
        key: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        route, parameters = resolve(method, path)
        if method == "POST" and key is None:
            key = str(uuid.uuid4())
        event = api_event(
            method,
            path,
            body=body,
            raw_body=raw_body,
            claims=as_user,
            query=query,
            headers=headers,
            idempotency_key=key or None,
        )
        event["routeKey"] = f"{route.method} {route.path}"  # the pattern, as API Gateway sends it
        event["pathParameters"] = parameters or None
        return self._invoke(route.module, event)

    def _invoke(self, function: str, event: dict[str, Any]) -> HttpResult:
        handler = load_handler(f"functions/{function}")  # the route's handler module folder
        return parse_result(handler(event, FakeLambdaContext(function_name=function)))

    # Shortcuts for Given steps -------------------------------------------------------------
    def create_wallet(self, claims: dict[str, Any] = ALICE, currency: str = "USD", **extra: Any) -> dict:
        result = self.call(
            "wallet_create", "POST", "/v1/wallets", claims=claims, body={"currency": currency, **extra}
        )
        assert result.status == 201, result.body
        return result.body

    def credit(self, wallet_id: str, amount: int, claims: dict[str, Any] = ADMIN) -> HttpResult:
        return self.call(
            "credit_create",
            "POST",
            f"/v1/wallets/{wallet_id}/credits",
            claims=claims,
            body={"amount": amount},
        )

    def funded_wallet(self, amount: int, claims: dict[str, Any] = ALICE, currency: str = "USD") -> dict:
        wallet = self.create_wallet(claims, currency)
        if amount:
            assert self.credit(wallet["id"], amount).status == 201
        return self.get_wallet(wallet["id"])

    def get_wallet(self, wallet_id: str, claims: dict[str, Any] = ADMIN) -> dict:
        result = self.call("wallet_get", "GET", f"/v1/wallets/{wallet_id}", claims=claims)
        assert result.status == 200, result.body
        return result.body

    def transfer(
        self, source: str, destination: str, amount: int, claims: dict[str, Any] = ADMIN, **extra: Any
    ) -> HttpResult:
        body = {
            "source_wallet_id": source,
            "destination_wallet_id": destination,
            "amount": amount,
            "currency": extra.pop("currency", "USD"),
            **extra,
        }
        return self.call("transfer_create", "POST", "/v1/transfers", claims=claims, body=body)

    def create_hold(
        self, wallet_id: str, amount: int, claims: dict[str, Any] = ADMIN, **extra: Any
    ) -> HttpResult:
        return self.call(
            "hold_create",
            "POST",
            "/v1/holds",
            claims=claims,
            body={"wallet_id": wallet_id, "amount": amount, **extra},
        )

    def capture_hold(self, hold_id: str, claims: dict[str, Any] = ADMIN, **body: Any) -> HttpResult:
        return self.call(
            "hold_capture", "POST", f"/v1/holds/{hold_id}/capture", claims=claims, body=body or None
        )

    def void_hold(self, hold_id: str, claims: dict[str, Any] = ADMIN) -> HttpResult:
        return self.call("hold_void", "POST", f"/v1/holds/{hold_id}/void", claims=claims)

    def get_hold(self, hold_id: str, claims: dict[str, Any] = ADMIN) -> HttpResult:
        return self.call("hold_get", "GET", f"/v1/holds/{hold_id}", claims=claims)


@pytest.fixture
def api(database_url: str) -> Api:
    return Api()


def ledger_invariants(db: psycopg.Connection) -> list[str]:
    """The design's invariants, checked in SQL over the whole ledger. Returns what is violated."""
    problems: list[str] = []
    for currency, total in db.execute(
        "SELECT currency, sum(amount) FROM entries GROUP BY currency"
    ).fetchall():
        if total != 0:
            problems.append(f"entries of {currency} sum to {total}")
    for (transaction_id,) in db.execute(
        "SELECT transaction_id FROM entries GROUP BY transaction_id HAVING sum(amount) <> 0"
    ).fetchall():
        problems.append(f"transaction {transaction_id} is unbalanced")
    rows = db.execute(
        """
        SELECT w.id, w.balance, coalesce(sum(e.amount), 0), w.version, count(e.id), w.held
        FROM wallets w LEFT JOIN entries e ON e.wallet_id = w.id
        GROUP BY w.id
        """
    ).fetchall()
    for wallet_id, balance, entry_sum, _version, _entries, held in rows:
        if balance != entry_sum:
            problems.append(f"wallet {wallet_id} balance {balance} != sum of entries {entry_sum}")
        if balance - held < 0:
            problems.append(f"wallet {wallet_id} available {balance - held} < 0")
    # balance_after must replay exactly and versions must strictly increase per wallet.
    bad_chain = db.execute(
        """
        SELECT wallet_id FROM (
            SELECT wallet_id, balance_after, wallet_version,
                   sum(amount) OVER (PARTITION BY wallet_id ORDER BY id) AS running,
                   lag(wallet_version) OVER (PARTITION BY wallet_id ORDER BY id) AS previous_version
            FROM entries WHERE wallet_id IS NOT NULL
        ) chain
        WHERE balance_after <> running OR wallet_version <= previous_version
        LIMIT 5
        """
    ).fetchall()
    problems.extend(f"wallet {row[0]} has a broken balance_after/version chain" for row in bad_chain)
    stale = db.execute(
        """
        SELECT w.id FROM wallets w
        JOIN LATERAL (SELECT wallet_version FROM entries e WHERE e.wallet_id = w.id ORDER BY id DESC LIMIT 1) last
          ON true
        WHERE last.wallet_version > w.version
        """
    ).fetchall()
    problems.extend(f"wallet {row[0]} version is behind its entries" for row in stale)
    problems.extend(hold_invariants(db))
    return problems


def hold_invariants(db: psycopg.Connection) -> list[str]:
    """held = sum of what active holds still reserve (stored, and as reported net of due holds);
    a hold's captured_amount = the sum of its capture transactions."""
    problems: list[str] = []
    for wallet_id, stored, active, unexpired, due in db.execute(
        """
        SELECT w.id, w.held,
               coalesce(sum(h.amount - h.captured_amount) FILTER (WHERE h.status = 'active'), 0),
               coalesce(sum(h.amount - h.captured_amount)
                        FILTER (WHERE h.status = 'active' AND h.expires_at > now()), 0),
               coalesce(sum(h.amount - h.captured_amount)
                        FILTER (WHERE h.status = 'active' AND h.expires_at <= now()), 0)
        FROM wallets w LEFT JOIN holds h ON h.wallet_id = w.id
        GROUP BY w.id
        """
    ).fetchall():
        if stored != active:
            problems.append(f"wallet {wallet_id} stored held {stored} != active holds {active}")
        if stored - due != unexpired:
            problems.append(f"wallet {wallet_id} reported held {stored - due} != unexpired holds {unexpired}")
    for (hold_id,) in db.execute(
        """
        SELECT h.id FROM holds h LEFT JOIN transactions t ON t.hold_id = h.id
        GROUP BY h.id HAVING h.captured_amount <> coalesce(sum(t.amount), 0)
        """
    ).fetchall():
        problems.append(f"hold {hold_id} captured_amount != sum of its captures")
    return problems


@pytest.fixture
def invariants(db: psycopg.Connection) -> Callable[[], list[str]]:
    return lambda: ledger_invariants(db)
