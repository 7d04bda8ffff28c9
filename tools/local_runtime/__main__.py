"""python -m tools.local_runtime {run,invoke,send-event,migrate,token} - see README "Local runtime"."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tools.local_runtime import auth
from tools.local_runtime.context import error_payload
from tools.local_runtime.server import configure_logging
from tools.local_runtime.template import Template

log = logging.getLogger("local_runtime")
ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Where the embedded database and runtime.json live (git-ignored .local/ by default; tests
    point LOCAL_RUNTIME_DIR elsewhere so they never touch a developer's running instance)."""
    return Path(os.environ.get("LOCAL_RUNTIME_DIR") or ROOT / ".local")


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--parameter expects Name=Value, got {pair!r}")
        parameters[name] = value
    return parameters


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def cmd_run(args: argparse.Namespace) -> int:
    from tools.local_runtime.runtime import run

    port = args.port if args.port is not None else int(os.environ.get("PORT", "3000"))
    return run(state_dir(), args.template, port, _parameters(args.parameter))


def cmd_invoke(args: argparse.Namespace) -> int:
    from tools.local_runtime.runtime import (
        MIGRATION_FUNCTION,
        migrate,
        prepare_for_one_shot,
        stdout_to_stderr,
    )

    event = json.loads(Path(args.event).read_text()) if args.event else {}
    template = Template(args.template, _parameters(args.parameter))
    try:
        template.function(args.function)  # unknown logical id: fail before starting anything
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    with stdout_to_stderr():
        database, host = prepare_for_one_shot(state_dir(), template)
        try:
            if not args.no_migrate and args.function != MIGRATION_FUNCTION:
                result = migrate(host)
                if result.get("status") != "ok":
                    log.warning("migrations: %s", result)
            try:
                response, failed = host.invoke(args.function, event), False
            except Exception as exc:
                log.exception("%s raised", args.function)
                response, failed = error_payload(exc), True
        finally:
            from tools.local_runtime.runtime import dispose_engine

            dispose_engine()
            database.stop()
    print(_json(response))
    return 1 if failed else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from tools.local_runtime.runtime import dispose_engine, migrate, prepare_for_one_shot, stdout_to_stderr

    template = Template(args.template, _parameters(args.parameter))
    with stdout_to_stderr():
        database, host = prepare_for_one_shot(state_dir(), template)
        try:
            result = migrate(host)
        finally:
            dispose_engine()
            database.stop()
    print(_json(result))
    return 0 if result.get("status") == "ok" else 1


def cmd_send_event(args: argparse.Namespace) -> int:
    from tools.local_runtime import sqs
    from tools.local_runtime.runtime import read_runtime, runtime_file

    running = read_runtime(state_dir())
    if not running:
        print(
            f"no local runtime is running ({runtime_file(state_dir())} is missing): start it with `make run`",
            file=sys.stderr,
        )
        return 2
    queues = running.get("queues") or {}
    name = args.queue
    if name is None:
        candidates = running.get("event_source_queues") or []
        if len(candidates) != 1:
            print(f"choose a queue with --queue (one of: {', '.join(queues) or 'none'})", file=sys.stderr)
            return 2
        name = candidates[0]
    if name not in queues:
        print(f"unknown queue {name!r} (one of: {', '.join(queues) or 'none'})", file=sys.stderr)
        return 2
    bodies = sqs.message_bodies(json.loads(Path(args.file).read_text()))
    client = sqs.sqs_client(running["sqs_endpoint_url"])
    ids = sqs.send_bodies(client, queues[name]["url"], bodies)
    print(_json({"queue": name, "sent": len(ids), "message_ids": ids}))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    sub = args.sub or ("operator-1" if args.admin else "user-1")
    scope = args.scope or (auth.ADMIN_SCOPE if args.admin else "wallet:read")
    print(auth.issue_token(sub, scope=scope, ttl_seconds=args.ttl))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m tools.local_runtime", description=__doc__)
    top.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    top.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )
    top.add_argument("-v", "--verbose", action="store_true")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="database, migrations, local SQS and the HTTP API")
    run.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    run.set_defaults(func=cmd_run)

    invoke = commands.add_parser("invoke", help="invoke one function once (like sam local invoke)")
    invoke.add_argument("function", help="logical id, e.g. TransferCreateFunction")
    invoke.add_argument("--event", "-e", help="event JSON file (default: {})")
    invoke.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    invoke.set_defaults(func=cmd_invoke)

    send = commands.add_parser("send-event", help="send a provider event to the running local queue")
    send.add_argument(
        "file", help="a provider event JSON, or an SQS event sample (each record's body is sent)"
    )
    send.add_argument("--queue", help="queue logical id (default: the one queue a function polls)")
    send.set_defaults(func=cmd_send_event)

    migrate = commands.add_parser("migrate", help="apply migrations through the migration function")
    migrate.set_defaults(func=cmd_migrate)

    token = commands.add_parser("token", help="print a bearer token for the local API")
    token.add_argument("--admin", action="store_true", help='operator token (scope "wallet:admin")')
    token.add_argument("--sub", help="subject (default user-1, or operator-1 with --admin)")
    token.add_argument("--scope", help="explicit scope claim (space separated)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")
    token.set_defaults(func=cmd_token)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
