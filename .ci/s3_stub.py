"""A local S3 (moto) for .ci/sam-checks' offline `sam package`: prints its endpoint and process id,
then serves until stdin closes or it is killed by that id. Binds 127.0.0.1 only; the bucket `artifacts` exists."""

import contextlib
import os
import socket
import sys

import boto3
from moto.server import ThreadedMotoServer

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
with contextlib.redirect_stdout(sys.stderr):  # moto announces itself on stdout
    server.start()
endpoint = f"http://127.0.0.1:{port}"
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="stub",
    aws_secret_access_key="stub",  # noqa: S106  # nosec B106  (moto accepts anything)
)
s3.create_bucket(Bucket="artifacts")
print(endpoint, os.getpid(), flush=True)
sys.stdin.read()
server.stop()
