"""Templates, and what every page knows: who is reviewing and this session's CSRF token."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from reviewweb.security import CSRF_FIELD, REVIEWER_COOKIE, Guard

MAX_REVIEWER = 200  #: characters of a reviewer's name (the `verdicts.reviewer` column)


def make_templates() -> Jinja2Templates:
    """The page templates, shipped in the package, HTML-escaped by default."""
    env = Environment(
        loader=PackageLoader("reviewweb", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["score"] = lambda x: "-" if x is None else f"{x:.3f}"
    return Jinja2Templates(env=env)


def clean_name(value: object) -> str | None:
    """A reviewer's name as given, trimmed; None if empty, too long or not printable."""
    if not isinstance(value, str):
        return None
    name = " ".join(value.split())
    if not name or len(name) > MAX_REVIEWER or not name.isprintable():
        return None
    return name


def reviewer_of(request: Request) -> str | None:
    """Who is reviewing: the signed-in user where auth is on, else the name in the cookie."""
    user: str | None = request.state.user
    if user is not None:
        return user
    return clean_name(unquote(request.cookies.get(REVIEWER_COOKIE, "")))


def guard_of(request: Request) -> Guard:
    """The app's authentication and CSRF guard."""
    guard: Guard = request.app.state.guard
    return guard


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """Render template `name` with the page-wide context added."""
    templates: Jinja2Templates = request.app.state.templates
    page = {
        "reviewer": reviewer_of(request),
        "auth_on": guard_of(request).auth_on,
        "csrf_field": CSRF_FIELD,
        "csrf": guard_of(request).csrf_token(request.state.session),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    }
    return templates.TemplateResponse(request, name, page, status_code=status)
