"""The trainer page's app factory: everything it uses is handed in, so `station run` (live loop,
writable rep log), `station serve` (rep log only, read-only) and the tests build the same app."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import AsyncIterator, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from device.analysis.ladder import Ladder, load_ladder
from device.analysis.profiles import profile_titles
from device.config import WebSettings
from device.contract.records import RepReader, StorageError
from device.hub.floor import Floor
from device.station.live import LiveState, StationControls
from web.auth import LoginRequired, TokenGate
from web.context import Checks, WebContext
from web.guard import GuardMiddleware
from web.pacing import PaceMiddleware
from web.routers import athletes, corrections, docs, floor as floor_api, forms, health, labels, live as live_api, pages, reps, sessions, settings
from web.routers.common import everywhere_problems
from web.templating import make_templates, quote_next, safe_next

ROUTERS = (sessions.router, reps.router, corrections.router, labels.router, live_api.router, settings.router,
           health.router, docs.router, pages.router, forms.router, floor_api.router)
# Athletes and their ladder live in a station's own log (where the corrections are made); the hub's
# page (gym mode) lists athletes by name across stations but does not judge mastery.
STATION_ONLY_ROUTERS = (athletes.router, athletes.pages, athletes.forms)

log = logging.getLogger("station.web")
STATIC = Path(__file__).parent / "static"


def _version() -> str:
    try:
        return package_version("hinge-station")
    except PackageNotFoundError:
        return "dev"


def create_app(
    store: RepReader,
    web: WebSettings,
    live: Optional[LiveState] = None,
    controls: Optional[StationControls] = None,
    profiles: Sequence[str] = (),
    checks: Optional[Checks] = None,
    max_threads: int = 4,
    page_cpu_share: Optional[float] = 0.25,
    floor: Optional[Floor] = None,
    ladder: Optional[Ladder] = None,
    drill_titles: Optional[Mapping[str, str]] = None,
    profiles_dir: Optional[Path] = None,
) -> FastAPI:
    """Build the page.

    store: what the page reads: a station's rep log (device/station/store.py; open it read-only for a page
        that must not change anything), or in gym mode the hub's database (device/hub/store.py).
    live, controls: the running station's state and the few things the page may change on it;
        None when no station runs in this process (`station serve`).
    profiles: the drill profile names the settings page offers.
    checks: `station doctor`'s checks as plain dicts, shown by /api/health?deep=true.
    max_threads: worker threads for blocking work (SQLite, templates).
    page_cpu_share: under sustained load, answers are spaced so the page is busy at most this
        share of the time (see web/pacing.py); None turns pacing off (tests, benchmarks of the
        page alone).
    floor: the hub's live view of every station (`station hub`: gym mode).
    ladder: the drill ladder athletes' mastery is judged on (default: device/analysis/ladder.toml).
    drill_titles: each drill's title, shown instead of its name (default: the shipped profiles' titles).
    profiles_dir: the station's own drill profiles (analysis.profiles_dir), for each drill's own cues.
    """
    context = WebContext(store=store, gate=TokenGate(web.token, web.read_requires_token), live=live, controls=controls,
                         profiles=tuple(profiles), checks=checks, preview_fps=web.preview_fps, version=_version(),
                         floor=floor, ladder=ladder or load_ladder(),
                         drill_titles=drill_titles if drill_titles is not None else profile_titles(),
                         profiles_dir=profiles_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = max_threads
        yield
        context.closing.set()

    app = FastAPI(
        title="Hinge Station", version=context.version, lifespan=lifespan,
        description="The trainer page's API: rep history, the live station, corrections and exports. "
                    "Writes need `Authorization: Bearer <web.token>`.",
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
        responses=everywhere_problems(),
    )
    app.state.context = context
    app.state.templates = make_templates(STATIC, context.drill_titles)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    if page_cpu_share is not None:
        app.add_middleware(PaceMiddleware, share=page_cpu_share)
    app.add_middleware(GuardMiddleware, allowed_hosts=web.allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS + (() if floor is not None else STATION_ONLY_ROUTERS):
        app.include_router(router)
    _add_error_handlers(app)
    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/static/"))


def _add_error_handlers(app: FastAPI) -> None:
    templates = app.state.templates

    def page(request: Request, status: int, message: str, headers: Optional[Mapping[str, str]] = None) -> Response:
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = referer.netloc == request.url.netloc
        back = safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), "/") if same_site else "/"
        values = {"status": status, "message": message, "back": back, "nav": ""}
        return templates.TemplateResponse(request, "error.html", values, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            if isinstance(exc, LoginRequired) and request.method in ("GET", "HEAD"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote_next(target)}", status_code=303)
            return page(request, exc.status_code, str(exc.detail), exc.headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_html(request):
            lines = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()]
            return page(request, 422, "; ".join(lines))
        # The offending input is not echoed back: it may be what JSON cannot carry (a lone
        # surrogate, 1e999), and the client has it anyway.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StorageError)
    async def storage(request: Request, exc: StorageError) -> Response:
        log.error("rep log: %s", exc)
        detail = f"the rep log cannot be used right now: {exc}"
        if _wants_html(request):
            return page(request, 503, detail)
        return JSONResponse({"detail": detail}, status_code=503)
