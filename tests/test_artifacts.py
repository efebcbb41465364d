"""Artifact stores: one contract for ``file://`` and ``s3://`` (a real moto server process), the
default workspace store, and the engine end to end: a task's file lands in the bucket and is
downloaded through a real API server after its workspace is gone; deleting the job deletes the
objects; an S3 endpoint that is down is answered 503."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.s3_server import S3Server, serve_s3, use_test_credentials

from planweave import ConfigError, Engine, Plan, TaskSpec, UnknownBackend
from planweave.artifacts import ArtifactStore, open_artifact_store, workspace_artifact_store
from planweave.config import load_settings
from planweave.errors import ArtifactNotFound, ArtifactStoreUnavailable
from planweave.llm import ScriptedModel
from planweave.server.testing import running_server

JOB = "job-1"
OTHER = "job-2"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from serve_s3(tmp_path_factory)


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_test_credentials(monkeypatch, tmp_path)


@pytest.fixture
def s3_bucket(s3_server: S3Server, s3_credentials: None) -> str:
    """A new, empty bucket on the session's server."""
    return s3_server.new_bucket()


@pytest.fixture(params=["file", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    if request.param == "file":
        url = f"file://{tmp_path / 'artifacts'}"
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        url = server.url(request.getfixturevalue("s3_bucket"), "runs/main")
    opened = open_artifact_store(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def workspace_with(tmp_path: Path, files: dict[str, bytes], job_id: str = JOB) -> Path:
    workspace = tmp_path / "ws" / job_id
    for name, data in files.items():
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return workspace


# --- the contract, for every store --------------------------------------------------------------


async def test_put_get_replace_and_delete(store: ArtifactStore, tmp_path: Path) -> None:
    big = os.urandom(300_000)  # several chunks
    workspace = workspace_with(tmp_path, {"report.md": b"# one", "deep/er/data.bin": big})
    await store.put(JOB, "report.md", workspace, content_type="text/markdown")
    await store.put(JOB, "deep/er/data.bin", workspace)
    other = workspace_with(tmp_path, {"report.md": b"other job"}, OTHER)
    await store.put(OTHER, "report.md", other)
    # The store keeps its own copy: the workspace can go.
    shutil.rmtree(tmp_path / "ws")

    download = await store.get(JOB, "report.md")
    assert (download.size_bytes, await download.read()) == (5, b"# one")
    download = await store.get(JOB, "deep/er/data.bin")
    chunks = [chunk async for chunk in download.chunks]
    assert len(chunks) > 1 and b"".join(chunks) == big and download.size_bytes == len(big)

    again = workspace_with(tmp_path, {"report.md": b"# two, longer"})
    await store.put(JOB, "report.md", again)
    assert await (await store.get(JOB, "report.md")).read() == b"# two, longer"

    await store.delete_job(JOB)
    for name in ("report.md", "deep/er/data.bin"):
        with pytest.raises(ArtifactNotFound):
            await store.get(JOB, name)
    assert await (await store.get(OTHER, "report.md")).read() == b"other job"
    await store.delete_job(JOB)  # nothing left: not an error


async def test_names_outside_the_workspace_and_symlinks_are_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    secret, other_secret = tmp_path / "secret.txt", tmp_path / "other-secret.txt"
    secret.write_bytes(b"canary")
    other_secret.write_bytes(b"canary")
    workspace = workspace_with(tmp_path, {"ok.txt": b"fine"})
    os.symlink(secret, workspace / "link.txt")
    os.link(other_secret, workspace / "hard.txt")
    for name in ("../secret.txt", "/etc/passwd", "a/../../secret.txt", "", "link.txt", "hard.txt"):
        with pytest.raises(ArtifactNotFound):
            await store.put(JOB, name, workspace)
        with pytest.raises(ArtifactNotFound):
            await store.get(JOB, name)
    with pytest.raises(ArtifactNotFound):
        await store.put(JOB, "missing.txt", workspace)
    await store.put(JOB, "ok.txt", workspace)
    download = await store.get(JOB, "ok.txt")
    await download.close()  # given up before reading: releases the file or connection
    with pytest.raises(ArtifactNotFound, match=r"never\.txt"):
        await store.get(JOB, "never.txt")


# --- the default store: the workspace itself ----------------------------------------------------


async def test_the_default_store_serves_the_workspace_in_place(tmp_path: Path) -> None:
    async def workspace_of(job_id: str) -> Path:  # a job given its own workspace
        return tmp_path / "ws" / job_id

    default_root = tmp_path / "data" / "workspaces"
    store = workspace_artifact_store(default_root, workspace_of)
    await store.open()
    workspace = workspace_with(tmp_path, {"a.txt": b"live"})
    await store.put(JOB, "a.txt", workspace)
    assert not default_root.exists()  # nothing copied
    assert sorted(p.name for p in workspace.iterdir()) == ["a.txt"]
    (workspace / "a.txt").write_bytes(b"changed")
    assert await (await store.get(JOB, "a.txt")).read() == b"changed"
    (workspace / "a.txt").unlink()
    os.symlink(tmp_path, workspace / "a.txt")
    with pytest.raises(ArtifactNotFound):
        await store.get(JOB, "a.txt")
    await store.delete_job(JOB)  # the control plane owns the workspace
    assert workspace.is_dir()


# --- choosing a store -----------------------------------------------------------------------------


def test_the_setting_reaches_the_engine_and_bad_urls_are_clear(tmp_path: Path) -> None:
    url = "s3://bucket/prefix?endpoint_url=http://127.0.0.1:9&region=eu-west-1"
    settings = load_settings({}, env={"PLANWEAVE_ARTIFACT_STORE": url})
    assert settings.engine_kwargs()["artifact_store"] == url
    assert "artifact_store" not in load_settings({}, env={}).engine_kwargs()

    engine = Engine(store="memory://", artifact_store=f"file://{tmp_path / 'a'}")
    assert engine.artifact_store.url == f"file://{tmp_path / 'a'}"
    with pytest.raises(UnknownBackend, match=r"file://, s3://"):
        Engine(store="memory://", artifact_store="ftp://host/dir")
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        open_artifact_store("s3://bucket?colour=blue")
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID") as raised:
        open_artifact_store("s3://KEY:hunter2@bucket/prefix")
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError, match="names no folder"):
        open_artifact_store("file://")


async def test_open_says_in_one_line_what_is_wrong(
    s3_server: S3Server, s3_credentials: None
) -> None:
    missing = open_artifact_store(s3_server.url("no-such-bucket-here"))
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket-here' does not exist") as raised:
        await missing.open()
    assert "\n" not in str(raised.value)

    port = S3Server(Path()).port  # a free port nothing listens on
    down = open_artifact_store(f"s3://bucket?endpoint_url=http://127.0.0.1:{port}")
    with pytest.raises(ArtifactStoreUnavailable, match=f"127.0.0.1:{port}") as failed:
        await down.open()
    assert "\n" not in str(failed.value)


# --- the engine end to end on S3 ------------------------------------------------------------------


def write_plan(content: str = "hello from the task", path: str = "out/note.txt") -> Plan:
    return Plan(
        tasks=(
            TaskSpec(
                id="write",
                kind="tool",
                tool="write_file",
                args={"path": path, "content": content},
                max_attempts=1,
            ),
        )
    )


def engine_on(tmp_path: Path, artifact_store: str) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        artifact_store=artifact_store,
    )


async def test_a_task_file_goes_to_s3_and_downloads_after_the_workspace_is_gone(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    engine = engine_on(tmp_path, s3_server.url(s3_bucket, "pw"))
    try:
        async with running_server(engine) as api:
            result = await engine.run(plan=write_plan())
            assert result.ok, result.error
            job_id = result.job_id
            key = f"pw/{job_id}/out/note.txt"
            assert s3_server.keys(s3_bucket) == [key]
            assert s3_server.object_bytes(s3_bucket, key) == b"hello from the task"

            shutil.rmtree(await engine.workspace(job_id))  # the bytes can only come from S3
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
                listed = (await http.get(f"/v1/jobs/{job_id}/artifacts")).json()["artifacts"]
                assert [a["name"] for a in listed] == ["out/note.txt"]
                download = await http.get(listed[0]["url"])
                assert download.status_code == 200
                assert download.content == b"hello from the task"
                assert download.headers["content-length"] == str(len(b"hello from the task"))
                assert download.headers["content-type"].startswith("text/plain")
                assert download.headers["content-disposition"].startswith("attachment")

                deleted = await http.delete(f"/v1/jobs/{job_id}")
                assert deleted.status_code == 204, deleted.text
                assert s3_server.keys(s3_bucket) == []
                assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 404
    finally:
        await engine.close()


async def test_an_s3_endpoint_that_is_down_is_a_503_and_a_missing_object_a_404(
    s3_credentials: None, s3_server: S3Server, tmp_path: Path
) -> None:
    own = S3Server(tmp_path)  # a server of this test's own, to stop
    own.start()
    try:
        bucket = own.new_bucket()
        engine = engine_on(tmp_path, own.url(bucket))
        try:
            async with running_server(engine) as api:
                kept = await engine.run(plan=write_plan("kept"))
                lost = await engine.run(plan=write_plan("lost", "lost.txt"))
                assert kept.ok and lost.ok
                client = own.client()
                client.delete_object(Bucket=bucket, Key=f"{lost.job_id}/lost.txt")
                client.close()
                async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
                    gone = await http.get(f"/v1/jobs/{lost.job_id}/artifacts/lost.txt")
                    assert gone.status_code == 404
                    assert gone.json()["error"]["code"] == "not_found"

                    own.stop()
                    down = await http.get(f"/v1/jobs/{kept.job_id}/artifacts/out/note.txt")
                    assert down.status_code == 503
                    assert down.json()["error"]["code"] == "artifact_store_unavailable"
                    assert "S3" not in down.text and own.endpoint_url not in down.text

                    # A job's objects cannot be deleted: the job stays, to delete again later.
                    refused = await http.delete(f"/v1/jobs/{kept.job_id}")
                    assert refused.status_code == 503
                    assert (await http.get(f"/v1/jobs/{kept.job_id}")).status_code == 200

                # A task's file that cannot be stored fails the attempt, and records nothing.
                failed = await engine.run(plan=write_plan("unsaved", "unsaved.txt"))
                assert failed.status == "failed"
                assert "artifact store" in (failed.error or "")
                assert await engine.artifacts(failed.job_id) == []
        finally:
            await engine.close()
    finally:
        own.stop()


async def test_file_store_shared_folder_end_to_end(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    engine = engine_on(tmp_path, f"file://{shared}")
    try:
        async with running_server(engine) as api:
            result = await engine.run(plan=write_plan("on the shared folder"))
            assert result.ok, result.error
            copy = shared / result.job_id / "out" / "note.txt"
            assert copy.read_bytes() == b"on the shared folder"
            shutil.rmtree(await engine.workspace(result.job_id))
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
                url = f"/v1/jobs/{result.job_id}/artifacts/out/note.txt"
                assert (await http.get(url)).content == b"on the shared folder"
                assert (await http.delete(f"/v1/jobs/{result.job_id}")).status_code == 204
            assert not (shared / result.job_id).exists()
    finally:
        await engine.close()


async def test_a_large_result_made_on_one_worker_machine_is_read_whole_on_another(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, redis_url: str
) -> None:
    import asyncio

    from planweave import tool
    from planweave.errors import RetryTask

    size = 300_000
    machine = {"name": "a"}
    seen: list[int] = []

    @tool
    def big() -> str:
        """A result well over the job's cap."""
        return "x" * size

    @tool
    def measure(inputs: dict[str, Any]) -> int:
        """The length of the result it depends on (run on machine b only)."""
        if machine["name"] != "b":
            raise RetryTask("wait for machine b", delay_s=0.2)
        seen.append(len(next(iter(inputs.values()))))
        return seen[-1]

    artifacts = s3_server.url(s3_bucket, "runs")
    store = f"sqlite:///{tmp_path / 'jobs.db'}"

    def worker(name: str) -> Engine:  # a worker machine
        return Engine(
            store=store, bus=redis_url, data_dir=tmp_path / name, tools=[big, measure],
            artifact_store=artifacts, run_plane=False,
        )  # fmt: skip

    plan = Plan(
        tasks=(
            TaskSpec(id="make", kind="tool", tool="big"),
            TaskSpec(id="count", kind="tool", tool="measure", depends_on=("make",)),
        )
    )
    plane = Engine(
        store=store, bus=redis_url, data_dir=tmp_path / "plane", artifact_store=artifacts,
        tools=[big, measure], run_workers=False,
    )  # fmt: skip
    async with plane:
        job_id = await plane.submit(plan=plan, max_attempts=20)
        async with worker("a"):
            for _ in range(600):
                if (await plane.get(job_id)).tasks["make"].status == "succeeded":
                    break
                await asyncio.sleep(0.05)
        assert (await plane.get(job_id)).tasks["make"].status == "succeeded"
        # Machine b's copy of the job's workspace has none of a's files.
        workspace = await plane.workspace(job_id)
        made = workspace / "results" / "make.txt"
        assert made.stat().st_size == size
        shutil.rmtree(workspace)
        machine["name"] = "b"
        async with worker("b"):
            result = await asyncio.wait_for(plane.wait(job_id), 60)
    assert result.ok, result.error
    assert result.result == size and seen == [size]  # the whole value, not the preview
    assert made.read_text() == "x" * size  # fetched into b's copy of the workspace
