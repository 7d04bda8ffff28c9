"""Putting the parts together: database, environment, migrations, local SQS, pollers, HTTP API."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


def libpq_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def public_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def database_ok(url: str) -> str:
    try:
        import psycopg

        with psycopg.connect(libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


@dataclass
class Database:
    url: str
    origin: str  # "DATABASE_URL", "embedded", "embedded (already running)"
    stop: Callable[[], None] = field(default=lambda: None)


def _running_embedded(data_dir: Path) -> str | None:
    """A server another local-runtime process started on the same data directory (postmaster.pid
    line 4 is its port): two servers cannot share one data directory, so we join it instead."""
    pid_file = data_dir / "postmaster.pid"
    try:
        port = int(pid_file.read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    return url if database_ok(url) == "ok" else None


def start_database(state_dir: Path, *, docker: bool = False) -> Database:
    """DATABASE_URL, or the embedded server (listening for containers too when `docker`)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return Database(external, "DATABASE_URL")
    from tools import pgserver
    from tools.local_runtime.sam import CONTAINER_NETWORKS

    data_dir = state_dir / "pgdata"
    running = _running_embedded(data_dir)
    if running:
        return Database(running, f"embedded, shared with a running server ({data_dir})")
    server = pgserver.persistent(data_dir, CONTAINER_NETWORKS if docker else ())
    where = f", listening for containers ({', '.join(CONTAINER_NETWORKS)})" if docker else ""
    return Database(server.url, f"embedded, {data_dir}{where}", server.stop)


def local_environment(
    template: Template, database_url: str, sqs_url: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """The union of every function's variables, with the local overrides on top. Returns the
    environment and the names whose values differ between functions (one process, one environ)."""
    merged: dict[str, str] = {}
    conflicts = set()
    for function in template.functions().values():
        for name, value in function.environment.items():
            if name in merged and merged[name] != value:
                conflicts.add(name)
            if name not in os.environ:  # a variable set in the developer's shell wins over the template
                merged.setdefault(name, value)
    merged.update(
        {
            "STAGE": "local",
            "DATABASE_URL": database_url,
            "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE", LOCAL_POOL_SIZE),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": DUMMY_AWS_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": DUMMY_AWS_CREDENTIAL,
            "AWS_SESSION_TOKEN": DUMMY_AWS_CREDENTIAL,
        }
    )
    if sqs_url:
        merged["AWS_ENDPOINT_URL_SQS"] = sqs_url
    return merged, sorted(conflicts)


def apply_environment(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    # The shared layer caches settings and the connection pool on first use; a fresh start reads ours.
    db = sys.modules.get("wallet_core.adapters.db")
    config = sys.modules.get("wallet_core.config")
    if db is not None and hasattr(db, "get_pool"):
        with contextlib.suppress(Exception):
            if db.get_pool.cache_info().currsize:
                db.get_pool().dispose()
            db.get_pool.cache_clear()
    if config is not None and hasattr(config, "get_settings"):
        config.get_settings.cache_clear()


def migrate(host: FunctionHost) -> dict[str, Any]:
    """Schema changes go through the migration function's own handler, as in AWS."""
    if MIGRATION_FUNCTION not in host.functions:
        return {"status": "skipped", "error": f"no {MIGRATION_FUNCTION} in the template"}
    try:
        result = host.invoke(MIGRATION_FUNCTION, {"action": "upgrade"})
    except Exception as exc:
        log.exception("the migration function raised")
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return (
        result if isinstance(result, dict) else {"status": "error", "error": f"unexpected result {result!r}"}
    )


def dispose_engine() -> None:
    db = sys.modules.get("wallet_core.adapters.db")
    if db is not None and hasattr(db, "get_pool"):
        with contextlib.suppress(Exception):
            if db.get_pool.cache_info().currsize:
                db.get_pool().dispose()


def runtime_file(state_dir: Path) -> Path:
    return state_dir / "runtime.json"


def read_runtime(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(runtime_file(state_dir).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def running_instance(state_dir: Path) -> dict[str, Any] | None:
    """The runtime.json of a `run` that is still alive in this state directory, if any (a file
    left by a killed process does not count)."""
    running = read_runtime(state_dir)
    if not running:
        return None
    return running if "pid" not in running or _alive(running["pid"]) else None


def port_in_use(port: int) -> bool:
    """Whether 127.0.0.1:port is taken (port 0 picks a free one: never in use)."""
    if port == 0:
        return False
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def remove_runtime_if_ours(state_dir: Path) -> None:
    """Only the process that wrote runtime.json removes it: another `run` must never delete the
    file the running one is known by."""
    running = read_runtime(state_dir)
    if running is not None and running.get("pid") == os.getpid():
        runtime_file(state_dir).unlink(missing_ok=True)


def write_runtime(state_dir: Path, data: dict[str, Any]) -> None:
    path = runtime_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: it names the local database.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Handlers log to stdout (Powertools); `invoke` keeps stdout for the response alone."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def banner(
    *,
    api_url: str,
    database: Database,
    db_health: str,
    migration: dict[str, Any],
    queue_urls: dict[str, str],
    dead_letters: dict[str, str],
    routes: int,
    functions: int,
    pollers: list[str],
    conflicts: list[str],
    sam_env: Path | None = None,
) -> str:
    user_token = auth.issue_token(USER_SUB)
    admin_token = auth.issue_token(ADMIN_SUB, scope=auth.ADMIN_SCOPE)
    if migration.get("status") == "ok":
        migrated = f"ok, revision {migration.get('revision')}"
    else:
        migrated = f"FAILED: {migration.get('error') or migration}"
    lines = [
        "",
        f"Wallet service running locally: {api_url}",
        f"  database    {db_health}  {public_url(database.url)}  ({database.origin})",
        f"  migrations  {migrated}",
        f"  http api    {routes} routes to {functions} functions",
    ]
    for logical_id, url in queue_urls.items():
        dlq = f"  (DLQ {dead_letters[logical_id]})" if logical_id in dead_letters else ""
        lines.append(f"  queue       {logical_id}: {url}{dlq}")
    for poller in pollers:
        lines.append(f"  sqs poller  {poller}")
    if sam_env is not None:
        lines.append(f"  sam local   --env-vars {sam_env} (README: sam local invoke)")
    if conflicts:
        lines.append(
            f"  note        one process, one environment: {', '.join(conflicts)} differ between functions"
        )
    lines += [
        "",
        f"  user token     (sub={USER_SUB}, valid 12 h):",
        f"export USER_TOKEN={user_token}",
        f'  operator token (sub={ADMIN_SUB}, scope="{auth.ADMIN_SCOPE}", valid 12 h):',
        f"export ADMIN_TOKEN={admin_token}",
        "",
        f'  try: curl -s {api_url}/v1/wallets -H "Authorization: Bearer $USER_TOKEN"',
        f"  docs: {api_url}/docs (Authorize: paste a token above), {api_url}/openapi.json",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run(
    state_dir: Path,
    template_path: Path,
    port: int,
    parameters: dict[str, str] | None = None,
    *,
    docker: bool = False,
) -> int:
    from tools.local_runtime import sam, sqs
    from tools.local_runtime.server import Gateway, LocalHttpServer

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cleanups: list[tuple[str, Callable[[], None]]] = []
    exit_code = 0
    try:
        template = Template(template_path, parameters)
        database = start_database(state_dir, docker=docker)
        cleanups.append(("database", database.stop))
        cleanups.append(("database connections", dispose_engine))
        # For `sam local invoke --env-vars` (README "sam local invoke"), rewritten on every start:
        # the embedded server's port changes.
        sam_env = sam.write_env_file(state_dir, template, database.url)

        local_sqs = sqs.LocalSqs().start()
        cleanups.append(("local SQS", local_sqs.stop))
        queues = template.queues()
        queue_urls = sqs.create_queues(sqs.sqs_client(local_sqs.url), queues)
        template.resolver.refs.update(queue_urls)  # !Ref Queue is its URL

        environment, conflicts = local_environment(template, database.url, local_sqs.url)
        apply_environment(environment)
        host = FunctionHost(template)
        migration = migrate(host)

        http = LocalHttpServer(Gateway(host), port).start()
        cleanups.append(("http server", http.stop))
        pollers = sqs.pollers_for(host, template, queue_urls, local_sqs.url)
        for poller in pollers:
            poller.start()
            cleanups.append((f"poller {poller.source.event_id}", poller.stop))

        write_runtime(
            state_dir,
            {
                "pid": os.getpid(),
                "api_url": http.url,
                "sqs_endpoint_url": local_sqs.url,
                "queues": {
                    logical_id: {"url": url, "arn": queues[logical_id].arn}
                    for logical_id, url in queue_urls.items()
                },
                "event_source_queues": sorted({p.queue.logical_id for p in pollers}),
                "dead_letter_queues": {
                    q.logical_id: q.dead_letter_id for q in queues.values() if q.dead_letter_id
                },
                "database_url": public_url(database.url),
            },
        )
        cleanups.append(("runtime.json", lambda: remove_runtime_if_ours(state_dir)))
        print(
            banner(
                api_url=http.url,
                database=database,
                db_health=database_ok(database.url),
                migration=migration,
                queue_urls=queue_urls,
                dead_letters={q.logical_id: q.dead_letter_id for q in queues.values() if q.dead_letter_id},
                routes=len(http.gateway.router.routes),
                functions=len({r.route.function_id for r in http.gateway.router.routes}),
                pollers=[
                    f"{p.queue.logical_id} -> {p.source.function_id} (batch {p.source.batch_size})"
                    for p in pollers
                ],
                conflicts=conflicts,
                sam_env=sam_env,
            ),
            flush=True,
        )
        stop.wait()
    except Exception:
        log.exception("the local runtime could not start")
        exit_code = 1
    finally:
        for name, cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception:
                log.exception("stopping %s failed", name)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopped.", flush=True)
    return exit_code


def prepare_for_one_shot(state_dir: Path, template: Template) -> tuple[Database, FunctionHost]:
    """For invoke/migrate: the database (and the running `run`'s SQS endpoint, if there is one)."""
    database = start_database(state_dir)
    running = read_runtime(state_dir) or {}
    for logical_id, queue in (running.get("queues") or {}).items():
        template.resolver.refs[logical_id] = queue["url"]
    environment, _ = local_environment(template, database.url, running.get("sqs_endpoint_url"))
    apply_environment(environment)
    return database, FunctionHost(template)
