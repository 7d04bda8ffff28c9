"""`sam local invoke` for those with Docker (README "sam local invoke"): the env-vars file the local
runtime writes, the command line, and a database a container can reach when asked. Docker itself
cannot run here: these check what SAM CLI would be given."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest

from tools import pgserver
from tools.local_runtime import runtime as sam
from tools.local_runtime.__main__ import parser
from tools.local_runtime.template import Template

ROOT = Path(__file__).resolve().parents[3]
LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:54329/postgres"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(ROOT / "template.yaml")


def test_the_env_file_covers_every_function_with_exactly_the_variables_it_declares(template):
    document = sam.env_vars(template, LOCAL_URL)

    functions = template.functions()
    assert set(document) == set(functions)
    for logical_id, variables in document.items():
        # SAM applies only variables the template declares: anything else would be silently dropped.
        assert set(variables) == set(functions[logical_id].environment), logical_id
        assert all(isinstance(value, str) for value in variables.values()), logical_id
        # The database of the local runtime, by the name a container resolves to this machine.
        assert variables["DATABASE_URL"] == LOCAL_URL.replace("127.0.0.1", "host.docker.internal")
        assert variables["STAGE"] == "local"
        for aws_only in ("DATABASE_SECRET_ARN", "APP_DATABASE_SECRET_ARN", "DATABASE_HOST"):
            assert variables.get(aws_only, "") == "", (logical_id, aws_only)
    assert document["TransferCreateFunction"]["POWERTOOLS_SERVICE_NAME"] == "wallet"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgresql://postgres@{}:5432/wallet", "localhost"),
        ("postgresql+psycopg://app:pw@{}:6543/w", "127.0.0.1"),
        ("postgresql://{}/w", "[::1]"),
        ("postgresql://app:127.0.0.1@{}:5432/w", "db.internal"),  # not the machine's: kept
    ],
)
def test_only_the_machines_loopback_is_renamed(url, host):
    renamed = host if host == "db.internal" else "host.docker.internal"
    assert sam.container_url(url.format(host)) == url.format(renamed)


def test_the_file_is_sams_format_and_private(tmp_path, template):
    path = sam.write_private(tmp_path / "state" / "sam-env.json", sam.env_vars(template, LOCAL_URL))

    assert path == tmp_path / "state" / "sam-env.json"
    assert json.loads(path.read_text()) == sam.env_vars(template, LOCAL_URL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_readme_gives_the_command_line_for_the_file(template):
    command = (
        "sam local invoke TransferCreateFunction --event events/transfer_create.json"
        f" --env-vars .local/sam-env.json --add-host {sam.CONTAINER_HOST}:host-gateway"
    )
    assert "TransferCreateFunction" in template.functions()
    assert (ROOT / "events" / "transfer_create.json").is_file()
    readme = (ROOT / "README.md").read_text()
    assert command in readme
    assert "sam build" in readme
    assert "make run DOCKER=1" in readme


def test_make_run_docker_asks_the_runtime_for_it():
    assert parser().parse_args(["run", "--docker"]).docker is True
    assert parser().parse_args(["run"]).docker is False
    dry_run = subprocess.run(
        ["make", "-n", "run", "DOCKER=1", "PORT=3999"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "-m tools.local_runtime run --port 3999 --docker" in dry_run.stdout
    plain = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--docker" not in plain.stdout


def _settings(server: pgserver.EmbeddedPostgres) -> tuple[str, list[str]]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres") as connection:
        listen = connection.execute("SHOW listen_addresses").fetchone()[0]
        networks = [
            row[0]
            for row in connection.execute(
                "SELECT address || '/' || netmask FROM pg_hba_file_rules WHERE type = 'host' ORDER BY line_number"
            )
        ]
    return listen, networks


def test_the_embedded_database_listens_for_containers_only_when_asked(tmp_path):
    default = pgserver.persistent(tmp_path / "default")
    try:
        assert _settings(default)[0] == "127.0.0.1"
    finally:
        default.stop()

    docker = pgserver.persistent(tmp_path / "docker", sam.CONTAINER_NETWORKS)
    try:
        listen, networks = _settings(docker)
    finally:
        docker.stop()
    assert listen == "0.0.0.0"  # noqa: S104  (asserted, not bound)
    # Loopback and the container networks, nothing else (trust auth: never the whole world).
    assert networks == [
        "127.0.0.1/255.255.255.255",
        "::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "172.16.0.0/255.240.0.0",
        "192.168.65.0/255.255.255.0",
    ]
