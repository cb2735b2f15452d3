"""Classifying one batch: a plain typed function, testable without Celery."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from sqlalchemy import Engine

from allscreen.blobs import BlobStore
from allscreen.errors import ImageRejected, ModelCrashed, ModelMismatch, ModelRefused
from allscreen.files import read_capped
from allscreen.messages import Batch, ImageItem
from allscreen.models_seen import record_model
from allscreen.refusals import record_refusal
from allscreen.results import ResultRow, upsert_results
from allscreen.retry import with_db_retry
from allscreen.schema import STATUS_DONE, STATUS_FAILED
from allscreen.settings import Settings
from worker import blob_io
from worker.features import Features
from worker.prefetch import decode_ahead, decode_threads, pool_processes, prepared, shared_pool
from worker.prepare import features_of
from worker.session import ModelInfo, ModelSession
from worker.store import attempts_alone, begin_batch, note_attempt_alone
from worker.suspects import over_delivered, plan_delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of a batch's images."""

    done: int
    failed: int
    skipped: int
    missing: int = 0  #: bytes gone from Redis: left pending for `resume`, no row written


def _now() -> datetime:
    return datetime.now(UTC)


def read_shared_path(path: str, max_bytes: int) -> bytes:
    """Read an image from a shared mount (the `path` transport)."""
    try:
        data = read_capped(path, max_bytes)
    except OSError as exc:
        raise ImageRejected(f"cannot read file: {exc.strerror or exc}") from exc
    return data


def run_batch(
    batch: Batch,
    *,
    session: ModelSession,
    engine: Engine,
    device: str,
    settings: Settings,
    reader: Callable[[str, int], bytes] = read_shared_path,
    blobs: BlobStore | None = None,
) -> BatchOutcome:
    """Classify every image of `batch` that has no result yet, then upsert all rows at once.

    Images whose bytes wait in Redis (`blob`) are fetched from `blobs` in one round trip,
    started while the delivery is counted in SQL, and their keys deleted in the background
    once the rows are committed (`worker.blob_io`).

    A batch of a run pinned to another model is refused before anything is counted or the
    model is even started: the refusal is recorded and ModelMismatch raised, so the task can
    hand the batch back to the queue for a device that holds the pinned model.
    """
    if batch.model_sha256 and batch.model_sha256 != session.sha256:
        refuse_batch(batch, session=session, engine=engine, device=device, settings=settings)
    ids = [img.id for img in batch.images]
    fetched = blob_io.fetch_ahead(batch, blobs)
    done_ids, deliveries = with_db_retry(
        lambda: begin_batch(engine, batch.run_id, ids), seconds=settings.db_retry_seconds
    )
    info = session.info
    queued = datetime.fromtimestamp(batch.queued_at, UTC)

    def new_row(item: ImageItem) -> ResultRow:
        return ResultRow(
            batch.run_id,
            item.id,
            STATUS_FAILED,
            device,
            _now(),
            queued_at=queued,
            model_sha256=info.sha256,
            model_name=info.name,
            model_version=info.version,
        )

    isolated = over_delivered(batch.images, done_ids, deliveries, settings.max_deliveries)
    plan = plan_delivery(
        batch.images,
        done_ids,
        isolated=isolated,
        attempts_alone=(
            with_db_retry(lambda: attempts_alone(engine, ids), seconds=settings.db_retry_seconds)
            if isolated
            else {}
        ),
    )
    rows: list[ResultRow] = []
    for item, deaths in plan.blamed:
        row = new_row(item)
        row.error = (
            f"a worker process died {deaths} times while classifying this image alone "
            f"(its batch was delivered {deliveries.get(item.id, 0) - 1} times); given up"
        )
        rows.append(row)
    todo, missing = _fetch_blobs(plan.todo, blobs, fetched)
    written: list[ResultRow] = []

    def commit(pending: list[ResultRow]) -> None:
        """Write `pending` (one transaction) and move them to `written`."""
        now = list(pending)
        with_db_retry(lambda: upsert_results(engine, now), seconds=settings.db_retry_seconds)
        written.extend(now)
        pending.clear()

    def prepare(item: ImageItem) -> Features:
        if plan.isolated:
            with_db_retry(
                lambda: note_attempt_alone(engine, item.id), seconds=settings.db_retry_seconds
            )
        return _features(item, info=info, settings=settings, reader=reader)

    # Decoding the next images overlaps with the model classifying this one where the device
    # has a core to spare (worker.prefetch.decode_ahead). An isolated batch decodes nothing
    # ahead: the image in flight when a process dies must be the one it was classifying.
    threads = decode_threads(settings.decode_threads)
    ahead = decode_ahead(settings.prefetch, threads, pool_processes())
    if plan.isolated:
        commit(rows)
        ahead = 0
    for ready in prepared(todo, prepare, pool=shared_pool(threads), ahead=ahead):
        row = new_row(ready.item)
        row.started_at = ready.started_at
        if ready.value is None:
            row.error = ready.error
        else:
            row.decode_ms = ready.prepare_ms
            _classify(ready.item.id, ready.value, row, session=session, settings=settings)
        row.finished_at = _now()
        rows.append(row)
        if plan.isolated:
            commit(rows)
    commit(rows)
    rows = written
    if any(r.status == STATUS_DONE for r in rows):
        with_db_retry(
            lambda: record_model(
                engine,
                sha256=info.sha256,
                name=info.name,
                version=info.version,
                labels=info.labels,
                thresholds=info.thresholds,
            ),
            seconds=settings.db_retry_seconds,
        )
    drop_blobs(batch, blobs)
    done = sum(r.status == STATUS_DONE for r in rows)
    return BatchOutcome(done=done, failed=len(rows) - done, skipped=len(done_ids), missing=missing)


def _fetch_blobs(
    items: list[ImageItem],
    blobs: BlobStore | None,
    fetched: Future[dict[str, bytes | None]] | None = None,
) -> tuple[list[ImageItem], int]:
    """`items` with the bytes of those that wait in Redis filled in, and how many are gone.

    The bytes come from `fetched` (`blob_io.fetch_ahead`) when given, else from one MGET now.
    An image whose bytes are gone (expired, or Redis restarted without them) gets no row:
    it stays pending in SQL, and `resume` or `submit --wait` sends it again.
    """
    keys = [i.blob for i in items if i.blob is not None]
    if not keys:
        return items, 0
    if blobs is None:
        raise ValueError("a batch names Redis keys, but no blob store was given")
    found = fetched.result() if fetched else dict(zip(keys, blobs.get(keys), strict=True))
    out: list[ImageItem] = []
    for item in items:
        if item.blob is None:
            out.append(item)
        elif (data := found[item.blob]) is not None:
            out.append(ImageItem(item.id, item.sha256, data=data))
        else:
            log.warning(
                "image %d: its bytes are no longer in Redis (%s); it stays pending, and "
                "`allscreen resume` sends it again",
                item.id,
                item.blob,
            )
    return out, len(items) - len(out)


def drop_blobs(batch: Batch, blobs: BlobStore | None) -> None:
    """Delete the batch's Redis keys in the background: call only once its rows are committed."""
    keys = [i.blob for i in batch.images if i.blob is not None]
    if keys and blobs is not None:
        blob_io.delete_later(blobs, keys)


def refuse_batch(
    batch: Batch, *, session: ModelSession, engine: Engine, device: str, settings: Settings
) -> NoReturn:
    """Record that this device refused a pinned run's batch, then raise ModelMismatch."""
    assert batch.model_sha256 is not None
    with_db_retry(
        lambda: record_refusal(
            engine,
            batch.run_id,
            device=device,
            model_sha256=session.sha256,
            model_file=str(session.model_path),
        ),
        seconds=settings.db_retry_seconds,
    )
    raise ModelMismatch(
        f"run {batch.run_id} is pinned to model {batch.model_sha256[:12]}; device {device} "
        f"holds {session.sha256[:12]} ({session.model_path})"
    )


def _features(
    item: ImageItem,
    *,
    info: ModelInfo,
    settings: Settings,
    reader: Callable[[str, int], bytes],
) -> Features:
    """Bytes (or a shared path) to model features; ImageRejected says why not."""
    if item.data is not None:
        data = item.data
    else:
        assert item.path is not None
        data = reader(item.path, settings.max_image_bytes)
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise ImageRejected("file changed since it was registered (sha256 differs)")
    return features_of(data, info=info, settings=settings)


def _classify(
    image_id: int,
    features: Features,
    row: ResultRow,
    *,
    session: ModelSession,
    settings: Settings,
) -> None:
    try:
        pred = session.classify(features)
    except ModelCrashed as exc:
        row.error, row.attempts = str(exc), settings.model_attempts
        log.error("image %d failed: %s", image_id, exc)
        return
    except ModelRefused as exc:  # an answer about this image: the model itself is fine
        row.error = f"the model refused the image: {exc}"
        log.error("image %d failed: %s", image_id, row.error)
        return
    row.status, row.label = STATUS_DONE, pred.label
    row.confidence = pred.scores[pred.label]
    row.scores = json.dumps(pred.scores, sort_keys=True)
    row.inference_ms, row.attempts = pred.inference_ms, pred.attempts


def record_batch_failed(
    batch: Batch,
    reason: str,
    *,
    engine: Engine,
    device: str,
    settings: Settings,
    blobs: BlobStore | None = None,
) -> BatchOutcome:
    """Record every image of `batch` without a result as failed with `reason`."""
    finished = _now()
    rows = [
        ResultRow(batch.run_id, img.id, STATUS_FAILED, device, finished, error=reason)
        for img in batch.images
    ]
    with_db_retry(lambda: upsert_results(engine, rows), seconds=settings.db_retry_seconds)
    drop_blobs(batch, blobs)
    return BatchOutcome(done=0, failed=len(rows), skipped=0)
