"""`sam local invoke` for those with Docker: the env-vars file the local runtime writes.

SAM CLI runs a function in a container with the variables the template declares, resolved against
parameter defaults: no database it can reach. `--env-vars FILE` overrides them per function
(`{"LogicalId": {"VAR": "value"}}`), but only variables the template declares (hence
`DATABASE_URL: ""` in its Globals). The file names the local runtime's database by a host name a
container resolves to the machine running it (`--add-host host.docker.internal:host-gateway` on
Linux, see README); `make run DOCKER=1` makes the embedded PostgreSQL listen where a container can
reach it (by default it listens on 127.0.0.1 only).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

CONTAINER_HOST = "host.docker.internal"
# Where a container's connection to the machine comes from: Docker's bridge networks on Linux
# (172.17.0.0/16 and the user-defined ones after it), Docker Desktop's virtual machine network.
CONTAINER_NETWORKS = ("172.16.0.0/12", "192.168.65.0/24")
# Variables that name things only AWS has (a secret, the proxy's endpoint): empty, so a handler in a
# container takes DATABASE_URL, as the local runtime's own handlers do.
AWS_ONLY = ("DATABASE_SECRET_ARN", "APP_DATABASE_SECRET_ARN", "DATABASE_HOST")


def container_url(database_url: str) -> str:
    """The database URL as a container sees it: the machine's loopback becomes CONTAINER_HOST."""
    return re.sub(
        r"(@|//)(127\.0\.0\.1|localhost|\[::1\])([:/])", rf"\1{CONTAINER_HOST}\3", database_url, count=1
    )


def env_vars(template: Any, database_url: str) -> dict[str, dict[str, str]]:
    """SAM's --env-vars document: for every function of the template, each variable it declares,
    with the local value (the database a container can reach, stage `local`) or the template's."""
    overrides = {
        "DATABASE_URL": container_url(database_url),
        "STAGE": "local",
        "DATABASE_IAM_AUTH": "false",
        **dict.fromkeys(AWS_ONLY, ""),
    }
    return {
        logical_id: {name: overrides.get(name, value) for name, value in sorted(function.environment.items())}
        for logical_id, function in sorted(template.functions().items())
    }


def write_env_file(state_dir: Path, template: Any, database_url: str) -> Path:
    path = state_dir / "sam-env.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: a DATABASE_URL of your own may carry a password.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(json.dumps(env_vars(template, database_url), indent=2) + "\n")
    return path
