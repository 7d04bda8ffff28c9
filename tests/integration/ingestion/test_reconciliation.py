"""balance.reported snapshots: their drift is exact even while money moves (listing them:
tests/integration/test_balance_snapshot_list.py)."""

from __future__ import annotations

import random
import threading

from tests.conftest import ADMIN


def test_snapshots_record_the_exact_drift_while_transfers_run(api, db, ingestion, invariants):
    wallet = api.funded_wallet(50_000, ADMIN)["id"]
    peers = [api.funded_wallet(50_000, ADMIN)["id"] for _ in range(3)]
    stop = threading.Event()
    crashes: list[BaseException] = []

    def traffic(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                peer = rng.choice(peers)
                source, destination = (wallet, peer) if rng.random() < 0.5 else (peer, wallet)
                assert api.transfer(source, destination, rng.randint(1, 500), claims=ADMIN).status in (
                    201,
                    422,
                )
        except BaseException as exc:
            crashes.append(exc)

    threads = [threading.Thread(target=traffic, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    reports = []
    try:
        for _ in range(25):
            report = ingestion.body("balance.reported", wallet_id=wallet, balance=50_000, currency="USD")
            assert ingestion.deliver(report) == []
            reports.append(report["event_id"])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    final = ingestion.body("balance.reported", wallet_id=wallet, balance=50_000, currency="USD")
    ingestion.deliver(final)

    assert crashes == []
    snapshots = db.execute(
        "SELECT event_id, reported_balance, ledger_balance, drift FROM balance_snapshots WHERE wallet_id = %s",
        (wallet,),
    ).fetchall()
    # Every ledger balance a snapshot saw is one the wallet really had at some commit.
    history = {
        row[0] for row in db.execute("SELECT balance_after FROM entries WHERE wallet_id = %s", (wallet,))
    }
    assert len(snapshots) == 26
    for _event_id, reported, ledger_balance, drift in snapshots:
        assert ledger_balance in history
        assert drift == reported - ledger_balance
    settled = api.get_wallet(wallet)["balance"]
    assert next(row for row in snapshots if row[0] == final["event_id"])[3] == 50_000 - settled
    assert len({row[2] for row in snapshots}) > 1  # the traffic really moved the balance meanwhile
    assert invariants() == []
