"""The state-changing requests (POST): giving one's name, and recording verdicts.

Verdicts go through `readout.verdicts.record_verdicts`, the code behind `allscreen review
--set`: one append-only table, who and when recorded, what the model said, never a result
overwritten. Images are named to it by sha256, looked up by id within the run. The CSRF token
of every POST is checked before any of this runs (`reviewweb.app`).
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from allscreen.schema import Image, Run
from readout.review import require_policy
from readout.verdicts import VerdictInput, record_verdicts
from reviewweb.lookup import case_of, engine_of, parse_id, run_of, safe_next
from reviewweb.render import clean_name, reviewer_of
from reviewweb.security import REVIEWER_COOKIE
from reviewweb.worklist import image_cards

REVIEWER_COOKIE_DAYS = 30  #: a reviewer gives their name once a month per browser


def who(request: Request) -> Response:
    """Keep the reviewer's name in a cookie (where auth is off), then go back."""
    form: FormData = request.state.form  # parsed (and its CSRF token checked) by the gate
    name = clean_name(form.get("name"))
    if name is None:
        raise HTTPException(400, "Give your name (printable, at most 200 characters).")
    back = safe_next(form.get("next"))
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(
        REVIEWER_COOKIE,
        quote(name),
        max_age=REVIEWER_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _image_ids(request: Request, run: Run, form: FormData) -> list[int]:
    """The images a verdict form names: one image, or every flagged image of a case."""
    engine = engine_of(request)
    if form.get("image") is not None:
        return [parse_id(form.get("image"), "image")]
    if form.get("case") is None:
        raise HTTPException(400, "A verdict names an image or a case.")
    case = case_of(request, run, form.get("case"))
    in_force = require_policy(engine, run)
    cards = image_cards(engine, run, in_force.policy, (), case_id=case.id)
    ids = [c.image_id for c in cards if c.flagged]
    if not ids:
        raise HTTPException(
            400, f"Case {case.name} has no image the model flagged: give verdicts per image."
        )
    return ids


def _record(request: Request, form: FormData, reviewer: str) -> str:
    run = run_of(request)
    label = form.get("label")
    if not isinstance(label, str) or not label:
        raise HTTPException(400, "A verdict needs a label.")
    ids = _image_ids(request, run, form)
    with engine_of(request).connect() as conn:
        sha = dict(
            conn.execute(
                select(Image.id, Image.sha256).where(Image.run_id == run.id, Image.id.in_(ids))
            ).all()
        )
    missing = [i for i in ids if i not in sha]
    if missing:
        raise HTTPException(404, f"Run {run.name} has no image with id {missing[0]}.")
    note = form.get("note")
    items = [
        VerdictInput(sha[i], label, reviewer, note if isinstance(note, str) else None) for i in ids
    ]
    record_verdicts(engine_of(request), run, items)
    return f"/runs/{run.id}"


def verdicts(request: Request) -> Response:
    """Record a verdict on one image, or the same verdict on every flagged image of a case."""
    reviewer = reviewer_of(request)
    if reviewer is None:
        raise HTTPException(400, "Give your name first (at the top of the page).")
    form: FormData = request.state.form  # parsed (and its CSRF token checked) by the gate
    default = _record(request, form, reviewer)
    return RedirectResponse(safe_next(form.get("next"), default), status_code=303)
