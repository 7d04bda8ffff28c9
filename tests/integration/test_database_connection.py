"""How the service reaches PostgreSQL: SQL parameters never reach the logs, TLS verifies the server's
certificate against the RDS CA bundle shipped in the layer, and a rotated password is picked up by a
warm container without a restart."""

from __future__ import annotations

import json
import ssl
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN, _libpq, reset_caches

MARKER = "card-4111111111111111-secret"


def test_a_500_log_carries_no_sql_parameters(api, monkeypatch, caplog, capsys):
    # Given a statement that fails on the server with a sensitive value among its parameters
    from wallet_core.adapters.repositories import WalletRepository

    def failing_add(self, **kwargs):
        self._session.fetch("SELECT CAST(%(secret)s AS text), 1 / 0", {"secret": MARKER})

    monkeypatch.setattr(WalletRepository, "add", failing_add)

    # When a request hits it
    result = api.call("wallet_create", "POST", "/v1/wallets", claims=ADMIN, body={"currency": "USD"})

    # Then the answer is a generic 500 and nothing logged names the parameter
    assert result.status == 500
    logged = "\n".join(
        [record.getMessage() + str(record.exc_text or "") for record in caplog.records]
        + [capsys.readouterr().out]
    )
    assert "division by zero" in logged  # the error itself is logged
    assert MARKER not in logged
    assert "hide_parameters" in logged


def test_the_rds_ca_bundle_ships_in_the_layer_and_parses():
    from wallet_core.adapters import db

    bundle = Path(db.RDS_CA_BUNDLE)
    assert bundle.is_relative_to(Path(db.__file__).resolve().parents[1])  # inside wallet_core
    context = ssl.create_default_context(cafile=str(bundle))
    subjects = [
        dict(part[0] for part in cert["subject"]).get("commonName", "") for cert in context.get_ca_certs()
    ]
    assert sum("Amazon RDS" in name for name in subjects) > 100
    assert any(name.startswith("Amazon RDS us-east-1 Root CA RSA2048 G1") for name in subjects)
    assert any(name == "Amazon Root CA 1" for name in subjects)  # RDS Proxy's certificates chain to it


def test_aws_connections_verify_the_server_certificate(monkeypatch):
    from wallet_core.adapters import db
    from wallet_core.config import Settings

    secret = {"username": "app", "password": "pw", "host": "cluster.internal", "port": 5432, "dbname": "w"}
    monkeypatch.setattr(db, "_secret_from_extension", lambda arn: secret)

    by_secret = make_url(db.resolve_database_url(Settings(database_secret_arn="arn:secret")))
    by_iam = make_url(
        db.resolve_database_url(Settings(database_iam_auth=True, database_host="proxy", database_user="u"))
    )
    custom = make_url(
        db.resolve_database_url(
            Settings(database_secret_arn="arn:secret", database_sslrootcert="/opt/ca.pem")
        )
    )

    for url in (by_secret, by_iam):
        assert url.query["sslmode"] == "verify-full"
        assert url.query["sslrootcert"] == str(db.RDS_CA_BUNDLE)
    assert custom.query["sslrootcert"] == "/opt/ca.pem"


@pytest.fixture
def password_auth_for(db):
    """Given step: the server asks `role` for its password (the embedded server trusts everyone)."""
    hba = Path(db.execute("SHOW hba_file").fetchone()[0])
    original = hba.read_text()
    roles: list[str] = []

    def require(role: str) -> None:
        roles.append(role)
        lines = "".join(f"host all {name} 127.0.0.1/32 scram-sha-256\n" for name in roles)
        hba.write_text(lines + original)
        db.execute("SELECT pg_reload_conf()")

    yield require
    hba.write_text(original)
    db.execute("SELECT pg_reload_conf()")


def test_a_rotated_password_is_fetched_again_and_the_warm_container_reconnects(
    database_url, db, password_auth_for, monkeypatch
):
    from moto import mock_aws

    from wallet_core.adapters import db as database
    from wallet_core.adapters.uow import SqlUnitOfWork

    # Given a login role whose password is checked, and its secret in Secrets Manager
    role = f"rotating_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'before-rotation'")
    db.execute(f"GRANT wallet_app TO {role}")
    password_auth_for(role)
    secret = _login_by_secret(database_url, role, "before-rotation", monkeypatch)
    extension_reads: list[str] = []

    def cached_by_the_extension(arn: str) -> dict:
        extension_reads.append(arn)
        return dict(secret)  # the extension keeps answering what it cached

    monkeypatch.setattr(database, "_secret_from_extension", cached_by_the_extension)
    with mock_aws():
        import boto3

        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name=role, SecretString=json.dumps(secret))["ARN"]
        monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
        reset_caches()
        try:
            # and a warm container
            with SqlUnitOfWork() as uow:
                assert uow.wallets.get(uuid.uuid4()) is None

            # When the password is rotated (database and secret), and the container's connection is
            # replaced (recycled, or dropped by the proxy)
            db.execute(f"ALTER ROLE {role} PASSWORD 'after-rotation'")
            client.put_secret_value(
                SecretId=arn, SecretString=json.dumps({**secret, "password": "after-rotation"})
            )
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            database.get_pool().dispose()

            # Then the next request still works: the secret is read again, past the cache
            with SqlUnitOfWork() as uow:
                assert uow.wallets.get(uuid.uuid4()) is None
            with SqlUnitOfWork() as uow:  # and the fresh password is kept for later connections
                assert uow.wallets.get(uuid.uuid4()) is None
        finally:
            reset_caches()
        assert extension_reads == [arn]
    with psycopg.connect(_libpq(database_url)) as conn:  # the suite's own role is untouched
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_wrong_password_that_stays_wrong_is_a_503_not_a_loop(
    database_url, db, password_auth_for, monkeypatch
):
    from moto import mock_aws

    from wallet_core.adapters import db as database
    from wallet_core.adapters.uow import SqlUnitOfWork
    from wallet_core.domain import errors

    role = f"wrong_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right'")
    password_auth_for(role)
    secret = _login_by_secret(database_url, role, "wrong", monkeypatch)
    monkeypatch.setattr(database, "_secret_from_extension", lambda arn: dict(secret))
    with mock_aws():
        import boto3

        arn = boto3.client("secretsmanager").create_secret(Name=role, SecretString=json.dumps(secret))["ARN"]
        monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
        reset_caches()
        try:
            with pytest.raises(errors.ServiceUnavailableError), SqlUnitOfWork():
                pass
        finally:
            reset_caches()


def _login_by_secret(database_url: str, role: str, password: str, monkeypatch) -> dict:
    """The service logs in as `role` with the credentials of a Secrets Manager secret (no
    DATABASE_URL); returns that secret, for the test to store it in moto."""
    url = make_url(database_url)
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_SSLMODE": "disable",  # the embedded server speaks no TLS
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DATABASE_URL")
    return {
        "username": role,
        "password": password,
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
    }


def _openssl(*args: str, cwd: Path) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class _TlsHandshakeServer:
    """Just enough of PostgreSQL to prove what the client verifies: it answers the client's
    SSLRequest with 'S', completes the TLS handshake with its certificate, records that, and hangs
    up. (The embedded PostgreSQL is built without TLS.)"""

    def __init__(self, cert: Path, key: Path) -> None:
        import socket
        import threading

        self.handshakes = 0
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with client:
                client.settimeout(5)
                try:
                    if client.recv(8)[4:] != (80877103).to_bytes(4, "big"):  # SSLRequest
                        continue
                    client.sendall(b"S")
                    with self._context.wrap_socket(client, server_side=True):
                        self.handshakes += 1
                except (OSError, ssl.SSLError):
                    continue

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS endpoint with a certificate for `localhost` from a throwaway CA."""
    import shutil

    if shutil.which("openssl") is None:  # pragma: no cover - Debian and the CI image ship it
        pytest.skip("openssl is needed to make a test certificate authority")
    work = tmp_path_factory.mktemp("tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Wallet Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=work,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=work,
    )
    (work / "san.ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
        cwd=work,
    )
    server = _TlsHandshakeServer(work / "server.pem", work / "server.key")
    yield server, work / "ca.pem"
    server.close()


def _connect_as_in_aws(server, host: str, **settings) -> Exception:
    """Connect the way the service does in AWS (secret, verify-full); the server always hangs up
    after the handshake, so this returns the error the client ends with."""
    from wallet_core.adapters import db
    from wallet_core.config import Settings

    secret = {"username": "app", "password": "pw", "host": host, "port": server.port, "dbname": "wallet"}
    original = db._secret_from_extension
    db._secret_from_extension = lambda arn: secret
    try:
        url = db.resolve_database_url(Settings(database_secret_arn="arn:secret", **settings))
    finally:
        db._secret_from_extension = original
    pool = db.ConnectionPool(url, size=1, connect_args={})
    with pytest.raises(psycopg.OperationalError) as raised:
        pool.checkout()
    return raised.value


def test_verify_full_accepts_the_certificate_of_a_trusted_ca_for_the_right_host(tls_server):
    server, ca = tls_server
    before = server.handshakes

    error = _connect_as_in_aws(server, "localhost", database_sslrootcert=str(ca))

    assert "certificate" not in str(error)
    assert server.handshakes > before  # (libpq may try each address of localhost)


def test_verify_full_refuses_a_server_the_rds_bundle_does_not_vouch_for(tls_server):
    server, _ = tls_server
    before = server.handshakes

    error = _connect_as_in_aws(server, "localhost")

    assert "certificate verify failed" in str(error)
    assert server.handshakes == before


def test_verify_full_refuses_a_certificate_for_another_host_name(tls_server):
    server, ca = tls_server

    error = _connect_as_in_aws(server, "127.0.0.1", database_sslrootcert=str(ca))

    # (libpq checks the name after the handshake, so the server cannot tell; the client refuses)
    assert "127.0.0.1" in str(error)
    assert "does not match" in str(error) or "server certificate for" in str(error)
