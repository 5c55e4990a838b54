"""The FastAPI application: routers, the token check, error translation, the web page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from agent.api import health, jobs, metrics, quarantine, stow, studies, web
from agent.api.auth import NO_TOKENS_CONFIGURED, require_token
from agent.api.deps import ApiState
from agent.api.errors import add_error_handlers
from agent.config import Settings
from agent.db.recorder import DatabaseRecorder
from agent.db.session import create_db_engine, session_factory
from agent.dimse.ingest import Ingestor
from agent.spool import Spool

log = logging.getLogger(__name__)

DESCRIPTION = """Admin API of the AI worklist agent: jobs, studies, quarantine, metrics; and
STOW-RS (`/dicom-web/studies`) to send it DICOM files over HTTP.

Every endpoint except `/healthz` needs `Authorization: Bearer <token>`, with a token from
`api.tokens` in the configuration."""


def create_app(settings: Settings) -> FastAPI:
    """The admin application over the job database and spool that `settings` name.

    It owns one database engine, disposed when the application shuts down.
    """
    engine = create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    # Swagger UI and ReDoc from the package, not a CDN: hospital networks are often offline.
    app = FastAPIOffline(title="dicom-agent", description=DESCRIPTION, lifespan=lifespan)
    sessions = session_factory(engine)
    spool = Spool(settings.spool_dir)
    ingestor = Ingestor(spool, DatabaseRecorder(sessions))
    app.state.agent = ApiState(settings, sessions, spool, ingestor)
    add_error_handlers(app)
    for router in (jobs.router, studies.router, quarantine.router, metrics.router, stow.router):
        app.include_router(router, dependencies=[Depends(require_token)])
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    if not settings.api.tokens:
        log.warning("%s", NO_TOKENS_CONFIGURED)
    return app
