"""Where a transfer's time goes: `python -m bench.profile [--transfers 2000]`.

One "container" (this process, pool_size 1, no concurrency) against a fresh embedded PostgreSQL:
- round trips per transfer, counted twice: on the client (libpq's protocol trace) and on
  the server (log_statement = all, so BEGIN, COMMIT and pings count too);
- latency of the handler call with nothing else running;
- cProfile of N transfers: top functions by cumulative time, and self time summed per package.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from multiprocessing import Pipe

from bench.workload import UNIFORM, Container, TransferEvents, pick_pair, prepare_database
from tools import pgserver


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "wallet_core/" in filename:
        return "wallet_core." + filename.split("wallet_core/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith("~") or "<" in filename:
        return "builtins"
    return "stdlib" if "/lib/python" in filename else os.path.basename(filename)


def _load(server: pgserver.EmbeddedPostgres) -> tuple[str, Callable[[], int]]:
    """A migrated, funded database and a function that sends one random transfer to the handler."""
    url = server.create_database(f"bench_profile_{uuid.uuid4().hex[:8]}")
    receiver, sender = Pipe(duplex=False)
    prepare_database(url, 1000, sender)
    status, wallet_ids = receiver.recv()
    if status != "ok":
        raise RuntimeError(wallet_ids)
    os.environ.update({"DATABASE_URL": url, "DB_POOL_SIZE": "1"})
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the handler's logs
        handler = Container("TransferCreateFunction").load()
    events, rng = TransferEvents(), random.Random(1)  # nosec B311  # load generator, not crypto

    def one() -> int:
        source, destination = pick_pair(rng, len(wallet_ids), UNIFORM)
        event = events.transfer(wallet_ids[source], wallet_ids[destination], rng.randint(1, 100))
        return handler(event)["statusCode"]

    for _ in range(50):  # warm: connection, prepared statements, caches
        one()
    return url, one


def client_round_trips(one: Callable[[], int], sample: int = 100) -> None:
    from bench.workload import count_round_trips

    round_trips = count_round_trips(one, sample)
    print(
        f"client side (libpq protocol trace), per transfer (mean of {sample}): {round_trips:.2f} round trips"
    )


def _set_log_statement(server: pgserver.EmbeddedPostgres, database: str, value: str | None) -> None:
    import psycopg

    setting = "RESET log_statement" if value is None else f"SET log_statement = '{value}'"
    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f'ALTER DATABASE "{database}" {setting}')


def server_round_trips(server: pgserver.EmbeddedPostgres, url: str, one: Callable[[], int]) -> None:
    """Every statement a fresh connection sends, as PostgreSQL logs it (BEGIN, COMMIT, pings too)."""
    from wallet_core.adapters.db import get_pool

    log_path = server.data_dir / "server.log"
    database = url.rsplit("/", 1)[1]
    _set_log_statement(server, database, "all")
    get_pool().dispose()
    one()  # reconnects with logging on
    start = log_path.stat().st_size
    logged = 10
    for _ in range(logged):
        one()
    time.sleep(0.3)
    with open(log_path, errors="replace") as log:
        log.seek(start)
        text = log.read()
    _set_log_statement(server, database, None)
    get_pool().dispose()
    one()
    # One log entry per line that starts with the default log_line_prefix's timestamp.
    entries = [re.sub(r"\s+", " ", entry) for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d )", text)]
    statements = [
        match.group(1).strip()
        for entry in entries
        if (match := re.search(r"LOG: +(?:statement|execute [^:]*): (.*?)(?: DETAIL: .*)?$", entry))
    ]
    print(f"server side (log_statement = all), per transfer: {len(statements) / logged:.1f} round trips")
    seen: Counter[str] = Counter(statement[:100] or "(empty query: the pre-ping)" for statement in statements)
    for statement, count in seen.most_common(12):
        print(f"  {count / logged:4.1f} x  {statement}")


def uncontended_latency(one: Callable[[], int], count: int = 1000) -> None:
    latencies = []
    began_cpu = time.process_time()
    for _ in range(count):
        began = time.perf_counter()
        one()
        latencies.append((time.perf_counter() - began) * 1000)
    cpu_ms = (time.process_time() - began_cpu) / count * 1000
    latencies.sort()
    print(
        f"uncontended handler call ({count}): mean {statistics.fmean(latencies):.2f} ms "
        f"(of which client CPU {cpu_ms:.2f} ms), p50 {latencies[count // 2]:.2f} ms, "
        f"p99 {latencies[int(count * 0.99)]:.2f} ms"
    )


def cpu_profile(one: Callable[[], int], transfers: int) -> None:
    profiler = cProfile.Profile()
    began_cpu, began = time.process_time(), time.perf_counter()
    profiler.enable()
    statuses = Counter(one() for _ in range(transfers))
    profiler.disable()
    cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
    print(
        f"\ncProfile of {transfers} transfers ({dict(statuses)}): {cpu / transfers * 1000:.2f} ms CPU and "
        f"{wall / transfers * 1000:.2f} ms wall per transfer (profiled; psycopg's wait includes the "
        "time blocked on the server)"
    )
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += tottime
    total = sum(by_package.values())
    print("self time by package (share of profiled time):")
    for name, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:15]:
        print(f"  {seconds / transfers * 1000:6.3f} ms  {seconds / total:5.1%}  {name}")
    print("\ntop functions by self time:")
    stats.sort_stats("tottime").print_stats(25)
    print("top functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(45)


def profile(transfers: int, server: pgserver.EmbeddedPostgres) -> None:
    url, one = _load(server)
    client_round_trips(one)
    server_round_trips(server, url, one)
    uncontended_latency(one)
    cpu_profile(one, transfers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=2000)
    args = parser.parse_args(argv)
    server = pgserver.temporary()
    try:
        profile(args.transfers, server)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
