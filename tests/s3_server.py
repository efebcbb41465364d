"""A real S3-compatible server for tests: moto's standalone server, on a free loopback port.

``serve_s3`` is the body of a session fixture that starts one process per test session (per
xdist worker); ``S3Server.new_bucket`` makes a bucket per test and ``S3Server.url`` gives its
``s3://`` URL. Tests that need the server to go down start their own ``S3Server`` and stop it. Everything is skipped, with the reason, only where
moto's server or boto3 is not installed (``pip install 'moto[server]' boto3``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "planweave-test-key",
    "AWS_SECRET_ACCESS_KEY": "planweave-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
START_TIMEOUT_S = 60.0


def _missing() -> str | None:
    for module, package in (("moto.server", "moto[server]"), ("flask", "moto[server]")):
        if importlib.util.find_spec(module.partition(".")[0]) is None:
            return f"{package} is not installed (pip install '{package}')"
    if importlib.util.find_spec("boto3") is None:
        return "boto3 is not installed (pip install 'planweave[s3]')"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """One ``python -m moto.server`` process on 127.0.0.1."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._log = log_dir / f"moto-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **CREDENTIALS}
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self._log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=2),
            ):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not start in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def client(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint_url)

    def new_bucket(self) -> str:
        name = f"pw-{uuid.uuid4().hex[:20]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def keys(self, bucket: str) -> list[str]:
        client = self.client()
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
        finally:
            client.close()

    def object_bytes(self, bucket: str, key: str) -> bytes:
        client = self.client()
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
                return data
        finally:
            client.close()

    def url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint_url={self.endpoint_url}&region=us-east-1"


def serve_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The body of a session fixture: one started server, stopped at the end; a skip with the
    reason where moto's server or boto3 is missing."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    server = S3Server(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_test_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test server's credentials in the standard variables, and no user's AWS files."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
