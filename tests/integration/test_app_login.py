"""The migration function creates the application's login from its own secret (APP_DATABASE_SECRET_ARN),
so the functions never need the master secret: a member of wallet_app and nothing more."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _libpq
from tests.support.lambda_runtime import FakeLambdaContext, load_handler


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        import boto3

        yield boto3.client("secretsmanager")


def _migrate(owner_url: str) -> dict:
    import os

    from tests.conftest import reset_caches

    saved = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = owner_url
    reset_caches()
    try:
        return load_handler("migrations")({"action": "upgrade"}, FakeLambdaContext(function_name="migrate"))
    finally:
        os.environ["DATABASE_URL"] = saved
        reset_caches()


def test_the_app_login_is_created_from_its_secret_and_its_password_follows_the_secret(
    owner_database_url, database_url, db, aws, monkeypatch
):
    login = f"app_{uuid.uuid4().hex[:8]}"
    arn = aws.create_secret(Name=login, SecretString=json.dumps({"username": login, "password": "first"}))[
        "ARN"
    ]
    hba_path = db.execute("SHOW hba_file").fetchone()[0]
    with open(hba_path) as handle:
        original = handle.read()
    with open(hba_path, "w") as handle:
        handle.write(f"host all {login} 127.0.0.1/32 scram-sha-256\n" + original)
    db.execute("SELECT pg_reload_conf()")
    try:
        monkeypatch.setenv("APP_DATABASE_SECRET_ARN", arn)
        assert _migrate(owner_database_url)["status"] == "ok"
        aws.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": login, "password": "second"}))
        assert _migrate(owner_database_url)["status"] == "ok"

        url = make_url(owner_database_url).set(username=login)
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            psycopg.connect(_libpq(url.set(password="first").render_as_string(hide_password=False)))
        with psycopg.connect(
            _libpq(url.set(password="second").render_as_string(hide_password=False))
        ) as conn:
            assert conn.execute("SELECT count(*) >= 0 FROM wallets").fetchone() == (True,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM entries")
    finally:
        with open(hba_path, "w") as handle:
            handle.write(original)
        db.execute("SELECT pg_reload_conf()")
    flags = db.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, pg_has_role(rolname, 'wallet_app', 'member')"
        " FROM pg_roles WHERE rolname = %s",
        (login,),
    ).fetchone()
    assert flags == (True, False, False, True)


@pytest.mark.parametrize("login", ["postgres", "wallet_app"])
def test_a_privileged_or_group_role_is_never_turned_into_the_app_login(
    owner_database_url, database_url, login
):
    import runner

    with pytest.raises(Exception, match="unprivileged"):
        runner.ensure_app_login(owner_database_url, {"username": login, "password": "x"})


def test_without_an_app_secret_nothing_is_created():
    import runner

    assert runner.ensure_app_login("postgresql+psycopg://nobody@127.0.0.1:1/none", None) is None
