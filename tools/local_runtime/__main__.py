"""python -m tools.local_runtime {run,invoke,send-event,dlq,redrive,migrate,token} - see README
"Local runtime". Bad arguments answer one line on stderr (exit 2), checked before anything starts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

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


class UsageError(Exception):
    """A bad argument: reported as one line, exit status 2, before anything is started."""


def _json_file(path: str, what: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{what} {file} does not exist")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{what} {file} is not JSON (not UTF-8 text)") from None
    except ValueError as exc:
        raise UsageError(f"{what} {file} is not JSON: {exc}") from None


def _running(what: str) -> dict[str, Any]:
    from tools.local_runtime.runtime import running_instance

    running = running_instance(state_dir())
    if not running:
        raise UsageError(
            f"no local runtime is running in {state_dir()}: start it with `make run`, then {what}"
        )
    return running


def cmd_run(args: argparse.Namespace) -> int:
    from tools.local_runtime.runtime import port_in_use, run, running_instance

    try:
        port = args.port if args.port is not None else int(os.environ.get("PORT", "3000"))
    except ValueError:
        raise UsageError(f"PORT={os.environ.get('PORT')!r} is not a port number") from None
    running = running_instance(state_dir())
    if running:
        raise UsageError(
            f"the local runtime is already running in this checkout (pid {running.get('pid')}, "
            f"{running.get('api_url')}): use it, or stop it with Ctrl-C first"
        )
    if port_in_use(port):
        raise UsageError(f"port {port} on 127.0.0.1 is in use: stop what uses it, or `make run PORT=3001`")
    if not Path(args.template).is_file():
        raise UsageError(f"template {args.template} does not exist")
    return run(state_dir(), args.template, port, _parameters(args.parameter), docker=args.docker)


def cmd_invoke(args: argparse.Namespace) -> int:
    from tools.local_runtime.runtime import (
        MIGRATION_FUNCTION,
        migrate,
        prepare_for_one_shot,
        stdout_to_stderr,
    )

    event = _json_file(args.event, "event file") if args.event else {}
    if not Path(args.template).is_file():
        raise UsageError(f"template {args.template} does not exist")
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

    document = _json_file(args.file, "event file")
    running = _running("send the event")
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
    bodies = sqs.message_bodies(document)
    client = sqs.sqs_client(running["sqs_endpoint_url"])
    ids = sqs.send_bodies(client, queues[name]["url"], bodies)
    print(_json({"queue": name, "sent": len(ids), "message_ids": ids}))
    return 0


def _dead_letter_queue(running: dict[str, Any], source: str | None) -> tuple[str, str]:
    """(source queue, its DLQ) by logical id: the one given, or the only one there is."""
    pairs = running.get("dead_letter_queues") or {}
    if source is None:
        if len(pairs) != 1:
            raise UsageError(f"choose a queue with QUEUE= (one of: {', '.join(pairs) or 'none'})")
        source = next(iter(pairs))
    if source not in pairs:
        raise UsageError(
            f"queue {source!r} has no dead-letter queue (queues with one: {', '.join(pairs) or 'none'})"
        )
    return source, pairs[source]


def cmd_dlq(args: argparse.Namespace) -> int:
    from tools.local_runtime import sqs

    running = _running("list its dead-letter queue")
    _, dlq = _dead_letter_queue(running, args.queue)
    client = sqs.sqs_client(running["sqs_endpoint_url"])
    messages = sqs.peek_messages(client, running["queues"][dlq]["url"])
    print(_json({"queue": dlq, "messages": messages}))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from tools.local_runtime import sqs

    running = _running("redrive its dead-letter queue")
    source, dlq = _dead_letter_queue(running, args.queue)
    client = sqs.sqs_client(running["sqs_endpoint_url"])
    moved = sqs.move_messages(client, running["queues"][dlq]["url"], running["queues"][source]["url"])
    print(_json({"from": dlq, "to": source, "moved": moved}))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    sub = args.sub or ("operator-1" if args.admin else "user-1")
    scope = args.scope or (auth.ADMIN_SCOPE if args.admin else "wallet:read")
    print(auth.issue_token(sub, scope=scope, ttl_seconds=args.ttl))
    return 0


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line (`--help` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help for usage)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m tools.local_runtime", description=__doc__)
    top.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    top.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )
    top.add_argument("-v", "--verbose", action="store_true")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="database, migrations, local SQS and the HTTP API")
    run.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    run.add_argument(
        "--docker",
        action="store_true",
        help="the embedded database also listens for containers (sam local invoke; `make run DOCKER=1`)",
    )
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

    dlq = commands.add_parser("dlq", help="list the running instance's dead-letter queue (not consumed)")
    dlq.add_argument("--queue", help="source queue logical id (default: the one queue with a DLQ)")
    dlq.set_defaults(func=cmd_dlq)

    redrive = commands.add_parser("redrive", help="move dead-lettered messages back to their source queue")
    redrive.add_argument("--queue", help="source queue logical id (default: the one queue with a DLQ)")
    redrive.set_defaults(func=cmd_redrive)

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
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
