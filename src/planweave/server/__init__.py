"""The HTTP API server of planweave (FastAPI + uvicorn); ``planweave serve`` runs it.

``create_app(engine, settings)`` builds the app; ``serve(settings)`` runs it with its engine
until stopped. Needs the ``server`` extra: ``pip install 'planweave[server]'``.
"""

from __future__ import annotations

from planweave.server._auth import TokenRegistry, add_token, new_token, read_token_file
from planweave.server._serve import ApiServer, adopt_active_jobs, is_loopback, serve
from planweave.server.app import create_app

__all__ = [
    "ApiServer",
    "TokenRegistry",
    "add_token",
    "adopt_active_jobs",
    "create_app",
    "is_loopback",
    "new_token",
    "read_token_file",
    "serve",
]
