"""Artifacts in S3-compatible object storage: ``s3://bucket/prefix?endpoint_url=...&region=...``.

Each artifact is the object ``<prefix>/<job id>/<name>``, so every ``serve`` replica and every
worker machine reads and writes the same files. The client is boto3 (its calls run in threads:
``asyncio.to_thread``), whose credential chain is used as it is: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_PROFILE`` and the shared
credentials file, or an instance role. Credentials never appear in a URL, a message or a log.

Query parameters of the URL: ``endpoint_url`` (an S3-compatible server such as MinIO; path-style
addressing is used with it unless ``addressing_style`` says otherwise), ``region``,
``addressing_style`` (``path``, ``virtual`` or ``auto``).

botocore's errors are translated here: a missing object is ``ArtifactNotFound``; an endpoint
that cannot be reached, or any other refusal, is ``ArtifactStoreUnavailable``; a missing bucket,
refused credentials or none at all are a ``ConfigError`` from ``open()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from planweave.artifacts.base import ArtifactDownload, check_name
from planweave.artifacts.files import _open_regular
from planweave.constants import ARTIFACT_CHUNK_BYTES
from planweave.errors import ArtifactNotFound, ArtifactStoreUnavailable, ConfigError

__all__ = ["S3ArtifactStore"]

_OPTIONS: Final = ("endpoint_url", "region", "addressing_style")
_ADDRESSING: Final = ("path", "virtual", "auto")
_MISSING_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_DELETE_BATCH: Final = 1000
"""Most keys one DeleteObjects request takes."""


def _code(exc: ClientError) -> str:
    error: dict[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error: dict[str, Any] = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


class S3ArtifactStore:
    """Artifacts as objects in an S3 bucket, under ``prefix/<job id>/<name>``.

    Args:
        url: ``s3://bucket`` or ``s3://bucket/some/prefix``, with optional query parameters
            ``endpoint_url``, ``region`` and ``addressing_style``.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise ConfigError(f"an S3 artifact store URL is s3://bucket/prefix, got {url!r}")
        if "@" in parts.netloc:
            raise ConfigError(
                "an s3:// URL takes no credentials: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown option {unknown[0]!r} in the artifact store URL: use "
                + ", ".join(_OPTIONS)
            )
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = options.get("endpoint_url") or None
        self.region = options.get("region") or None
        style = options.get("addressing_style") or ("path" if self.endpoint_url else "auto")
        if style not in _ADDRESSING:
            raise ConfigError(f"addressing_style must be one of {', '.join(_ADDRESSING)}")
        self.addressing_style = style
        self.url = url
        self._where = f"s3://{self.bucket}" + (
            f" at {self.endpoint_url}" if self.endpoint_url else ""
        )
        self._client: Any = None
        # One thread per transfer: the event loop's thread pool already runs transfers at once.
        self._transfer = TransferConfig(use_threads=False)

    def _key(self, job_id: str, name: str = "") -> str:
        tail = f"{job_id}/{name}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    @property
    def client(self) -> Any:
        if self._client is None:
            raise ArtifactStoreUnavailable(f"the artifact store {self._where} is not open")
        return self._client

    def _unavailable(self, what: str, exc: Exception) -> ArtifactStoreUnavailable:
        return ArtifactStoreUnavailable(
            f"the artifact store {self._where} cannot {what}: {_reason(exc)}"
        )

    async def open(self) -> None:
        if self._client is not None:
            return
        config = Config(
            region_name=self.region,
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": self.addressing_style},
        )
        client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
        try:
            await asyncio.to_thread(client.head_bucket, Bucket=self.bucket)
        except NoCredentialsError:
            client.close()
            raise ConfigError(
                f"no credentials for the artifact store {self._where}: set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except ClientError as exc:
            client.close()
            code = _code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigError(
                    f"the artifact store's bucket {self.bucket!r} does not exist"
                    + (f" at {self.endpoint_url}" if self.endpoint_url else "")
                ) from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ConfigError(
                    f"the artifact store {self._where} refused these credentials for bucket "
                    f"{self.bucket!r} ({code})"
                ) from None
            raise self._unavailable("be reached", exc) from None
        except BotoCoreError as exc:
            client.close()
            raise self._unavailable("be reached", exc) from None
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def put(
        self, job_id: str, name: str, workspace: Path, *, content_type: str | None = None
    ) -> None:
        check_name(job_id, name)
        client = self.client
        extra = {"ContentType": content_type} if content_type else {}

        def upload() -> None:
            fd, _ = _open_regular(workspace, job_id, name)
            with os.fdopen(fd, "rb") as fh:
                client.upload_fileobj(
                    fh, self.bucket, self._key(job_id, name), ExtraArgs=extra, Config=self._transfer
                )

        try:
            await asyncio.to_thread(upload)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(f"store artifact {name!r} of job {job_id}", exc) from None

    async def get(self, job_id: str, name: str) -> ArtifactDownload:
        check_name(job_id, name)
        try:
            reply = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=self._key(job_id, name)
            )
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise ArtifactNotFound(job_id, name) from None
            raise self._unavailable(f"read artifact {name!r} of job {job_id}", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(f"read artifact {name!r} of job {job_id}", exc) from None
        body = reply["Body"]
        size = int(reply.get("ContentLength", 0))
        chunks = self._chunks(body, job_id, name)

        async def close() -> None:
            await chunks.aclose()
            await asyncio.to_thread(body.close)

        return ArtifactDownload(
            size_bytes=size, content_type=reply.get("ContentType"), chunks=chunks, close=close
        )

    async def _chunks(self, body: Any, job_id: str, name: str) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                chunk: bytes = await asyncio.to_thread(body.read, ARTIFACT_CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(f"read artifact {name!r} of job {job_id}", exc) from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(body.close)

    async def delete_job(self, job_id: str) -> None:
        check_name(job_id, "x")
        client = self.client
        prefix = self._key(job_id)

        def delete() -> None:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            keys = [item["Key"] for page in pages for item in page.get("Contents", ())]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
                reply = client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = reply.get("Errors") or ()
                if errors:
                    first = errors[0]
                    raise ArtifactStoreUnavailable(
                        f"the artifact store {self._where} kept {len(errors)} object(s) of job "
                        f"{job_id}: {first.get('Code', 'error')}: {first.get('Message', '')}"
                    )

        try:
            await asyncio.to_thread(delete)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(f"delete the artifacts of job {job_id}", exc) from None
