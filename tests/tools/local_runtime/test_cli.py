"""The command line: token, invoke (like `sam local invoke`), send-event (to a running instance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local_runtime import auth, sqs
from tools.local_runtime.__main__ import main
from tools.local_runtime.runtime import write_runtime

ROOT = Path(__file__).resolve().parents[3]


def test_token_command_prints_verifiable_tokens(capsys):
    assert main(["token"]) == 0
    claims = auth.verify("Bearer " + capsys.readouterr().out.strip())
    assert (claims["sub"], claims["scope"]) == ("user-1", "wallet:read")

    assert main(["token", "--admin", "--sub", "ops-7"]) == 0
    claims = auth.verify("Bearer " + capsys.readouterr().out.strip())
    assert (claims["sub"], claims["scope"]) == ("ops-7", "wallet:admin")


def _invoke(template: Path, function: str, event: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    env = {
        "PATH": "/usr/bin:/bin",
        # The fake handlers never connect: a URL that is never dialled keeps the embedded server off.
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "LOCAL_RUNTIME_DIR": str(tmp_path / "state"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.local_runtime",
            "--template",
            str(template),
            "invoke",
            function,
            "--event",
            str(event_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_invoke_prints_the_response_and_only_the_response(fake_template_path, tmp_path):
    event = {"rawPath": "/v1/items/1", "requestContext": {}}
    completed = _invoke(fake_template_path, "EchoFunction", event, tmp_path)
    assert completed.returncode == 0, completed.stderr
    response = json.loads(completed.stdout)  # stdout is the response alone: handler logs go to stderr
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["event"] == event


def test_invoke_exits_non_zero_when_the_handler_raises(fake_template_path, tmp_path):
    completed = _invoke(fake_template_path, "EchoFunction", {"rawPath": "/v1/boom"}, tmp_path)
    assert completed.returncode == 1
    error = json.loads(completed.stdout)
    assert error["errorType"] == "RuntimeError"
    assert "boom" in error["errorMessage"]


def test_invoke_unknown_function_fails_clearly(fake_template_path, tmp_path):
    completed = _invoke(fake_template_path, "NopeFunction", {}, tmp_path)
    assert completed.returncode != 0
    assert "NopeFunction" in completed.stderr
    assert "EchoFunction" in completed.stderr  # lists what exists


@pytest.fixture
def running_state(tmp_path, fake_template, fake_queues, local_sqs, monkeypatch) -> Path:
    """What a running `run` leaves in runtime.json, pointing at the test's moto server."""
    state = tmp_path / "state"
    write_runtime(
        state,
        {
            "sqs_endpoint_url": local_sqs.url,
            "queues": {name: {"url": url} for name, url in fake_queues.items()},
            "event_source_queues": ["WorkQueue"],
        },
    )
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(state))
    return state


def test_send_event_sends_each_record_body_to_the_polled_queue(running_state, fake_queues, local_sqs, capsys):
    sample = ROOT / "events" / "sqs_deposit_settled.json"
    assert main(["send-event", str(sample)]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 1
    client = sqs.sqs_client(local_sqs.url)
    (message,) = client.receive_message(QueueUrl=fake_queues["WorkQueue"], WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == json.loads(sample.read_text())["Records"][0]["body"]


def test_send_event_to_a_named_queue(running_state, fake_queues, local_sqs, tmp_path):
    event = tmp_path / "one.json"
    event.write_text(json.dumps({"event_id": "e-1", "provider": "p", "type": "deposit.settled"}))
    assert main(["send-event", str(event), "--queue", "WorkDeadLetterQueue"]) == 0
    client = sqs.sqs_client(local_sqs.url)
    (message,) = client.receive_message(QueueUrl=fake_queues["WorkDeadLetterQueue"], WaitTimeSeconds=1)[
        "Messages"
    ]
    assert json.loads(message["Body"])["event_id"] == "e-1"


def test_send_event_without_a_running_instance_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(tmp_path / "nothing"))
    assert main(["send-event", str(ROOT / "events" / "sqs_deposit_settled.json")]) == 2
    assert "make run" in capsys.readouterr().err
