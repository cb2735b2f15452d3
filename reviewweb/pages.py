"""The pages (GET): runs, a run's worklist, a case, the run's summary, report and images."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from allscreen.policy import UNSURE
from allscreen.policy_store import InForce
from allscreen.schema import Run
from readout.cases import has_cases
from readout.review import FlaggedImage, flagged_images, require_policy
from readout.status import status_dict
from reviewweb.case_cache import CaseRowCache, RunView
from reviewweb.images import ImageUnavailable, image_location, read_image
from reviewweb.lookup import case_of, engine_of, parse_id, run_of
from reviewweb.render import render
from reviewweb.worklist import (
    CALL_FILTERS,
    REVIEWED_FILTERS,
    image_cards,
    next_case,
    run_lines,
    worklist,
)

FLAGGED_PER_PAGE = 48  #: images per page of a run without cases (each is a full card)
CASES_PER_PAGE = 250  #: worklist rows per page: a screenful or ten, and a light page
T = TypeVar("T")
KEYS = "123456789"  #: keys for the model's labels, in its order (`u` is unsure)


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str:
    value = request.query_params.get(name, allowed[0])
    if value not in allowed:
        raise HTTPException(400, f"{name} must be one of {', '.join(allowed)}; not {value[:40]!r}.")
    return value


def _paged(request: Request, items: Sequence[T], per_page: int) -> dict[str, Any]:
    """`?page=N` of `items`: the items shown, the offset of the first, page N, and the count."""
    page = parse_id(request.query_params.get("page", "1"), "page")
    start = (page - 1) * per_page
    pages = max(1, -(-len(items) // per_page))
    return {"shown": items[start : start + per_page], "start": start, "page": page, "pages": pages}


def label_keys(labels: list[str]) -> list[tuple[str, str]]:
    """(key, label) for the verdict buttons: 1..9 for the model's labels, `u` for unsure.

    A model with more than nine labels gets buttons without keys for the rest."""
    model = [x for x in labels if x != UNSURE]
    keys = [KEYS[i] if i < len(KEYS) else "" for i in range(len(model))]
    return [*zip(keys, model, strict=True), ("u", UNSURE)]


def view_of(request: Request, run: Run, in_force: InForce, *, rows: bool) -> RunView:
    """The run's labels (and case rows), kept by the app between requests."""
    cache: CaseRowCache = request.app.state.cases
    return cache.view(engine_of(request), run, in_force.policy, rows=rows, labels=True)


def _run_page(request: Request, name: str, run: Run, in_force: InForce, **context: Any) -> Response:
    """A page about one run: its template gets the run and the policy in force, described."""
    return render(request, name, run=run, policy=in_force.policy.describe(), **context)


def runs_page(request: Request) -> Response:
    """Every run, newest first."""
    return render(request, "runs.html", runs=run_lines(engine_of(request)))


def worklist_page(request: Request) -> Response:
    """A run's cases in queue order (or, without cases, its flagged images), with filters."""
    engine = engine_of(request)
    run = run_of(request)
    in_force = require_policy(engine, run)
    if not has_cases(engine, run.id):
        return _flagged_page(request, run, in_force)
    call = _choice(request, "call", CALL_FILTERS)
    reviewed = _choice(request, "reviewed", REVIEWED_FILTERS)
    cache: CaseRowCache = request.app.state.cases
    wl = worklist(cache.rows(engine, run, in_force.policy), call=call, reviewed=reviewed)
    return _run_page(
        request,
        "worklist.html",
        run,
        in_force,
        wl=wl,
        **_paged(request, wl.cases, CASES_PER_PAGE),
        call=call,
        reviewed=reviewed,
        calls=CALL_FILTERS,
        reviewed_filters=REVIEWED_FILTERS,
    )


def _flagged_page(request: Request, run: Run, in_force: InForce) -> Response:
    engine = engine_of(request)
    flagged = flagged_images(engine, run, in_force, queue=[])  # the run has no cases
    paged = _paged(request, flagged, FLAGGED_PER_PAGE)
    shown: list[FlaggedImage] = paged["shown"]
    labels = view_of(request, run, in_force, rows=False).labels or []
    cards = image_cards(
        engine, run, in_force.policy, tuple(labels), image_ids=[f.image_id for f in shown]
    )
    order = {f.image_id: i for i, f in enumerate(shown)}
    cards.sort(key=lambda c: order[c.image_id])
    reviewed = sum(1 for f in flagged if f.verdict is not None)
    context = {"cards": cards, "keys": label_keys(labels), "total": len(flagged), **paged}
    return _run_page(request, "flagged.html", run, in_force, reviewed=reviewed, **context)


def case_page(request: Request) -> Response:
    """Every image of a case as a grid, flagged first, with scores and verdict controls."""
    engine = engine_of(request)
    run = run_of(request)
    case = case_of(request, run, request.path_params.get("case_id"))
    in_force = require_policy(engine, run)
    view = view_of(request, run, in_force, rows=True)
    labels, rows = view.labels or [], list((view.rows or {}).values())
    cards = image_cards(engine, run, in_force.policy, tuple(labels), case_id=case.id)
    queue = worklist(rows, call="queue", reviewed="any")
    row = next((r for r in queue.cases if r.case_id == case.id), None)
    return _run_page(
        request,
        "case.html",
        run,
        in_force,
        case=case,
        row=row,
        cards=cards,
        flagged=sum(1 for c in cards if c.flagged),
        keys=label_keys(labels),
        wl=queue,
        next_id=next_case(queue, case.id),
    )


def summary_page(request: Request) -> Response:
    """The run's summary: `allscreen status` as a page."""
    run = run_of(request)
    return render(request, "summary.html", run=run, s=status_dict(engine_of(request), run))


async def report_download(request: Request) -> Response:
    """The run's HTML report, written by `readout.report.write_report` into a temporary file."""
    run = await run_in_threadpool(run_of, request)

    def write() -> bytes:
        from readout.report import write_report

        with tempfile.TemporaryDirectory(prefix="allscreen-report-") as tmp:
            path = Path(tmp) / "report.html"
            write_report(
                engine_of(request), run.name, path, archive_root=request.app.state.archive_root
            )
            return path.read_bytes()

    body = await run_in_threadpool(write)
    name = f"allscreen-report-run-{run.id}.html"
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def image_file(request: Request) -> Response:
    """An image of the run, by database id only: refused if it belongs to another run."""
    run = run_of(request)
    image_id = parse_id(request.path_params.get("image_id"), "image")
    found = image_location(engine_of(request), run.id, image_id)
    if found is None:
        raise HTTPException(404, f"Run {run.name} has no image with id {image_id}.")
    path, location = found
    limits = request.app.state.limits
    try:
        image = read_image(
            location,
            max_bytes=limits[0],
            max_pixels=limits[1],
            archive_root=request.app.state.archive_root,
        )
    except ImageUnavailable as exc:
        raise HTTPException(
            404, f"Image {path} of run {run.name} cannot be shown: {exc}."
        ) from None
    return Response(
        image.body,
        media_type=image.media_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )
