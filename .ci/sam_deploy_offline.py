"""Runs the EXACT `sam deploy` step of each workflow offline and fails unless SAM gets as far as
calling AWS (called by .ci/sam-deploy-checks, which provides aws-sam-cli in .venv-sam).

For every step of .github/workflows/*.yml whose `run` contains `sam deploy`, and every stage its
job can deploy to (a literal `environment`, or each stage of an `inputs.stage` choice):

1. a throwaway workspace is made from the checkout (tracked and untracked-but-not-ignored files,
   plus `.aws-sam/build` from `sam build` if there is one, otherwise the source template in its
   place: SAM calls AWS before it reads the template);
2. the `run` steps of the same job that have an `id` and call `tools.deploy_parameters` run first,
   as in the workflow (their `$GITHUB_OUTPUT` feeds `steps.<id>.outputs.*`);
3. the step's script runs under `bash --noprofile --norc -eo pipefail` (GitHub's shell) with the
   step's `env`, `${{ }}` expressions replaced by fake but well-formed values, fake credentials,
   every AWS endpoint pointed at a closed 127.0.0.1 port (and no network namespace at all when
   `unshare -n` is allowed).

A step passes only if SAM read the stage's samconfig.toml section (its debug log expands to that
stack name and `--resolve_s3`) and then failed trying to reach AWS (EndpointConnectionError). A
"Missing option", a config file error or any other early exit is a failure: on AWS that deploy would
not have started either.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
STAGES = ("staging", "production")
SAM_DEPLOY = re.compile(r"\bsam\s+deploy\b")
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
CALLED_AWS = "Could not connect to the endpoint URL"
EARLY_EXITS = (
    "Missing option",
    "does not exist or could not be read",
    "Error: Invalid value",
    "No such option",
)
STEP_TIMEOUT_SECONDS = 300
FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"

# What GitHub would substitute. Fake but well-formed: the deploy parameters are validated on the way.
FAKE_CONTEXT: dict[str, str] = {
    "github.sha": FAKE_SHA,
    "github.run_id": "1234567890",
    "github.run_number": "42",
    "github.run_attempt": "1",
    "github.ref_name": "main",
    "github.workspace": "",  # filled per run
    "inputs.git_sha": FAKE_SHA,
    "vars.AWS_REGION": "us-east-1",
    "vars.VPC_ID": "vpc-0a1b2c3d4e5f60718",
    "vars.SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-0a1b2c3d4e5f60719",
    "vars.SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60718",
    "vars.JWT_ISSUER": "https://issuer.invalid/",
    "vars.JWT_AUDIENCE": "wallet-api",
    "vars.ALARM_TOPIC_ARN": "",
    "vars.PROVIDER_BRIDGE_ROLE_ARN": "arn:aws:iam::123456789012:role/offline-check-bridge",
    "needs.build.outputs.build_time": "2026-01-01T00:00:00Z",
}


@dataclass
class Step:
    workflow: str
    job: str
    name: str
    run: str
    env: dict[str, str]
    setup: list[dict[str, Any]]  # the job's earlier parameter steps
    stages: tuple[str, ...]


def deploy_steps(workflows: Path = WORKFLOWS) -> list[Step]:
    steps: list[Step] = []
    for path in sorted(workflows.glob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        for job_id, job in (document.get("jobs") or {}).items():
            setup: list[dict[str, Any]] = []
            for step in job.get("steps") or []:
                run = step.get("run") or ""
                if step.get("id") and "tools.deploy_parameters" in run:
                    setup.append(step)
                if SAM_DEPLOY.search(_commands(run)):
                    steps.append(
                        Step(
                            workflow=path.name,
                            job=job_id,
                            name=step.get("name", "sam deploy"),
                            run=run,
                            env={k: str(v) for k, v in (step.get("env") or {}).items()},
                            setup=list(setup),
                            stages=job_stages(job),
                        )
                    )
    return steps


def _commands(script: str) -> str:
    """The script without its comment lines (a comment may mention `sam deploy`)."""
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


def job_stages(job: dict[str, Any]) -> tuple[str, ...]:
    environment = job.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    if name in STAGES:
        return (name,)
    if isinstance(name, str) and "inputs.stage" in name:
        return STAGES
    raise SystemExit(f"cannot tell which stage job environment {name!r} deploys to")


def substitute(text: str, context: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression not in context:
            raise SystemExit(
                f"unknown expression ${{{{ {expression} }}}}: give it a fake value in {Path(__file__).name}"
            )
        return context[expression]

    return EXPRESSION.sub(value, text)


def make_workspace(directory: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file():
            target = directory / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    build = directory / ".aws-sam" / "build"
    build.parent.mkdir(parents=True, exist_ok=True)
    if (ROOT / ".aws-sam" / "build" / "template.yaml").is_file():
        build.symlink_to(ROOT / ".aws-sam" / "build")
    else:
        build.mkdir()
        shutil.copy2(ROOT / "template.yaml", build / "template.yaml")


def closed_port() -> socket.socket:
    """A bound, never listening socket: connecting to its port is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def isolation_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if not unshare:
        return []
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)  # noqa: S603
    if probe.returncode == 0:
        return [unshare, "-n"]
    return []


def base_environment(workspace: Path, home: Path, bin_dir: Path, port: int) -> dict[str, str]:
    endpoint = f"http://127.0.0.1:{port}"
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_SHA": FAKE_SHA,
        "GITHUB_RUN_ID": FAKE_CONTEXT["github.run_id"],
        "GITHUB_RUN_NUMBER": FAKE_CONTEXT["github.run_number"],
        "GITHUB_REF_NAME": FAKE_CONTEXT["github.ref_name"],
        "RUNNER_TEMP": str(home),
        "AWS_ACCESS_KEY_ID": "AKIAOFFLINECHECK0000",
        "AWS_SECRET_ACCESS_KEY": "offline-check-not-a-secret",
        "AWS_SESSION_TOKEN": "offline-check",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "SAM_CLI_TELEMETRY": "0",
        "SAM_DEBUG": "1",
        "SAM_CLI_POLL_DELAY": "1",
    }


def run_script(script: str, env: dict[str, str], cwd: Path, prefix: list[str]) -> subprocess.CompletedProcess:
    # The workflow's own script, run as GitHub runs it: executing it is the point of this check.
    return subprocess.run(  # noqa: S603
        [*prefix, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )


def read_outputs(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def expected_stack_name(workspace: Path, stage: str) -> str:
    config = tomllib.loads((workspace / "samconfig.toml").read_text())[stage]
    for section in ("deploy", "global"):
        name = config.get(section, {}).get("parameters", {}).get("stack_name")
        if name:
            return name
    raise SystemExit(f"samconfig.toml has no stack_name for [{stage}]")


def check(step: Step, stage: str, sam: Path, prefix: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="sam-deploy-offline-") as tmp:
        root = Path(tmp)
        workspace, home, bin_dir = root / "workspace", root / "home", root / "bin"
        for directory in (workspace, home, bin_dir):
            directory.mkdir()
        make_workspace(workspace)
        (bin_dir / "sam").symlink_to(sam)
        (bin_dir / "python").symlink_to(sys.executable)
        (bin_dir / "python3").symlink_to(sys.executable)
        port_holder = closed_port()
        try:
            env = base_environment(workspace, home, bin_dir, port_holder.getsockname()[1])
            context = {**FAKE_CONTEXT, "github.workspace": str(workspace), "inputs.stage": stage}
            for setup in step.setup:
                output = root / f"output-{setup['id']}"
                setup_env = {
                    **env,
                    **{k: substitute(str(v), context) for k, v in (setup.get("env") or {}).items()},
                    "GITHUB_OUTPUT": str(output),
                }
                result = run_script(substitute(setup["run"], context), setup_env, workspace, prefix)
                if result.returncode != 0:
                    return False, f"parameter step {setup['id']!r} failed:\n{result.stdout}{result.stderr}"
                for name, value in read_outputs(output).items():
                    context[f"steps.{setup['id']}.outputs.{name}"] = value
            wanted = EXPRESSION.findall(step.run + " ".join(step.env.values()))
            if any(e.startswith("needs.build.outputs.") and e not in context for e in wanted):
                context.update(build_outputs_fallback(workspace, stage, env, prefix))
            step_env = {**env, **{k: substitute(v, context) for k, v in step.env.items()}}
            result = run_script(substitute(step.run, context), step_env, workspace, prefix)
        finally:
            port_holder.close()
    output = result.stdout + result.stderr
    stack = expected_stack_name(ROOT, stage)
    problems = []
    if any(marker in output for marker in EARLY_EXITS):
        problems.append("SAM stopped before calling AWS (option or config resolution)")
    if f"--stack_name={stack} " not in output:
        problems.append(f"SAM did not resolve stack name {stack} from samconfig.toml [{stage}]")
    if "--resolve_s3 " not in output:
        problems.append(f"SAM did not pick up resolve_s3 from samconfig.toml [{stage}]")
    if CALLED_AWS not in output:
        problems.append("SAM never tried to reach AWS")
    if result.returncode == 0:
        problems.append("sam deploy succeeded offline?!")
    if problems:
        # The last lines say why; SAM's debug lines echoing every parameter are left out.
        lines = [line for line in output.splitlines() if line.strip() and len(line) < 300]
        tail = "\n".join(f"     {line}" for line in lines[-8:])
        return False, "; ".join(problems) + "\n" + tail
    return True, f"reached AWS as stack {stack} (connection refused on the fake endpoint)"


def build_outputs_fallback(workspace: Path, stage: str, env: dict[str, str], prefix: list[str]) -> dict:
    """The build job's per-stage outputs, for a deploy job that still reads them from `needs`."""
    output = workspace.parent / "build-outputs"
    script = (
        f"python -m tools.deploy_parameters {stage} --git-sha {FAKE_SHA} "
        f'--github-output "$GITHUB_OUTPUT" --prefix {stage}_'
    )
    fake_vars = {
        "VPC_ID": FAKE_CONTEXT["vars.VPC_ID"],
        "SUBNET_IDS": FAKE_CONTEXT["vars.SUBNET_IDS"],
        "SECURITY_GROUP_IDS": FAKE_CONTEXT["vars.SECURITY_GROUP_IDS"],
        "JWT_ISSUER": FAKE_CONTEXT["vars.JWT_ISSUER"],
    }
    run_script(script, {**env, **fake_vars, "GITHUB_OUTPUT": str(output)}, workspace, prefix)
    return {f"needs.build.outputs.{k}": v for k, v in read_outputs(output).items()}


def main() -> int:
    sam = Path(os.environ.get("SAM", ROOT / ".venv-sam" / "bin" / "sam")).resolve()
    if not sam.is_file():
        print(f"FAIL sam not found at {sam} (run .ci/sam-deploy-checks)", file=sys.stderr)
        return 1
    steps = deploy_steps()
    if not steps:
        print("FAIL no `sam deploy` step found in .github/workflows", file=sys.stderr)
        return 1
    prefix = isolation_prefix()
    where = "no network namespace (unshare -n)" if prefix else "endpoint on a closed 127.0.0.1 port"
    failures = 0
    for step in steps:
        for stage in step.stages:
            ok, detail = check(step, stage, sam, prefix)
            label = f"{step.workflow} {step.job} / {step.name} [{stage}]"
            if ok:
                print(f"OK   {label}: {detail}, {where}")
            else:
                failures += 1
                print(f"FAIL {label}: {detail}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
