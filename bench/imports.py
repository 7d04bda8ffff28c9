"""Cold import cost of the transfer handler against the naive stack, each in a fresh interpreter.

Both are timed the same way: time.perf_counter() around the import statement(s) inside a new
`python -I` process (interpreter start-up excluded), runs interleaved so drift hits both alike.
`-X importtime` adds its own overhead, so it is used only to attribute the time, never to measure it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from bench.workload import LAYER_DIR, TRANSFER_DIR

NAIVE_STACK = "boto3, sqlalchemy.orm, psycopg, pydantic, aws_lambda_powertools.event_handler"

# Lambda puts the function's directory first on sys.path and the layer under /opt/python.
HANDLER_SNIPPET = f"""
import importlib.util, sys, time
sys.path[:0] = [{str(TRANSFER_DIR)!r}, {str(LAYER_DIR)!r}]
began = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", {str(TRANSFER_DIR / "app.py")!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
print(time.perf_counter() - began)
"""

NAIVE_SNIPPET = f"""
import time
began = time.perf_counter()
import {NAIVE_STACK}
print(time.perf_counter() - began)
"""


def _run(snippet: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", *flags, "-c", snippet], capture_output=True, text=True, check=True, timeout=120
    )


def time_import(snippet: str) -> float:
    """Seconds spent importing, measured inside a fresh interpreter."""
    return float(_run(snippet).stdout.strip().splitlines()[-1])


@dataclass
class ImportTimes:
    handler_seconds: list[float] = field(default_factory=list)
    naive_seconds: list[float] = field(default_factory=list)

    @property
    def handler_ms(self) -> float:
        return statistics.median(self.handler_seconds) * 1000

    @property
    def naive_ms(self) -> float:
        return statistics.median(self.naive_seconds) * 1000

    @property
    def handler_best_ms(self) -> float:
        return min(self.handler_seconds) * 1000

    @property
    def naive_best_ms(self) -> float:
        return min(self.naive_seconds) * 1000

    @property
    def ratio(self) -> float:
        """Best against best: on a shared machine noise only ever adds time, and the minimum is the
        figure that repeats (medians of five swung 0.60-0.90 between runs here; minima held 0.79)."""
        return self.handler_best_ms / self.naive_best_ms


def measure_imports(runs: int = 5) -> ImportTimes:
    # One discarded run of each first: byte-code compilation is not import cost.
    time_import(HANDLER_SNIPPET)
    time_import(NAIVE_SNIPPET)
    times = ImportTimes()
    for _ in range(runs):
        times.handler_seconds.append(time_import(HANDLER_SNIPPET))
        times.naive_seconds.append(time_import(NAIVE_SNIPPET))
    return times


@dataclass(frozen=True)
class ImportLine:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Lines of `-X importtime`: 'import time: self [us] | cumulative | imported package'."""
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "imported package" in raw:
            continue
        self_part, cumulative_part, name_part = raw[len("import time:") :].split("|", 2)
        name = name_part.rstrip()
        depth = (len(name) - len(name.lstrip(" "))) // 2
        lines.append(ImportLine(name.strip(), int(self_part), int(cumulative_part), depth))
    return lines


def handler_importtime() -> list[ImportLine]:
    return parse_importtime(_run(HANDLER_SNIPPET, "-X", "importtime").stderr)


def top_cumulative(lines: list[ImportLine], count: int = 10) -> list[ImportLine]:
    return sorted(lines, key=lambda line: line.cumulative_us, reverse=True)[:count]


def self_by_package(lines: list[ImportLine]) -> list[tuple[str, int, int]]:
    """(top-level package, summed self time in us, modules) — where the import time really goes."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        entry = totals[line.module.split(".")[0]]
        entry[0] += line.self_us
        entry[1] += 1
    return sorted(((name, us, n) for name, (us, n) in totals.items()), key=lambda item: -item[1])
