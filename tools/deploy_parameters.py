"""The `--parameter-overrides` of `sam deploy --config-env ENV`: the environment's list from
samconfig.toml plus what identifies this build (AppVersion, GitSha, BuildTime, MigrationsHead).

A command-line `--parameter-overrides` replaces samconfig's list instead of merging with it
(aws-sam-cli#2380): without this, a stack update would keep stale values and samconfig edits would
silently never apply. The deploy and rollback workflows and the README's manual deploy all use it.

    python -m tools.deploy_parameters staging [--git-sha SHA] [--build-time T]
    python -m tools.deploy_parameters staging --github-output "$GITHUB_OUTPUT" --prefix staging_

Standard library only: CI runs it with a bare Python before any install.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(environment: str, root: Path) -> dict:
    config = tomllib.loads((root / "samconfig.toml").read_text())
    if environment not in config:
        raise SystemExit(f"samconfig.toml has no [{environment}] environment")
    return config[environment]


def _lookup(section: dict, key: str):
    """SAM's own precedence: the deploy command's table, then the global one."""
    for command in ("deploy", "global"):
        value = section.get(command, {}).get("parameters", {}).get(key)
        if value is not None:
            return value
    return None


def stack_name(environment: str, root: Path = ROOT) -> str:
    name = _lookup(_section(environment, root), "stack_name")
    if not name:
        raise SystemExit(f"samconfig.toml has no stack_name for [{environment}]")
    return name


def environment_overrides(environment: str, root: Path = ROOT) -> dict[str, str]:
    raw = _lookup(_section(environment, root), "parameter_overrides") or ""
    pairs = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(pair.split("=", 1) for pair in pairs)


def migrations_head(root: Path = ROOT) -> str:
    """The head this build ships, read from the revision files (no database, no Alembic import)."""
    revisions = [
        line.split("=", 1)[1].strip().strip("\"'")
        for path in (root / "migrations" / "versions").glob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith("revision =")
    ]
    return max(revisions)  # zero-padded sequence numbers (a test keeps them so)


def app_version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def git_sha(root: Path = ROOT) -> str:
    # git as found on PATH (a developer's or the CI runner's); fixed arguments, never a shell.
    result = subprocess.run(  # nosec B607
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def build_overrides(environment: str, sha: str, build_time: str, root: Path = ROOT) -> dict[str, str]:
    return {
        **environment_overrides(environment, root),
        "AppVersion": app_version(root),
        "GitSha": sha,
        "BuildTime": build_time,
        "MigrationsHead": migrations_head(root),
    }


def render(overrides: dict[str, str]) -> str:
    bad = [key for key, value in overrides.items() if '"' in value]
    if bad:
        raise SystemExit(f"parameter values must not contain a double quote: {', '.join(bad)}")
    return " ".join(f'{key}="{value}"' for key, value in overrides.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy_parameters", description=__doc__)
    parser.add_argument("environment", help="samconfig environment: default, staging, production")
    parser.add_argument("--git-sha", default=None, help="default: git rev-parse HEAD")
    parser.add_argument("--build-time", default=None, help="default: now, RFC 3339 UTC")
    parser.add_argument("--github-output", type=Path, help="append stack_name= and parameter_overrides= here")
    parser.add_argument("--prefix", default="", help="prefix of the GitHub output names")
    args = parser.parse_args(argv)
    overrides = build_overrides(
        args.environment,
        args.git_sha or git_sha(),
        args.build_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    line = render(overrides)
    if args.github_output:
        stack = stack_name(args.environment)
        with args.github_output.open("a") as out:
            out.write(f"{args.prefix}stack_name={stack}\n{args.prefix}parameter_overrides={line}\n")
        print(f"{args.environment}: stack {stack}, {line}")
    else:
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
