"""`make bench` still measures: every piece runs for a moment and yields positive figures.

No timing thresholds: this guards the instrument (pgbench parsing, worker processes, the handler
path, import timing), not the service's speed.
"""

from __future__ import annotations

import pytest

from tools import bench


def test_pgbench_summary_is_parsed_without_connection_time() -> None:
    # Given the summary pgbench prints
    output = (
        "number of transactions actually processed: 2400\n"
        "number of failed transactions: 0 (0.000%)\n"
        "latency average = 3.250 ms\n"
        "initial connection time = 12.5 ms\n"
        "tps = 2461.538 (without initial connection time)\n"
    )

    # When it is parsed
    result = bench.parse_pgbench(output)

    # Then the figures are the ones without connection time
    assert (result.tps, result.latency_ms, result.transactions, result.failed) == (2461.538, 3.25, 2400, 0)


@pytest.mark.slow
def test_bench_measures_every_figure_it_compares(postgres_server) -> None:
    # Given a tiny configuration on the tests' PostgreSQL server
    options = bench.Options(duration=1.5, clients=2, threads=1, scale=1, wallets=50, import_runs=1)

    # When the whole bench runs
    result = bench.run_bench(postgres_server.create_database, options, server="test server")

    # Then each ratio is made of positive measured numbers
    assert result.pgbench.tps > 0
    assert result.uniform.tps > 0
    assert result.hot.tps > 0
    assert result.uniform.statuses[201] == result.uniform.ok
    assert result.imports.handler_ms > 0
    assert result.imports.naive_ms > 0
    assert min(result.imports.handler_best_ms, result.imports.naive_best_ms) > 0
    assert result.transfer_ratio == result.uniform.tps / result.pgbench.tps
    assert result.hot_ratio == result.hot.tps / result.pgbench.tps
    assert result.import_ratio == result.imports.handler_best_ms / result.imports.naive_best_ms
    # the transfers really moved money and left the ledger consistent
    assert result.ledger.startswith("ok"), result.ledger
    # and the report carries the three verdict lines
    text = bench.report(result)
    for line in (
        "transfer_tps / pgbench_tps =",
        "hot_wallet_tps / pgbench_tps =",
        "handler_import / naive_import =",
    ):
        assert line in text
