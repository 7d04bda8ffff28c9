"""python -m tools.local_runtime {run,invoke,send-event,dlq,redrive,migrate,token} - see README
"Local runtime". Bad arguments answer one line on stderr (exit 2), checked before anything starts."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

from tools.local_runtime import auth, runtime
from tools.local_runtime.server import configure_logging
from tools.local_runtime.template import Template

ROOT = Path(__file__).resolve().parents[2]


class UsageError(Exception):
    """A bad argument: reported as one line, exit status 2, before anything is started."""


def state_dir() -> Path:
    """Where the embedded database and runtime.json live (git-ignored .local/ by default; tests
    point LOCAL_RUNTIME_DIR elsewhere so they never touch a developer's running instance)."""
    return Path(os.environ.get("LOCAL_RUNTIME_DIR") or ROOT / ".local")


def _json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError:
        raise UsageError(f"event file {path} does not exist") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise UsageError(f"event file {path} is not JSON: {exc}") from None


def _running(what: str) -> dict[str, Any]:
    running = runtime.read_runtime(state_dir())
    if not running:
        raise UsageError(
            f"no local runtime is running in {state_dir()}: start it with `make run`, then {what}"
        )
    return running


def _queue(name: str | None, candidates: list[str], what: str) -> str:
    """The queue given, or the only candidate there is."""
    if name is None and len(candidates) == 1:
        return candidates[0]
    if name not in candidates:
        raise UsageError(f"choose {what} with QUEUE= (one of: {', '.join(candidates) or 'none'})")
    return name


def _print(value: Any) -> int:
    print(json.dumps(value, indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace, template: Template) -> int:
    if running := runtime.read_runtime(state_dir()):
        raise UsageError(
            f"the local runtime is already running in this checkout (pid {running['pid']}, "
            f"{running.get('api_url')}): use it, or stop it with Ctrl-C first"
        )
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError:
            raise UsageError(f"port {args.port} on 127.0.0.1 is in use: `make run PORT=3001`") from None
    return runtime.run(state_dir(), template, args.port, docker=args.docker)


def cmd_invoke(args: argparse.Namespace, template: Template) -> int:
    """Like `sam local invoke`: the response alone on stdout (handler logs go to stderr). `migrate`
    is the migration function's {"action": "upgrade"}, failed unless its status is ok."""
    from tools.local_runtime.context import error_payload

    event = (
        _json_file(args.event) if args.event else {"action": "upgrade"} if args.command == "migrate" else {}
    )
    try:
        template.function(args.function)  # unknown logical id: fail before starting anything
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    with contextlib.redirect_stdout(sys.stderr):
        database, host = runtime.prepare_for_one_shot(state_dir(), template)
        try:
            if not args.no_migrate and args.function != runtime.MIGRATION_FUNCTION:
                runtime.migrate(host)
            response, failed = host.invoke(args.function, event), False
        except Exception as exc:
            response, failed = error_payload(exc), True
        finally:
            database.stop()
    _print(response)
    return 1 if failed or (args.command == "migrate" and response.get("status") != "ok") else 0


def cmd_send_event(args: argparse.Namespace, template: None) -> int:
    from tools.local_runtime import sqs

    bodies = sqs.message_bodies(_json_file(args.file))
    running = _running("send the event")
    candidates = running["event_source_queues"] if args.queue is None else list(running["queues"])
    name = _queue(args.queue, candidates, "a queue")
    ids = sqs.send_bodies(sqs.sqs_client(running["sqs_endpoint_url"]), running["queues"][name]["url"], bodies)
    return _print({"queue": name, "sent": len(ids), "message_ids": ids})


def cmd_dlq(args: argparse.Namespace, template: None) -> int:
    """`dlq` lists the source queue's dead-letter queue without consuming it; `redrive` moves its
    messages back to the source queue."""
    from tools.local_runtime import sqs

    running = _running(f"use its dead-letter queue ({args.command})")
    queues = running["queues"]
    source = _queue(
        args.queue, [name for name, queue in queues.items() if queue["dlq"]], "a queue with a DLQ"
    )
    dlq = queues[source]["dlq"]
    client = sqs.sqs_client(running["sqs_endpoint_url"])
    if args.command == "dlq":
        return _print({"queue": dlq, "messages": sqs.peek_messages(client, queues[dlq]["url"])})
    return _print(
        {
            "from": dlq,
            "to": source,
            "moved": sqs.move_messages(client, queues[dlq]["url"], queues[source]["url"]),
        }
    )


def cmd_token(args: argparse.Namespace, template: None) -> int:
    sub = args.sub or (runtime.ADMIN_SUB if args.admin else runtime.USER_SUB)
    scope = args.scope or (auth.ADMIN_SCOPE if args.admin else "wallet:read")
    print(auth.issue_token(sub, scope=scope, ttl_seconds=args.ttl))
    return 0


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line (`--help` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help for usage)\n")


def _pair(text: str) -> tuple[str, str]:
    name, value = text.split("=", 1)  # no "=": argparse's one-line "invalid _pair value" error
    return name, value


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m tools.local_runtime", description=__doc__)
    top.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    top.add_argument(
        "--parameter",
        action="append",
        default=[],
        type=_pair,
        metavar="NAME=VALUE",
        help="template parameter override",
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, handler: Any, text: str, **defaults: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.set_defaults(func=handler, **defaults)
        return sub

    run = command("run", cmd_run, "database, migrations, local SQS and the HTTP API")
    run.add_argument(
        "--port", type=int, default=os.environ.get("PORT") or "3000", help="default: $PORT or 3000"
    )
    run.add_argument(
        "--docker", action="store_true", help="the embedded database also listens for containers"
    )
    invoke = command("invoke", cmd_invoke, "invoke one function once (like sam local invoke)")
    invoke.add_argument("function", help="logical id, e.g. TransferCreateFunction")
    invoke.add_argument("--event", "-e", help="event JSON file (default: {})")
    invoke.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    send = command("send-event", cmd_send_event, "send a provider event to the running local queue")
    send.add_argument(
        "file", help="a provider event JSON, or an SQS event sample (each record's body is sent)"
    )
    send.add_argument("--queue", help="queue logical id (default: the one queue a function polls)")
    for name, text in (
        ("dlq", "list the dead-letter queue (not consumed)"),
        ("redrive", "move it back to the source"),
    ):
        command(name, cmd_dlq, text).add_argument(
            "--queue", help="source queue logical id (default: the one with a DLQ)"
        )
    migrate = "apply migrations through the migration function"
    command("migrate", cmd_invoke, migrate, function=runtime.MIGRATION_FUNCTION, event=None, no_migrate=True)
    token = command("token", cmd_token, "print a bearer token for the local API")
    token.add_argument("--admin", action="store_true", help='operator token (scope "wallet:admin")')
    token.add_argument("--sub", help="subject (default user-1, or operator-1 with --admin)")
    token.add_argument("--scope", help="explicit scope claim (space separated)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging()
    try:
        template = None
        if args.func in (cmd_run, cmd_invoke):  # the others need only runtime.json
            if not args.template.is_file():
                raise UsageError(f"template {args.template} does not exist")
            template = Template(args.template, dict(args.parameter))
        return args.func(args, template)
    except UsageError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
