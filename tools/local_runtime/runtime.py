"""Putting the parts together: database, environment, migrations, local SQS, pollers, HTTP API;
runtime.json, through which the other commands find the running instance; and sam-env.json, SAM's
`--env-vars` file for `sam local invoke` (README): every function's declared variables (SAM
overrides only those, hence `DATABASE_URL: ""` in the Globals) with the database as a container
reaches it (`make run DOCKER=1` makes the embedded PostgreSQL listen for containers)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.local_runtime import auth
from tools.local_runtime.context import FunctionHost
from tools.local_runtime.sqs import DUMMY_AWS_CREDENTIAL
from tools.local_runtime.template import REGION, Template

log = logging.getLogger("local_runtime")

MIGRATION_FUNCTION = "MigrationFunction"
# One process serves every function (and SQS batches) concurrently, where Lambda would give each
# its own container with a pool of one: the shared pool needs a few connections.
LOCAL_POOL_SIZE = "10"
ADMIN_SUB = "operator-1"
USER_SUB = "user-1"
CONTAINER_HOST = "host.docker.internal"
# Where a container's connection to the machine comes from: Docker's bridge networks on Linux
# (172.17.0.0/16 and the user-defined ones after it), Docker Desktop's virtual machine network.
CONTAINER_NETWORKS = ("172.16.0.0/12", "192.168.65.0/24")
# Variables that name things only AWS has (a secret, the proxy's endpoint): empty in a container,
# so its handler takes DATABASE_URL, as the local runtime's own handlers do.
AWS_ONLY = ("DATABASE_SECRET_ARN", "APP_DATABASE_SECRET_ARN", "DATABASE_HOST")


def libpq_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def public_url(url: str) -> str:
    return re.sub(r"^(\w[\w+]*://[^:/@]+):[^@/]*@", r"\1:***@", url)


def container_url(database_url: str) -> str:
    """The database URL as a container sees it: the machine's loopback becomes CONTAINER_HOST."""
    return re.sub(
        r"(@|//)(127\.0\.0\.1|localhost|\[::1\])([:/])", rf"\1{CONTAINER_HOST}\3", database_url, count=1
    )


def env_vars(template: Template, database_url: str) -> dict[str, dict[str, str]]:
    """SAM's --env-vars document: each function's declared variables, local values on top."""
    local = {"DATABASE_URL": container_url(database_url), "STAGE": "local", "DATABASE_IAM_AUTH": "false"}
    overrides = {**local, **dict.fromkeys(AWS_ONLY, "")}
    return {
        logical_id: {name: overrides.get(name, value) for name, value in sorted(function.environment.items())}
        for logical_id, function in sorted(template.functions().items())
    }


def write_private(path: Path, data: Any) -> Path:
    """JSON, owner-only: it names the local database (a DATABASE_URL of your own may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    return path


@dataclass
class Database:
    url: str
    origin: str  # "DATABASE_URL", "embedded, <dir>", "embedded, shared with `make run`"
    stop: Callable[[], None] = lambda: None


def start_database(state_dir: Path, *, docker: bool = False, shared: str | None = None) -> Database:
    """DATABASE_URL; or the embedded server of the running `make run` (two servers cannot share a
    data directory); or a new one (also listening for containers when `docker`)."""
    if os.environ.get("DATABASE_URL"):
        return Database(os.environ["DATABASE_URL"], "DATABASE_URL")
    if shared:
        return Database(shared, "embedded, shared with `make run`")
    from tools import pgserver

    server = pgserver.persistent(state_dir / "pgdata", CONTAINER_NETWORKS if docker else ())
    where = f", listening for containers ({', '.join(CONTAINER_NETWORKS)})" if docker else ""
    return Database(server.url, f"embedded, {state_dir / 'pgdata'}{where}", server.stop)


def local_environment(template: Template, database_url: str, sqs_url: str | None = None) -> list[str]:
    """Sets os.environ to the union of every function's variables (a variable set in the developer's
    shell wins) with the local overrides on top. Returns the names whose values differ between
    functions (one process, one environ)."""
    merged: dict[str, str] = {}
    conflicts = set()
    for function in template.functions().values():
        for name, value in function.environment.items():
            if merged.setdefault(name, value) != value:
                conflicts.add(name)
    os.environ.update({name: value for name, value in merged.items() if name not in os.environ})
    os.environ.update(
        STAGE="local",
        DATABASE_URL=database_url,
        DB_POOL_SIZE=os.environ.get("DB_POOL_SIZE", LOCAL_POOL_SIZE),
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID=DUMMY_AWS_CREDENTIAL,
        AWS_SECRET_ACCESS_KEY=DUMMY_AWS_CREDENTIAL,
        AWS_SESSION_TOKEN=DUMMY_AWS_CREDENTIAL,
        **({"AWS_ENDPOINT_URL_SQS": sqs_url} if sqs_url else {}),
    )
    return sorted(conflicts)


def migrate(host: FunctionHost) -> dict[str, Any]:
    """Schema changes go through the migration function's own handler, as in AWS."""
    try:
        return host.invoke(MIGRATION_FUNCTION, {"action": "upgrade"})
    except Exception as exc:
        log.exception("the migration function raised")
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def read_runtime(state_dir: Path) -> dict[str, Any] | None:
    """The runtime.json of a `run` that is still alive in this state directory, if any (a file
    left by a killed process does not count)."""
    try:
        running = json.loads((state_dir / "runtime.json").read_text())
        os.kill(running["pid"], 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return running


def write_runtime(state_dir: Path, data: dict[str, Any]) -> None:
    write_private(state_dir / "runtime.json", {"pid": os.getpid(), **data})


BANNER = """
Wallet service running locally: {url}
  database    {database}  ({origin})
  migrations  {migrated}
  http api    {routes} routes
{queues}
  sam local   --env-vars {sam_env} (README: sam local invoke){note}

  user token     (sub=user-1, valid 12 h):
export USER_TOKEN={user}
  operator token (sub=operator-1, scope="wallet:admin", valid 12 h):
export ADMIN_TOKEN={admin}

  try: curl -s {url}/v1/wallets -H "Authorization: Bearer $USER_TOKEN"
  docs: {url}/docs (Authorize: paste a token above), {url}/openapi.json
  Ctrl-C stops everything.
"""


def run(state_dir: Path, template: Template, port: int, *, docker: bool = False) -> int:
    from tools.local_runtime import sqs
    from tools.local_runtime.server import Gateway, LocalHttpServer

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as cleanups:  # stops what started, in reverse, whatever fails
            database = start_database(state_dir, docker=docker)
            cleanups.callback(database.stop)
            # For `sam local invoke --env-vars` (README), rewritten on every start: the port changes.
            sam_env = write_private(state_dir / "sam-env.json", env_vars(template, database.url))
            local_sqs = sqs.LocalSqs()
            cleanups.callback(local_sqs.stop)
            queue_urls = sqs.create_queues(sqs.sqs_client(local_sqs.url), template.queues())
            template.resolver.refs.update(queue_urls)  # !Ref Queue is its URL
            conflicts = local_environment(template, database.url, local_sqs.url)
            host = FunctionHost(template)
            migration = migrate(host)
            http = LocalHttpServer(Gateway(host), port).start()
            cleanups.callback(http.stop)
            pollers = [
                poller.start() for poller in sqs.pollers_for(host, template, queue_urls, local_sqs.url)
            ]
            for poller in pollers:
                cleanups.callback(poller.stop)
            dead_letters = {name: queue.dead_letter_id for name, queue in template.queues().items()}
            queues = {name: {"url": url, "dlq": dead_letters[name]} for name, url in queue_urls.items()}
            sources = sorted(poller.queue.logical_id for poller in pollers)
            running = {
                "api_url": http.url,
                "sqs_endpoint_url": local_sqs.url,
                "queues": queues,
                "event_source_queues": sources,
            }
            write_runtime(state_dir, {**running, "database_url": public_url(database.url)})
            cleanups.callback((state_dir / "runtime.json").unlink)
            lines = [
                f"  queue       {name}: {q['url']}" + (f"  (DLQ {q['dlq']})" if q["dlq"] else "")
                for name, q in queues.items()
            ]
            lines += [
                f"  sqs poller  {p.queue.logical_id} -> {p.source.function_id} (batch {p.source.batch_size})"
                for p in pollers
            ]
            ok = migration.get("status") == "ok"
            banner = BANNER.format(
                url=http.url,
                database=public_url(database.url),
                origin=database.origin,
                migrated=f"ok, revision {migration.get('revision')}" if ok else f"FAILED: {migration}",
                routes=len(http.gateway.router.routes),
                queues="\n".join(lines),
                sam_env=sam_env,
                note=f"\n  note        one process, one environment: {', '.join(conflicts)} differ"
                if conflicts
                else "",
                user=auth.issue_token(USER_SUB),
                admin=auth.issue_token(ADMIN_SUB, scope=auth.ADMIN_SCOPE),
            )
            print(banner, flush=True)
            stop.wait()
        return 0
    except Exception:
        log.exception("the local runtime failed to start or to stop")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopped.", flush=True)


def prepare_for_one_shot(state_dir: Path, template: Template) -> tuple[Database, FunctionHost]:
    """For invoke/migrate: the database (and the running `run`'s SQS endpoint, if there is one)."""
    running = read_runtime(state_dir) or {}
    database = start_database(state_dir, shared=running.get("database_url"))
    for logical_id, queue in (running.get("queues") or {}).items():
        template.resolver.refs[logical_id] = queue["url"]
    local_environment(template, database.url, running.get("sqs_endpoint_url"))
    return database, FunctionHost(template)
