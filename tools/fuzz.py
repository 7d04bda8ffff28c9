"""Schemathesis against the real local runtime, over HTTP, driven by docs/openapi.json.

Starts `python -m tools.local_runtime run` on a free port with its own state directory (a fresh
embedded PostgreSQL), then runs Schemathesis twice, as an operator (scope wallet:admin) and as a
plain user, with every phase (examples, coverage, fuzzing and the stateful phase that follows the
document's links), positive and negative data, and the checks below. Stops the runtime, prints how
many requests each operation got, exits non-zero on any failure.

    python -m tools.fuzz                      # bounded: what CI runs (`make fuzz`)
    python -m tools.fuzz --examples 500 --max-time 3600    # nightly
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
CONFIG = ROOT / "tools" / "schemathesis.toml"  # per-phase settings the command line cannot give
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
START_DEADLINE = 180


class FuzzError(Exception):
    """The run could not start (the runtime did not come up, the document is missing)."""


class Runtime:
    """`make run` in a subprocess (its stderr in state/runtime.log), its banner read on a thread.
    Also what the tests start the local runtime with."""

    def __init__(self, state: Path, port: int, *options: str, env: dict[str, str] | None = None) -> None:
        state.mkdir(parents=True, exist_ok=True)
        if env is None:  # its own embedded database: the fuzzer writes thousands of rows
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.log = state / "runtime.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.local_runtime", *options, "run", "--port", str(port)],
            cwd=ROOT,
            env={**env, "LOCAL_RUNTIME_DIR": str(state), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),  # a file, never a pipe nobody reads: it explains a failure
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(
            target=lambda: self.lines.extend(line.rstrip("\n") for line in self.process.stdout or ()),
            daemon=True,
        ).start()
        self.url = f"http://127.0.0.1:{port}"

    def value(self, prefix: str) -> str | None:
        return next((line[len(prefix) :] for line in self.lines if line.startswith(prefix)), None)

    def wait_for_tokens(self) -> tuple[str, str]:
        """(user token, operator token) from the banner, once the runtime has migrated and serves."""
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline and self.process.poll() is None:
            user, admin = self.value("export USER_TOKEN="), self.value("export ADMIN_TOKEN=")
            if user and admin:
                if not any("migrations  ok" in line for line in self.lines):
                    raise FuzzError(
                        "the local runtime started without its migrations:\n" + "\n".join(self.lines)
                    )
                return user, admin
            time.sleep(0.1)
        raise FuzzError(f"the local runtime did not start (exit {self.process.poll()}): see {self.log}")

    def stop(self) -> int:
        """Ctrl-C, as a developer stops it; its exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def schemathesis_command(
    url: str, token: str, report_dir: Path, *, examples: int, max_time: int, seed: int | None
) -> list[str]:
    # One worker: CPython 3.11 before 3.11.9 raises "AST constructor recursion depth mismatch" when
    # two threads ast.parse() at once, which Hypothesis does to describe filters.
    return [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", str(DOCUMENT)),
        *("--url", url, "--header", f"Authorization: Bearer {token}", "--checks", ",".join(CHECKS)),
        *("--phases", "examples,coverage,fuzzing,stateful", "--mode", "all", "--workers", "1"),
        *("--request-timeout", "30", "--suppress-health-check", "all", "--output-sanitize", "true"),
        *("--max-examples", str(examples), "--max-time", str(max_time), "--report", "har,junit"),
        *("--report-dir", str(report_dir), "--report-har-path", str(report_dir / "report.har")),
        *("--report-junit-path", str(report_dir / "junit.xml")),
        *(["--seed", str(seed)] if seed is not None else []),
    ]


def requests_per_operation(har: Path) -> collections.Counter[str]:
    """Counts the requests of a HAR report by the operation their method and path match."""
    templates = [
        (method.upper(), path, re.compile(re.sub(r"\\\{\w+\\\}", "[^/]*", re.escape(path))))
        for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
        for method in item
    ]
    templates.sort(
        key=lambda t: t[1].count("{")
    )  # literal paths first: /v1/wallets/{id} is not /v1/wallets/x
    counts: collections.Counter[str] = collections.Counter()
    for entry in json.loads(har.read_text())["log"]["entries"] if har.is_file() else []:
        method = entry["request"]["method"]
        path = re.sub(r"^https?://[^/]+", "", entry["request"]["url"]).split("?")[0]
        name = next(
            (f"{m} {p}" for m, p, pattern in templates if m == method and pattern.fullmatch(path)), None
        )
        counts[name or f"{method} (no documented operation)"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES") or 20))
    parser.add_argument(
        "--max-time", type=int, default=int(os.environ.get("FUZZ_MAX_TIME") or 75), help="seconds per role"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--roles", default="admin,user")
    parser.add_argument("--report-dir", type=Path, default=ROOT / ".local" / "fuzz")
    args = parser.parse_args(argv)
    from tools import pgserver

    state = Path(tempfile.mkdtemp(prefix="wallet-fuzz-"))
    runtime = Runtime(state, pgserver.free_port())
    failed = False
    try:
        user, admin = runtime.wait_for_tokens()
        for role in args.roles.split(","):
            report_dir = args.report_dir / role
            report_dir.mkdir(parents=True, exist_ok=True)
            token = {"admin": admin, "user": user}[role]
            command = schemathesis_command(
                runtime.url, token, report_dir, examples=args.examples, max_time=args.max_time, seed=args.seed
            )
            shown = [
                shlex.quote(part) if token not in part else '"Authorization: Bearer $TOKEN"'
                for part in command
            ]
            print(f"\n== as {role}: {' '.join(shown)}", flush=True)
            hooks = {**os.environ, "SCHEMATHESIS_HOOKS": "tools.fuzz_hooks"}
            failed = subprocess.run(command, cwd=ROOT, env=hooks, check=False).returncode != 0 or failed
            counts = requests_per_operation(report_dir / "report.har")
            print(f"\n== requests per operation as {role} ({sum(counts.values())} in all):")
            for name, count in sorted(counts.items()):
                print(f"  {count:6d}  {name}")
    except FuzzError as exc:
        print(f"fuzz: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(f"\nfuzz: FAILED (see above; reports under {args.report_dir})" if failed else "\nfuzz: no failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
