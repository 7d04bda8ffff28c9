"""Bad arguments to the local tools answer one line on stderr, before anything starts; a second
`run` in the same checkout refuses to start and leaves the first one's runtime.json alone; the
local DLQ can be listed and redriven without the AWS CLI."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tools.local_runtime import sqs
from tools.local_runtime.__main__ import main
from tools.local_runtime.runtime import read_runtime, runtime_file, write_runtime

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def nothing_starts(tmp_path, monkeypatch) -> Path:
    """A state directory, and a database URL that is never dialled: if a command got as far as
    starting the runtime, the database step would fail loudly instead of answering one line."""
    state = tmp_path / "state"
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(state))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    return state


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("content", [None, "{not json", ""])
def test_invoke_with_a_missing_or_broken_event_file_says_so(
    fake_template_path, nothing_starts, tmp_path, capsys, content
):
    event = tmp_path / "event.json"
    if content is not None:
        event.write_text(content)
    code = main(["--template", str(fake_template_path), "invoke", "EchoFunction", "--event", str(event)])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert str(event) in line
    assert ("does not exist" if content is None else "not JSON") in line
    assert not (nothing_starts / "pgdata").exists()


@pytest.mark.parametrize("content", [None, "[1, 2"])
def test_send_event_checks_its_file_before_anything_else(nothing_starts, tmp_path, capsys, content):
    event = tmp_path / "event.json"
    if content is not None:
        event.write_text(content)
    assert main(["send-event", str(event)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(event) in line


def test_run_on_a_port_in_use_says_so_before_starting_anything(fake_template_path, nothing_starts, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--template", str(fake_template_path), "run", "--port", str(port)])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert str(port) in line
    assert "PORT=" in line  # says how to choose another
    assert not runtime_file(nothing_starts).exists()
    assert not (nothing_starts / "pgdata").exists()


def test_a_second_run_in_the_same_checkout_refuses_and_keeps_the_first(
    fake_template_path, nothing_starts, capsys
):
    first = {"pid": os.getpid(), "api_url": "http://127.0.0.1:3000", "queues": {}}
    write_runtime(nothing_starts, first)  # this very process plays the running first instance
    code = main(["--template", str(fake_template_path), "run", "--port", "0"])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "already running" in line
    assert "http://127.0.0.1:3000" in line
    assert read_runtime(nothing_starts) == first


def test_a_stale_runtime_file_does_not_block_a_new_run(nothing_starts):
    from tools.local_runtime.runtime import running_instance

    write_runtime(nothing_starts, {"pid": 2**22 + 12345, "api_url": "http://127.0.0.1:3000"})
    assert running_instance(nothing_starts) is None


@pytest.fixture
def running_state(tmp_path, fake_template, fake_queues, local_sqs, monkeypatch) -> Path:
    state = tmp_path / "state"
    write_runtime(
        state,
        {
            "pid": os.getpid(),
            "sqs_endpoint_url": local_sqs.url,
            "queues": {name: {"url": url} for name, url in fake_queues.items()},
            "event_source_queues": ["WorkQueue"],
            "dead_letter_queues": {"WorkQueue": "WorkDeadLetterQueue"},
        },
    )
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(state))
    return state


def test_dlq_lists_and_redrive_moves_back_without_the_aws_cli(running_state, fake_queues, local_sqs, capsys):
    client = sqs.sqs_client(local_sqs.url)
    for n in range(3):
        body = json.dumps({"event_id": f"dead-{n}", "provider": "acme-pay", "type": "deposit.settled"})
        client.send_message(QueueUrl=fake_queues["WorkDeadLetterQueue"], MessageBody=body)

    assert main(["dlq"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["queue"] == "WorkDeadLetterQueue"
    assert sorted(json.loads(m["body"])["event_id"] for m in listed["messages"]) == [
        "dead-0",
        "dead-1",
        "dead-2",
    ]
    assert main(["dlq"]) == 0  # listing does not consume
    assert len(json.loads(capsys.readouterr().out)["messages"]) == 3

    assert main(["redrive"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "from": "WorkDeadLetterQueue",
        "to": "WorkQueue",
        "moved": 3,
    }
    moved = []
    while batch := client.receive_message(
        QueueUrl=fake_queues["WorkQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages"):
        moved += [json.loads(m["Body"])["event_id"] for m in batch]
    assert sorted(moved) == ["dead-0", "dead-1", "dead-2"]
    assert main(["dlq"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"] == []


def test_dlq_without_a_running_instance_says_so(nothing_starts, capsys):
    assert main(["dlq"]) == 2
    assert "make run" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [["run", "--port", "abc"], ["invoke"], ["send-event"], ["nope"]],
    ids=["port", "fn", "file", "cmd"],
)
def test_argument_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "--help for usage" in one_line(capsys.readouterr().err)
