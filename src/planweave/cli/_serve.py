"""``serve`` (the HTTP API with its engine) and ``token`` (API tokens: create, list, revoke)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from planweave.cli._agents import AgentsDirOpt
from planweave.cli._checks import check_writable
from planweave.cli._common import (
    BusOpt,
    ClaimLeaseOpt,
    ConfigOpt,
    DataDirOpt,
    HookOpt,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    ToolsOpt,
    WorkersOpt,
    WorkLeaseOpt,
    err_console,
    out_console,
    print_json,
    run_async,
    settings_from,
)
from planweave.constants import (
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_EVENT_STREAMS_PER_TENANT,
    DEFAULT_REQUEST_BODY_TIMEOUT_S,
    DEFAULT_REQUEST_HEADER_TIMEOUT_S,
)
from planweave.errors import MissingDependency, UsageError

__all__ = ["serve", "token_app"]

_TENANT_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

MaxConnectionsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-connections",
        min=1,
        help="Open connections kept; past it requests get 503 and new connections are closed",
        show_default=str(DEFAULT_MAX_CONNECTIONS),
    ),
]
HeaderTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--request-header-timeout-s",
        min=0.001,
        help="Seconds a connection has to send its request line and headers (then it is closed)",
        show_default=f"{DEFAULT_REQUEST_HEADER_TIMEOUT_S:g}",
    ),
]
BodyTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--request-body-timeout-s",
        min=0.001,
        help="Seconds a request has to send its body once its headers are in",
        show_default=f"{DEFAULT_REQUEST_BODY_TIMEOUT_S:g}",
    ),
]
KeepAliveOpt = Annotated[
    int | None,
    typer.Option(
        "--keep-alive-timeout-s",
        min=1,
        help="Seconds an idle keep-alive connection stays open",
        show_default=str(DEFAULT_KEEP_ALIVE_TIMEOUT_S),
    ),
]
StreamsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-event-streams-per-tenant",
        min=1,
        help="Event streams (SSE and WebSocket) a tenant may hold open at once",
        show_default=str(DEFAULT_MAX_EVENT_STREAMS_PER_TENANT),
    ),
]


def _need_server() -> None:
    try:
        importlib.import_module("planweave.server")
    except ImportError as exc:  # fastapi or uvicorn missing
        raise MissingDependency(exc.name or "fastapi", "server") from None


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on", show_default="127.0.0.1"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port (0: any free one)",
            show_default="8000",
        ),
    ] = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    bus: BusOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    claim_lease_s: ClaimLeaseOpt = None,
    work_lease_s: WorkLeaseOpt = None,
    max_connections: MaxConnectionsOpt = None,
    request_header_timeout_s: HeaderTimeoutOpt = None,
    request_body_timeout_s: BodyTimeoutOpt = None,
    keep_alive_timeout_s: KeepAliveOpt = None,
    max_event_streams_per_tenant: StreamsOpt = None,
    workers: WorkersOpt = None,
    tools: ToolsOpt = None,
    agents_dir: AgentsDirOpt = None,
    hook: HookOpt = None,
    mcp: Annotated[
        bool | None,
        typer.Option(
            "--mcp",
            help="Also serve the job API as MCP tools (streamable HTTP at /mcp, same tokens)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and web UI, running jobs in this process."""
    settings = settings_from(
        config,
        host=host,
        port=port,
        store=store,
        model=model,
        bus=bus,
        data_dir=data_dir,
        claim_lease_s=claim_lease_s,
        work_lease_s=work_lease_s,
        max_connections=max_connections,
        request_header_timeout_s=request_header_timeout_s,
        request_body_timeout_s=request_body_timeout_s,
        keep_alive_timeout_s=keep_alive_timeout_s,
        max_event_streams_per_tenant=max_event_streams_per_tenant,
        workers=workers,
        tools=tools,
        agents_dir=agents_dir,
        hooks=tuple(hook) if hook else None,
        serve_mcp=mcp,
    )
    _need_server()
    check_writable(settings, workspaces=True)
    from planweave.server import serve as run_server

    def announce(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    run_async(run_server(settings, announce=announce))


token_app = typer.Typer(
    name="token",
    help="Create, list and revoke API tokens (stored as SHA-256 hashes in the data dir).",
    no_args_is_help=True,
)


def _token_file(data_dir: Path | None, config: Path | None) -> Path:
    _need_server()
    from planweave.server._auth import TOKEN_FILE

    settings = settings_from(config, data_dir=data_dir)
    return settings.data_dir / TOKEN_FILE


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the token acts for")],
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make a new token for TENANT and print it (once: only its hash is kept)."""
    if not _TENANT_RE.match(tenant):
        raise UsageError(
            f"bad tenant name {tenant!r}: use letters, digits, '_', '-' and '.' (at most 64)"
        )
    from planweave.server._auth import add_token

    path = _token_file(data_dir, config)
    token, record = add_token(path, tenant)
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    err_console().print(
        f"token {record.id} for tenant {tenant!r} saved (as a hash) in {path}; "
        "copy it now, it is not shown again",
        markup=False,
    )


@token_app.command("list")
def token_list(
    data_dir: DataDirOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False
) -> None:
    """List the stored tokens (ids and tenants; never the tokens)."""
    from planweave.server._auth import describe, read_token_file

    path = _token_file(data_dir, config)
    records = describe(read_token_file(path))
    if json_out:
        print_json(records)
        return
    out = out_console()
    if not records:
        out.print("no tokens (create one with 'planweave token create --tenant NAME')")
    for record in records:
        out.print(f"{record['id']}  {record['tenant']}", markup=False)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see 'planweave token list')")],
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a stored token (a running server stops accepting it within a second)."""
    from planweave.server._auth import remove_token

    path = _token_file(data_dir, config)
    if not remove_token(path, token_id):
        raise UsageError(f"no token with id {token_id!r} (see 'planweave token list')")
    out_console().print(f"token {token_id} revoked", markup=False)
