"""`make bench` still measures: every piece runs for a moment and yields positive figures.

No timing thresholds: this guards the instrument (pgbench parsing, worker processes, the handler
path, import timing), not the service's speed.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter

import pytest

from bench import run as bench
from bench.workload import BATCH_SIZE, DepositBatches


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


def test_cost_ratio_is_the_median_of_rounds_each_against_the_tpcb_phases_around_it() -> None:
    # Given three rounds: tpcb-like phases at 0.2, 0.4, 0.2 and 0.2 ms per transaction between them,
    # transfers at 0.25 / 0.5 / 1.0 ms, and hot-wallet transfers always at 0.3 ms (100 committed each)
    def tpcb(ms):
        return bench.PgbenchResult(100.0, 1.0, 100, 0, bench.CpuWindow(0.5, ms / 10, 0.01))

    def transfers(ms, scenario):
        return bench.TransferResult(
            scenario, 1.0, 100, Counter({201: 100}), [1.0] * 100, {}, bench.CpuWindow(0.5, ms / 10, 0.1)
        )

    tpcb_runs = [tpcb(0.2), tpcb(0.4), tpcb(0.2), tpcb(0.2)]
    uniform = [transfers(ms, "uniform") for ms in (0.25, 0.5, 1.0)]
    hot = [transfers(0.3, "hot") for _ in range(3)]

    # and tpcb-like held to each round's transfer rates at 0.5 ms
    same_rate = [(tpcb(0.5), tpcb(0.5)) for _ in range(3)]

    # When they are put together
    rounds = bench.cost_rounds(tpcb_runs, uniform, hot, same_rate)

    # Then each round compares with the mean of the tpcb-like phases just before and after it
    assert [round(r.tpcb_ms, 6) for r in rounds] == [0.3, 0.3, 0.2]
    assert [round(r.uniform_ratio, 6) for r in rounds] == [1.2, 0.6, 0.2]
    # and the reported ratio is their median, which one disturbed round barely moves
    result = object.__new__(bench.BenchResult)
    result.rounds = rounds
    assert round(result.transfer_cost_ratio, 6) == 0.6
    assert round(result.hot_cost_ratio, 6) == 1.0
    # and the equal-load ratios compare each transfer phase with tpcb-like at its own rate
    assert [round(r.uniform_same_rate_ratio, 6) for r in rounds] == [2.0, 1.0, 0.5]
    assert round(result.transfer_same_rate_ratio, 6) == 1.0
    # while the pooled totals are what the runs' CPU adds up to
    assert bench.combine_pgbench(tpcb_runs).transactions == 400
    assert round(bench.combine_transfers(uniform).cpu.server_seconds, 6) == 0.175


def test_ingestion_batches_carry_one_tenth_redeliveries_of_earlier_events() -> None:
    # Given the ingestion phase's batch generator
    batches = DepositBatches(0, ["00000000-0000-4000-8000-000000000001"], random.Random(1))

    # When it makes two batches
    first, first_fresh = batches.batch()
    second, second_fresh = batches.batch()

    # Then each is 100 deposit.settled records, 90 new events and 10 repeats of events already sent
    def event_ids(event):
        return [json.loads(record["body"])["event_id"] for record in event["Records"]]

    assert len(first["Records"]) == len(second["Records"]) == BATCH_SIZE
    assert first_fresh == second_fresh == 90
    assert len(set(event_ids(first))) == 90
    assert {json.loads(record["body"])["type"] for record in second["Records"]} == {"deposit.settled"}
    repeats = [event_id for event_id in event_ids(second) if event_id in set(event_ids(first))]
    assert len(repeats) == 10
    assert len(set(event_ids(second))) == 100


@pytest.mark.slow
def test_bench_measures_every_figure_it_compares(postgres_server) -> None:
    # Given a tiny configuration on the tests' PostgreSQL server (its CPU is read, it is not pinned)
    options = bench.Options(
        duration=2,
        rounds=2,
        warmup=1,
        clients=2,
        threads=1,
        scale=1,
        wallets=50,
        import_runs=1,
        warm_transfers=20,
    )
    embedded = getattr(postgres_server, "_embedded", None)
    postmaster_pid = embedded.pid() if embedded is not None else None

    # When the whole bench runs
    result = bench.run_bench(
        postgres_server.create_database, options, postmaster_pid=postmaster_pid, server="test server"
    )

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
    # the database cost figures: server CPU per committed transaction, and tpcb's over ours: per
    # round, against the mean of the tpcb-like phases around it, and the median over the rounds
    assert len(result.rounds) == options.rounds
    if postmaster_pid is not None:
        for ms in (result.pgbench_server_ms, result.transfer_server_ms, result.hot_server_ms):
            assert ms is not None
            assert ms > 0
        for r in result.rounds:
            assert r.tpcb_ms == (r.tpcb_before_ms + r.tpcb_after_ms) / 2
            assert (r.uniform_ratio, r.hot_ratio) == (r.tpcb_ms / r.uniform_ms, r.tpcb_ms / r.hot_ms)
        assert result.transfer_cost_ratio == statistics.median(r.uniform_ratio for r in result.rounds)
        assert result.hot_cost_ratio == statistics.median(r.hot_ratio for r in result.rounds)
        assert result.transfer_pooled_ratio == result.pgbench_server_ms / result.transfer_server_ms
        # and at equal load: tpcb-like held to each transfer phase's rate
        assert result.transfer_same_rate_ratio == statistics.median(
            r.tpcb_at_uniform_rate_ms / r.uniform_ms for r in result.rounds
        )
        assert result.hot_same_rate_ratio == statistics.median(
            r.tpcb_at_hot_rate_ms / r.hot_ms for r in result.rounds
        )
        assert result.ingest_cost_ratio == result.pgbench_server_ms / result.ingest_server_ms
    # the warm container alone: every transfer answered 201, its client CPU and latencies measured,
    # and each transfer took exactly one round trip (key, locks, rules, posting and response together)
    assert result.warm.statuses == {201: options.warm_transfers}
    assert result.warm_client_ms > 0
    assert 0 < result.warm_latency(0.5) <= result.warm_latency(0.99)
    assert result.warm.round_trips == 1
    # the ingestion phase applied new events through the SQS handler, none left for redelivery
    assert result.ingest.batches > 0
    assert result.ingest.events > 0
    assert result.ingest.failed_records == 0
    assert result.ingest.eps > 0
    assert result.ingest_ratio == result.ingest.eps / result.pgbench.tps
    # the transfers really moved money and left the ledger consistent
    assert result.ledger.startswith("ok"), result.ledger
    # and the report prints every figure of issue 12 next to its target, and the old end-to-end one
    text = bench.report(result)
    for line in (
        "server CPU per pgbench tpcb-like txn",
        "tpcb / transfer, median of 2 rounds",
        "tpcb / hot-wallet transfer, median of 2",
        "round 2:",
        "at equal load",
        "tpcb / event",
        "warm client CPU per transfer",
        "latency p50 / p99",
        "round trips per transfer",
        "cold import, handler / naive stack",
        "transfer_tps / pgbench_tps =",
    ):
        assert line in text
