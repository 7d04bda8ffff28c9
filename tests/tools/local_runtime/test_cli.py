"""The command line: token, invoke (like `sam local invoke`), send-event, dlq and redrive (against a
running instance, found through runtime.json); bad arguments answer one line on stderr before
anything starts, and a second `run` in the same checkout leaves the first one alone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local_runtime import auth, sqs
from tools.local_runtime.__main__ import main
from tools.local_runtime.runtime import read_runtime, write_runtime

ROOT = Path(__file__).resolve().parents[3]
NEVER_DIALLED = (
    "postgresql://nobody@127.0.0.1:9/none"  # a command that got as far as the database fails loudly
)


@pytest.fixture
def nothing_starts(tmp_path, monkeypatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(state))
    monkeypatch.setenv("DATABASE_URL", NEVER_DIALLED)
    return state


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_token_command_prints_verifiable_tokens(capsys):
    assert main(["token"]) == 0
    claims = auth.verify("Bearer " + capsys.readouterr().out.strip())
    assert (claims["sub"], claims["scope"]) == ("user-1", "wallet:read")
    assert main(["token", "--admin", "--sub", "ops-7"]) == 0
    claims = auth.verify("Bearer " + capsys.readouterr().out.strip())
    assert (claims["sub"], claims["scope"]) == ("ops-7", "wallet:admin")


def _cli(tmp_path: Path, *argv: str, database_url: str = NEVER_DIALLED) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "LOCAL_RUNTIME_DIR": str(tmp_path / "state"),
    }
    command = [sys.executable, "-m", "tools.local_runtime", *argv]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("function", "event", "code", "expected"),
    [
        ("EchoFunction", {"rawPath": "/v1/items/1", "requestContext": {}}, 0, '"statusCode": 200'),
        ("EchoFunction", {"rawPath": "/v1/boom"}, 1, '"errorType": "RuntimeError"'),
        ("NopeFunction", {}, 2, ""),
    ],
)
def test_invoke_prints_the_response_and_only_the_response(
    fake_template_path, tmp_path, function, event, code, expected
):
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    completed = _cli(
        tmp_path, "--template", str(fake_template_path), "invoke", function, "--event", str(event_file)
    )
    assert completed.returncode == code, completed.stderr
    if code == 2:  # an unknown function: one line naming it and what exists
        assert "NopeFunction" in one_line(completed.stderr)
        assert "EchoFunction" in completed.stderr
        return
    response = json.loads(completed.stdout)  # stdout is the response alone: handler logs go to stderr
    assert expected in completed.stdout
    if code == 0:
        assert json.loads(response["body"])["event"] == event


def test_migrate_upgrades_through_the_migration_function(database_url, tmp_path):
    completed = _cli(tmp_path, "migrate", database_url=database_url)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert (result["status"], result["revision"]) == ("ok", result["head"])
    failed = _cli(tmp_path, "migrate")  # a database it cannot reach
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"]


def test_invoke_uses_the_database_of_the_running_instance(database_url, tmp_path):
    """Two embedded servers cannot share .local/pgdata: `make invoke` next to `make run` uses its."""
    write_runtime(tmp_path / "state", {"database_url": database_url})  # this test's process plays `run`
    completed = _cli(tmp_path, "migrate", database_url="")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["status"] == "ok"
    assert not (tmp_path / "state" / "pgdata").exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["invoke", "EchoFunction", "--event", "{missing}"], "does not exist"),
        (["invoke", "EchoFunction", "--event", "{broken}"], "not JSON"),
        (["send-event", "{missing}"], "does not exist"),
        (["send-event", "{broken}"], "not JSON"),
        (["send-event", str(ROOT / "events" / "sqs_deposit_settled.json")], "make run"),
        (["dlq"], "make run"),
        (["redrive"], "make run"),
        (["run", "--port", "{taken}"], "PORT="),
    ],
)
def test_bad_input_is_one_line_before_anything_starts(
    fake_template_path, nothing_starts, tmp_path, capsys, argv, says
):
    (tmp_path / "broken.json").write_text("{not json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        names = {
            "missing": tmp_path / "missing.json",
            "broken": tmp_path / "broken.json",
            "taken": taken.getsockname()[1],
        }
        code = main(["--template", str(fake_template_path), *(arg.format(**names) for arg in argv)])
    assert code == 2
    assert says in one_line(capsys.readouterr().err)
    assert not nothing_starts.exists()  # no database, no runtime.json


@pytest.mark.parametrize(
    "argv", [["run", "--port", "abc"], ["invoke"], ["send-event"], ["nope"], ["--parameter", "Stage", "run"]]
)
def test_argument_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "--help for usage" in one_line(capsys.readouterr().err)


def test_a_second_run_refuses_and_keeps_the_first_while_a_stale_file_is_ignored(
    fake_template_path, running_state, capsys
):
    first = read_runtime(running_state)
    assert main(["--template", str(fake_template_path), "run", "--port", "0"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "already running" in line
    assert "http://127.0.0.1:3000" in line
    assert read_runtime(running_state) == first
    write_runtime(running_state, {"pid": 2**22 + 12345})  # a killed run's file
    assert read_runtime(running_state) is None


def test_send_event_sends_each_record_body_to_the_polled_queue_or_the_one_named(
    running_state, fake_queues, local_sqs, tmp_path, capsys
):
    sample = ROOT / "events" / "sqs_deposit_settled.json"
    assert main(["send-event", str(sample)]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 1
    client = sqs.sqs_client(local_sqs.url)
    (message,) = client.receive_message(QueueUrl=fake_queues["WorkQueue"], WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == json.loads(sample.read_text())["Records"][0]["body"]

    event = tmp_path / "one.json"
    event.write_text(json.dumps({"event_id": "e-1"}))
    assert main(["send-event", str(event), "--queue", "WorkDeadLetterQueue"]) == 0
    (message,) = client.receive_message(QueueUrl=fake_queues["WorkDeadLetterQueue"], WaitTimeSeconds=1)[
        "Messages"
    ]
    assert json.loads(message["Body"]) == {"event_id": "e-1"}
    assert main(["send-event", str(event), "--queue", "Nope"]) == 2


def test_dlq_lists_and_redrive_moves_back_without_the_aws_cli(running_state, fake_queues, local_sqs, capsys):
    client = sqs.sqs_client(local_sqs.url)
    sqs.send_bodies(
        client, fake_queues["WorkDeadLetterQueue"], [json.dumps({"event_id": f"dead-{n}"}) for n in range(3)]
    )

    for _ in range(2):  # listing does not consume
        assert main(["dlq"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed["queue"] == "WorkDeadLetterQueue"
        assert sorted(json.loads(m["body"])["event_id"] for m in listed["messages"]) == [
            "dead-0",
            "dead-1",
            "dead-2",
        ]
        assert all(m["receive_count"] >= 1 for m in listed["messages"])

    assert main(["redrive"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "from": "WorkDeadLetterQueue",
        "to": "WorkQueue",
        "moved": 3,
    }
    moved = [
        json.loads(m["Body"])["event_id"]
        for m in client.receive_message(QueueUrl=fake_queues["WorkQueue"], MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(moved) == ["dead-0", "dead-1", "dead-2"]
    assert main(["dlq"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"] == []
    assert main(["dlq", "--queue", "WorkDeadLetterQueue"]) == 2  # it has no DLQ of its own
