"""What a URL names: a run, case or image by its database id, or a clear 4xx refusal.

Ids are whole numbers as the database gave them; anything else (a name, a path, `..`) is
refused before any query, so a request can only ever name rows, never files.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request

from allscreen.schema import Case, Run
from reviewweb.worklist import find_case

MAX_ID_DIGITS = 18  #: ids fit a signed 64-bit integer (PostgreSQL's BIGINT)


def parse_id(value: object, what: str) -> int:
    """A database id from a URL or form value; refuse anything but a plain whole number."""
    text = value if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= MAX_ID_DIGITS):
        raise HTTPException(400, f"{what} ids are whole numbers; {str(value)[:60]!r} is not one.")
    return int(text)


def engine_of(request: Request) -> Engine:
    """The results database the app was made with."""
    engine: Engine = request.app.state.engine
    return engine


def run_of(request: Request) -> Run:
    """The run named by the URL's `run_id`, or 404."""
    run_id = parse_id(request.path_params.get("run_id"), "run")
    with Session(engine_of(request), expire_on_commit=False) as session:
        run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(404, f"There is no run with id {run_id}.")
    return run


def case_of(request: Request, run: Run, value: object) -> Case:
    """The case `value` names, if it belongs to `run`, or 404."""
    case_id = parse_id(value, "case")
    case = find_case(engine_of(request), run, case_id)
    if case is None:
        raise HTTPException(404, f"Run {run.name} has no case with id {case_id}.")
    return case


def safe_next(value: object, default: str = "/") -> str:
    """A redirect target from a form: a path on this site only (never another host)."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and all(c.isprintable() for c in value)
    ):
        return value
    return default
