"""The `--parameter-overrides` of `sam deploy --config-env ENV`: the environment's list from
samconfig.toml, the account's network and JWT issuer from the deploy environment's variables, plus
what identifies this build (AppVersion, GitSha, BuildTime, MigrationsHead, CiRunNumber, GitBranch).

Network ids and the issuer belong to an AWS account, not to the repository: CI gets them from the
GitHub Environment's variables (VPC_ID, SUBNET_IDS, SECURITY_GROUP_IDS, JWT_ISSUER; optionally
JWT_AUDIENCE, ALARM_TOPIC_ARN, PROVIDER_BRIDGE_ROLE_ARN), a person deploying by hand exports them. A missing or malformed one
stops here, with the list of what to set, before any build reaches CloudFormation (which would
only fail the change set on an id that does not exist).

A command-line `--parameter-overrides` replaces samconfig's list instead of merging with it
(aws-sam-cli#2380): without this, a stack update would keep stale values and samconfig edits would
silently never apply. The deploy and rollback workflows and the README's manual deploy all use it.

    VPC_ID=vpc-... SUBNET_IDS=subnet-...,subnet-... SECURITY_GROUP_IDS=sg-... JWT_ISSUER=https://... \
    python -m tools.deploy_parameters staging [--git-sha SHA] [--build-time T] \
        [--ci-run-number N] [--git-branch NAME]
    python -m tools.deploy_parameters staging --github-output "$GITHUB_OUTPUT" --prefix staging_

Standard library only: CI runs it with a bare Python before any install.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Template parameter -> environment variable (a GitHub Environment variable in CI), and the form
# CloudFormation accepts. A list is comma-separated; spaces around the commas are dropped.
_ID = "[0-9a-f]{8,17}"
FROM_ENVIRONMENT: dict[str, tuple[str, re.Pattern[str]]] = {
    "VpcId": ("VPC_ID", re.compile(rf"vpc-{_ID}")),
    "SubnetIds": ("SUBNET_IDS", re.compile(rf"subnet-{_ID}(,subnet-{_ID})*")),
    "SecurityGroupIds": ("SECURITY_GROUP_IDS", re.compile(rf"sg-{_ID}(,sg-{_ID})*")),
    "JwtIssuer": ("JWT_ISSUER", re.compile(r"https://[^\s\"]+")),
    "JwtAudience": ("JWT_AUDIENCE", re.compile(r"[^\s\"]+")),
    "AlarmTopicArn": ("ALARM_TOPIC_ARN", re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+")),
    # The only principal the provider events queue accepts messages from (sam deploy drops an
    # override the template does not declare, so this is harmless before the template has it).
    "ProviderBridgeRoleArn": (
        "PROVIDER_BRIDGE_ROLE_ARN",
        re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+"),
    ),
}
# Every stack needs these (VpcId only when it creates its database: the database security group).
REQUIRED = ("SubnetIds", "SecurityGroupIds", "JwtIssuer")


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


def from_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """The account-specific parameters set in the environment (empty means unset: an undefined
    `${{ vars.X }}` is an empty string)."""
    values = {}
    for parameter, (variable, _) in FROM_ENVIRONMENT.items():
        value = ",".join(part.strip() for part in environ.get(variable, "").split(",")).strip(",")
        if value:
            values[parameter] = value
    return values


def problems(overrides: dict[str, str]) -> list[str]:
    """What is missing or malformed among the account-specific parameters, one line each."""
    found = []
    required = [*REQUIRED, *(["VpcId"] if overrides.get("CreateDatabase") == "true" else [])]
    for parameter, (variable, pattern) in FROM_ENVIRONMENT.items():
        value = overrides.get(parameter, "")
        if not value:
            if parameter in required:
                found.append(f"{variable} ({parameter}): not set")
        elif not pattern.fullmatch(value):
            found.append(f"{variable} ({parameter}): {value!r} is not a valid value")
    return found


def _stop(environment: str, found: list[str]) -> SystemExit:
    lines = "\n".join(f"  - {line}" for line in found)
    return SystemExit(
        f"cannot deploy [{environment}]: the account's network and issuer are not configured\n{lines}\n"
        f"Set them as variables of the GitHub Environment '{environment}' (Settings -> Environments -> "
        f"{environment} -> Environment variables), or export them for a deploy by hand. "
        "See docs/runbooks/first-deploy.md."
    )


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


def git(*args: str) -> str:
    # git as found on PATH (a developer's or the CI runner's); fixed arguments, never a shell.
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # nosec B607
    return result.stdout.strip() or "unknown"


def build_overrides(
    environment: str, identity: dict[str, str], extra: dict[str, str], root: Path = ROOT
) -> dict[str, str]:
    """samconfig's list, the account's values from the environment, `--set` values, then the build's
    identity (GitSha, BuildTime, CiRunNumber: 0 by hand, GitBranch) and what the checkout says."""
    overrides = {**environment_overrides(environment, root), **from_environment(os.environ), **extra}
    found = problems(overrides)
    if found:
        raise _stop(environment, found)
    return {**overrides, "AppVersion": app_version(root), "MigrationsHead": migrations_head(root), **identity}


BUILD_IDENTITY = ("AppVersion", "GitSha", "BuildTime", "MigrationsHead", "CiRunNumber", "GitBranch")


def parse_set(items: list[str]) -> dict[str, str]:
    """`--set Key=Value` for one deploy (the rollback's DeploymentType=AllAtOnce)."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects Key=Value, got {item!r}")
        if key in BUILD_IDENTITY:
            raise SystemExit(f"--set cannot change {key}: it identifies the build (use its own option)")
        values[key] = value
    return values


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
    parser.add_argument("--ci-run-number", default=None, help="default: $GITHUB_RUN_NUMBER, else 0")
    parser.add_argument("--git-branch", default=None, help="default: $GITHUB_REF_NAME, else the checkout's")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter"
    )
    parser.add_argument("--github-output", type=Path, help="append stack_name= and parameter_overrides= here")
    parser.add_argument("--prefix", default="", help="prefix of the GitHub output names")
    args = parser.parse_args(argv)
    identity = {
        "GitSha": args.git_sha or git("rev-parse", "HEAD"),
        "BuildTime": args.build_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "CiRunNumber": args.ci_run_number or os.environ.get("GITHUB_RUN_NUMBER") or "0",
        "GitBranch": args.git_branch
        or os.environ.get("GITHUB_REF_NAME")
        or git("rev-parse", "--abbrev-ref", "HEAD"),
    }
    overrides = build_overrides(args.environment, identity, parse_set(args.set))
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
