"""SnapStart: every environment of a version resumes from one snapshot taken after init, so the hook
registered with the runtime's snapshot_restore_py must forget the connections and per-process state
taken before the snapshot, and the template must ask for SnapStart only where AWS supports it."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import snapshot_restore_py

from tests.infrastructure import sam
from wallet_core.adapters import db as adapters_db
from wallet_core.adapters.uow import SqlUnitOfWork


def _backend_pid() -> int:
    with SqlUnitOfWork() as uow:
        return uow.wallets._session.connection.info.backend_pid


def test_importing_the_adapters_registers_the_snapstart_hooks():
    # Given the layer imported at init (every function's handler imports it through the unit of work)
    registered = [entry[0] for entry in snapshot_restore_py._after_restore_registry]
    before = [entry[0] for entry in snapshot_restore_py._before_snapshot_registry]

    # Then the runtime runs drop_process_state after every restore, exactly once, and loads the
    # driver into the snapshot
    assert registered.count(adapters_db.drop_process_state) == 1
    assert before.count(adapters_db.load_driver) == 1
    assert adapters_db.register_snapstart_hooks() is True  # idempotent: asking again registers nothing
    assert [entry[0] for entry in snapshot_restore_py._after_restore_registry].count(
        adapters_db.drop_process_state
    ) == 1


@pytest.fixture
def one_connection_pool(database_url, monkeypatch):
    """As in Lambda (DB_POOL_SIZE=1): the warm process holds exactly one connection."""
    from tests.conftest import reset_caches

    monkeypatch.setenv("DB_POOL_SIZE", "1")
    reset_caches()
    yield
    monkeypatch.undo()
    reset_caches()


def test_the_hook_drops_the_warm_pool_and_the_next_request_connects_afresh(one_connection_pool, db):
    # Given a warm pool, holding a connection made before the snapshot
    before = adapters_db.get_pool()
    pid_before = _backend_pid()
    assert _backend_pid() == pid_before  # warm: the pooled connection is reused

    # When the environment is restored from the snapshot
    for hook, args, kwargs in list(snapshot_restore_py._after_restore_registry):
        hook(*args, **kwargs)

    # Then the next request gets a new pool and a new server session
    after = adapters_db.get_pool()
    assert after is not before
    pid_after = _backend_pid()
    assert pid_after != pid_before
    pooled = after.checkout()
    try:
        assert pooled.connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        after.checkin(pooled)
    alive = db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid_after,)).fetchone()[0]
    assert alive == 1


def test_the_driver_is_loaded_before_the_snapshot_without_connecting():
    # A fresh interpreter, as at init: importing the layer does not load the driver; the
    # before-snapshot hook does (SQLAlchemy is never loaded), and creates no pool (so opens no
    # connection).
    script = """
import sys
import snapshot_restore_py
from wallet_core.adapters import db
loaded = lambda: ["psycopg" in sys.modules, "sqlalchemy" in sys.modules]
print(loaded())
for hook, args, kwargs in snapshot_restore_py._before_snapshot_registry:
    hook(*args, **kwargs)
print(loaded(), db.get_pool.cache_info().currsize)
"""
    layer = str(Path(__file__).resolve().parents[2] / "layers" / "common")
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": layer},
    )

    assert result.stdout.splitlines() == ["[False, False]", "[True, False] 0"]


def test_the_hook_forgets_cached_aws_clients_and_reseeds_random(monkeypatch):
    calls = []
    monkeypatch.setattr(adapters_db._secrets_client, "cache_clear", lambda: calls.append("secrets"))
    monkeypatch.setattr(adapters_db._rds_client, "cache_clear", lambda: calls.append("rds"))
    random.seed(7)
    copied_state = random.getstate()  # what every restored copy would share

    adapters_db.drop_process_state()

    assert sorted(calls) == ["rds", "secrets"]
    assert random.getstate() != copied_state


@pytest.fixture(scope="module")
def production() -> dict:
    return sam.translate(sam.raw_template(), sam.overrides("production"))


def test_the_template_enables_snapstart_where_aws_supports_it(production):
    functions = {
        name: resource["Properties"]
        for name, resource in production["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    on = {"ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}}
    snapstarted = {name for name, properties in functions.items() if properties.get("SnapStart") == on}

    # Every function that serves traffic, not the once-per-deploy migration and PreTraffic hook
    assert snapstarted == set(functions) - {"MigrationFunction", "PreTrafficHookFunction"}
    assert production["Conditions"]["UseSnapStart"] == {"Fn::Equals": ["true", {"Ref": "SnapStart"}]}
    assert production["Parameters"]["SnapStart"]["Default"] == "true"
    for name in snapstarted:
        properties = functions[name]
        assert properties["Runtime"] in ("python3.12", "python3.13"), name  # SnapStart: python3.12+
        assert properties.get("EphemeralStorage", {"Size": 512})["Size"] <= 512, name
        assert "FileSystemConfigs" not in properties, name
    provisioned = [
        r
        for r in production["Resources"].values()
        if "ProvisionedConcurrencyConfig" in r.get("Properties", {})
    ]
    assert provisioned == []  # SnapStart and provisioned concurrency exclude each other
