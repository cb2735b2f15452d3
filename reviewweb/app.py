"""The review app: routes, the security gate every request passes, and error pages.

One app serves every run of the database (`/runs/{id}`), because reviewers move between runs
and an operator should expose one port with one set of credentials, not one per run.

The gate, in order: basic auth (where configured), a session cookie (made on first visit),
and for every POST the session's CSRF token and a same-origin check. Errors become a page
with one sentence and a 4xx status; an unexpected one is a 500 page, its traceback only in
the server's log.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from allscreen.errors import AllscreenError, PolicyError, ReviewError, RunNotFound
from reviewweb import actions, pages
from reviewweb.case_cache import CaseRowCache, warm
from reviewweb.render import make_templates, render
from reviewweb.security import CSRF_FIELD, SESSION_COOKIE, Guard, new_session

log = logging.getLogger("allscreen.review")

STATIC = Path(__file__).resolve().parent / "static"
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{43}")  #: what `new_session` makes
MAX_FORM_FIELDS = 20  #: a verdict form has five; more is not the page's
#: The page loads nothing from elsewhere and runs only its own script file.
CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send `Origin: null`
    "X-Frame-Options": "DENY",
}
#: HTTP status of each expected error (others are 400).
ERROR_STATUS: dict[type[AllscreenError], int] = {
    RunNotFound: 404,
    PolicyError: 409,
    ReviewError: 400,
}

Next = Callable[[Request], Awaitable[Response]]


def _error(request: Request, status: int, sentence: str) -> Response:
    if not hasattr(request.state, "session"):
        request.state.session = new_session()
        request.state.user = None
    return render(request, "error.html", status=status, status_code=status, sentence=sentence)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


class Gate(BaseHTTPMiddleware):
    """Authentication, the session cookie, CSRF and security headers for every request."""

    async def dispatch(self, request: Request, call_next: Next) -> Response:
        """Let the request through to the page, or answer it here with a refusal."""
        guard: Guard = request.app.state.guard
        request.state.user = None
        session = request.cookies.get(SESSION_COOKIE, "")
        fresh = not SESSION_RE.fullmatch(session)
        request.state.session = new_session() if fresh else session
        if guard.auth_on:
            user = await run_in_threadpool(guard.user, request.headers.get("authorization"))
            if user is None:
                response = _error(request, 401, "Sign in to review (basic authentication).")
                response.headers["WWW-Authenticate"] = 'Basic realm="allscreen review"'
                return self._finish(request, response, fresh=False)
            request.state.user = user
        if request.method not in ("GET", "HEAD"):
            refusal = await self._check_post(request, guard, fresh)
            if refusal is not None:
                return self._finish(request, refusal, fresh=fresh)
        return self._finish(request, await call_next(request), fresh=fresh)

    async def _check_post(self, request: Request, guard: Guard, fresh: bool) -> Response | None:
        if not _same_origin(request):
            return _error(request, 403, "This form came from another site, so it was refused.")
        try:
            form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        except HTTPException as exc:
            return _error(request, 400, f"The form could not be read: {exc.detail}")
        request.state.form = form  # read once: the body is not replayed to the page
        if fresh or not guard.csrf_ok(request.state.session, form.get(CSRF_FIELD)):
            return _error(
                request,
                403,
                "This form lacks the page's security token (or it has expired): "
                "reload the page and try again.",
            )
        return None

    @staticmethod
    def _finish(request: Request, response: Response, *, fresh: bool) -> Response:
        if fresh:
            response.set_cookie(
                SESSION_COOKIE,
                request.state.session,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")  # pages carry patient data
        return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        return _error(request, 404, "There is no such page here.")
    if exc.status_code == 405:
        return _error(request, 405, "This address does not take that kind of request.")
    return _error(request, exc.status_code, str(exc.detail))


async def _allscreen_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AllscreenError)
    status = next((s for kind, s in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
    return _error(request, status, str(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("review page error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "Something went wrong on the server; its log says what.")


def _warm_quietly(engine: Engine, cache: CaseRowCache) -> None:
    try:
        warm(engine, cache)
    except (AllscreenError, SQLAlchemyError) as exc:  # pages will count on demand instead
        log.warning("could not count the newest runs' cases at start: %s", exc)


def create_app(
    engine: Engine,
    *,
    guard: Guard | None = None,
    limits: tuple[int, int] | None = None,
    warm_cases: bool = False,
    archive_root: Path | None = None,
) -> Starlette:
    """The review app on `engine`; `limits` are (max image bytes, max image pixels);
    `warm_cases` counts the newest runs' cases in a thread when the server starts;
    `archive_root` is where runs that store relative paths have their files read."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm_cases:
            args = (engine, app.state.cases)
            threading.Thread(target=_warm_quietly, args=args, daemon=True).start()
        yield

    from allscreen import defaults

    routes = [
        Route("/", pages.runs_page),
        Route("/who", actions.who, methods=["POST"]),
        Route("/runs/{run_id}", pages.worklist_page),
        Route("/runs/{run_id}/summary", pages.summary_page),
        Route("/runs/{run_id}/report", pages.report_download),
        Route("/runs/{run_id}/cases/{case_id}", pages.case_page),
        Route("/runs/{run_id}/images/{image_id}", pages.image_file),
        Route("/runs/{run_id}/verdicts", actions.verdicts, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Gate)],
        exception_handlers={
            HTTPException: _http_error,
            AllscreenError: _allscreen_error,
            Exception: _unexpected,
        },
    )
    app.state.engine = engine
    app.state.guard = guard or Guard({})
    app.state.templates = make_templates()
    app.state.cases = CaseRowCache()
    app.state.archive_root = archive_root  #: where relative paths are read (images, report)
    app.state.limits = limits or (
        defaults.DEFAULT_MAX_IMAGE_BYTES,
        defaults.DEFAULT_MAX_IMAGE_PIXELS,
    )
    return app
