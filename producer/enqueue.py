"""Enqueueing: pending images stream out of SQL in batches, with a bounded window in Redis."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from allscreen.blobs import BlobStore, blob_key
from allscreen.errors import BrokerUnavailable
from allscreen.files import read_capped
from allscreen.messages import TASK_CLASSIFY, Batch, ImageItem
from allscreen.settings import Settings, mask_url
from producer.claims import claim, database_now, release
from producer.live import LiveProducers
from producer.pending import PendingRow, count_pending, pending_rows
from producer.recent import RecentBytes
from producer.register import record_failures
from producer.shrink import shrink_all
from producer.stored_paths import Locator

_POLL_SECONDS = 0.05  #: how often a full window checks for room
_UNACKED = "unacked"  #: kombu's Redis hash of messages delivered but not yet acknowledged
#: The smallest batch the tail of a run is cut into (see `Enqueuer`); below this, the ~1 ms a
#: task costs to dispatch would outweigh what an even finish saves.
TAIL_MIN_BATCH = 4


@dataclass(slots=True)
class EnqueueStats:
    """What was enqueued."""

    images: int = 0
    batches: int = 0
    failed: int = 0

    def add(self, other: EnqueueStats) -> None:
        """Count what `other` (another pass over the broker) enqueued as well."""
        self.images += other.images
        self.batches += other.batches
        self.failed += other.failed


class Publisher:
    """Sends batches to the broker, pausing while the queue holds a full window."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._conn: Any = None
        self._producer: Any = None

    def __enter__(self) -> Publisher:
        url = self._settings.effective_broker_url
        try:
            self._conn = self._app.connection_for_write()
            self._conn.ensure_connection(
                max_retries=2, interval_start=0.2, interval_step=0.5, timeout=5
            )
        except Exception as exc:  # kombu raises transport-specific errors here
            raise BrokerUnavailable(f"cannot reach the broker at {mask_url(url)}: {exc}") from exc
        self._producer = self._conn.Producer()
        return self

    def __exit__(self, *_: object) -> None:
        if self._producer is not None:
            self._producer.release()
        if self._conn is not None:
            self._conn.release()

    @property
    def client(self) -> Any:
        """The broker's redis-py client (for the blob store and the live-producer entries)."""
        return self._conn.default_channel.client

    def queue_depth(self) -> int:
        """Batches waiting in the broker's queue."""
        return int(self.client.llen(self._settings.queue))

    def broker_idle(self) -> bool:
        """True when the broker holds no batch: none queued, none reserved by a worker."""
        client = self.client
        return int(client.llen(self._settings.queue)) == 0 and int(client.hlen(_UNACKED)) == 0

    def wait_for_room(self, idle: Callable[[], None]) -> None:
        """Block while the queue already holds `max_queued_batches` batches."""
        while self.queue_depth() >= self._settings.max_queued_batches:
            idle()
            time.sleep(_POLL_SECONDS)

    def publish(self, batch: Batch) -> None:
        """Send one batch; monitors see ids and counts, never the bytes or paths.

        Image bytes go into Redis keys first (`allscreen.blobs`), so a worker never takes a
        message whose bytes are not there yet; the message names the keys. With
        `ALLSCREEN_SHIP_SIDE`, a reduced copy goes instead (`producer.shrink`).
        """
        images: list[ImageItem] = []
        blobs: list[tuple[str, bytes]] = []
        datas = [item.data for item in batch.images if item.data is not None]
        if self._settings.ship_side:
            datas = shrink_all(
                datas,
                side=self._settings.ship_side,
                max_pixels=self._settings.max_image_pixels,
            )
        shipped = iter(datas)
        for item in batch.images:
            if item.data is not None:
                key = blob_key(self._settings.queue, batch.run_id, item.id)
                blobs.append((key, next(shipped)))
                item = ImageItem(item.id, item.sha256, blob=key)
            images.append(item)
        BlobStore(self.client).put(blobs)
        self._app.send_task(
            TASK_CLASSIFY,
            args=[replace(batch, images=tuple(images)).to_message()],
            queue=self._settings.queue,
            producer=self._producer,
            argsrepr=f"({batch.describe()})",
            kwargsrepr="{}",
        )


class Enqueuer:
    """Streams a run's pending images to the broker in batches, resuming where it stopped.

    `pump` sends images in id order from a cursor, so it can run between chunks of a scan
    that is still registering images: the devices start on the first batches while the rest
    of the archive is being hashed. A batch holds `batch_size` images, or fewer when their
    bytes would exceed the message limit.

    Each batch is claimed in SQL before it is sent (`producer.claims`): an image another
    producer on the same run claimed first is left out, so no image is sent twice. A batch
    whose sending fails is released again.

    Both ends of a run are cut finer. The first batches double from `TAIL_MIN_BATCH` up to
    `batch_size`, so the first registered images already reach several devices. Once the scan
    is over (`block`), the images left are counted, and each batch takes at most
    1/`max_queued_batches` of what is still to send, down to `TAIL_MIN_BATCH` (guided
    self-scheduling). Devices then start together and finish within a small batch of each
    other, instead of one device still working through a full batch while the others idle.

    `only_new` sends only images never sent; without it, images sent before `resend_before`
    (default: now) and still without a result go out again. `live`, this producer's entry
    among the run's live producers (`producer.live`), is renewed while it sends.
    """

    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        run_id: int,
        settings: Settings,
        *,
        pin: str | None,
        only_new: bool,
        idle: Callable[[], None] = lambda: None,
        recent: RecentBytes | None = None,
        locate: Locator | None = None,
        resend_before: datetime | None = None,
        live: LiveProducers | None = None,
    ) -> None:
        self.stats = EnqueueStats()
        self._locate = locate
        self._recent = recent
        self._engine = engine
        self._publisher = publisher
        self._run_id = run_id
        self._settings = settings
        self._pin = pin
        self._only_new = only_new
        self._resend_before = (
            None if only_new else (resend_before or database_now(engine))
        )  #: claims re-take images stamped before this
        self._live = live
        self._idle = idle if live is None else _renewing(live, idle)
        self._after = 0  #: highest image id taken into a batch
        self._left: int | None = None  #: images still to send, once the scan is over
        self._rows: list[PendingRow] = []  #: the batch being filled, not yet claimed or read
        self._size = 0  #: image bytes in the batch being filled (at most max_message_bytes)
        self._failures: list[tuple[str, str]] = []

    def pump(self, *, block: bool) -> None:
        """Send pending images above the cursor. Without `block`, stop as soon as the
        broker's window is full (the scan goes on; the next call picks up from here); with
        it, wait for room and send everything, the last partial batch included."""
        s = self._settings
        if self._live is not None:
            self._live.renew()
        if not block and self._publisher.queue_depth() >= s.max_queued_batches:
            return
        if block and self._left is None:
            self._left = len(self._rows) + count_pending(
                self._engine, self._run_id, only_new=self._only_new, after=self._after
            )
        rows = pending_rows(self._engine, self._run_id, only_new=self._only_new, after=self._after)
        for row in rows:
            image_id, _sha, _stored, nbytes, _path = row
            if self._rows and (
                len(self._rows) >= self._limit() or self._size + nbytes > s.max_message_bytes
            ):
                if not block and self._publisher.queue_depth() >= s.max_queued_batches:
                    return
                self._flush()
            self._after = image_id
            self._rows.append(row)
            self._size += nbytes
        if block:
            self._flush()
            if self._failures:
                record_failures(self._engine, self._run_id, self._failures)
                self.stats.failed += len(self._failures)
                self._failures.clear()

    def _limit(self) -> int:
        """The size of the batch being filled: doubling from the smallest at the start, full
        while scanning, then shrinking towards the end."""
        s = self._settings
        floor = min(s.batch_size, TAIL_MIN_BATCH)
        ramp = TAIL_MIN_BATCH << min(self.stats.batches, 16)
        if self._left is None:
            return max(floor, min(s.batch_size, ramp))
        share = math.ceil(self._left / s.max_queued_batches)
        return max(floor, min(s.batch_size, share, ramp))

    def _flush(self) -> None:
        if not self._rows:
            return
        self._publisher.wait_for_room(self._idle)
        rows, self._rows, self._size = self._rows, [], 0
        if self._left is not None:
            self._left -= len(rows)
        mine = claim(
            self._engine, self._run_id, [r[0] for r in rows], resend_before=self._resend_before
        )
        items: list[ImageItem] = []
        for image_id, sha, stored, nbytes, path in rows:
            if image_id not in mine:  # another producer sent it, or it has a result by now
                continue
            location = stored if self._locate is None else self._locate(stored, path)
            item, error = _load(image_id, sha, location, nbytes, self._settings, self._recent)
            if error is not None:
                self._failures.append((sha, error))
                continue
            assert item is not None
            items.append(item)
        if not items:
            return
        ids = [i.id for i in items]
        try:
            self._publisher.publish(Batch(self._run_id, time.time(), tuple(items), self._pin))
        except BaseException:
            release(self._engine, self._run_id, ids)
            raise
        self.stats.images += len(ids)
        self.stats.batches += 1


def enqueue(
    engine: Engine,
    publisher: Publisher,
    run_id: int,
    settings: Settings,
    *,
    pin: str | None,
    only_new: bool,
    idle: Callable[[], None] = lambda: None,
    locate: Locator | None = None,
) -> EnqueueStats:
    """Enqueue all of the run's pending images, waiting for room in the broker's window.

    `locate` finds each stored image's file (`producer.stored_paths`); by default, its stored
    location is read as it is."""
    enqueuer = Enqueuer(
        engine, publisher, run_id, settings, pin=pin, only_new=only_new, idle=idle, locate=locate
    )
    enqueuer.pump(block=True)
    return enqueuer.stats


def _renewing(live: LiveProducers, idle: Callable[[], None]) -> Callable[[], None]:
    """`idle`, renewing the producer's live entry first (a full window can last minutes)."""

    def both() -> None:
        live.renew()
        idle()

    return both


def _load(
    image_id: int,
    sha: str,
    location: bytes | None,
    nbytes: int,
    settings: Settings,
    recent: RecentBytes | None = None,
) -> tuple[ImageItem | None, str | None]:
    if nbytes > settings.max_image_bytes:
        return None, f"file is {nbytes} bytes, over the {settings.max_image_bytes}-byte limit"
    if settings.transport != "path" and nbytes > settings.max_message_bytes:
        return (
            None,
            f"file is {nbytes} bytes, over the {settings.max_message_bytes}-byte batch limit",
        )
    if location is None:  # a hashed run's image that no walked file's hash matched
        return None, "no file under the archive root matches its keyed path hash"
    if settings.transport == "path":
        return ImageItem(image_id, sha, path=location.decode("utf-8", "surrogateescape")), None
    kept = None if recent is None else recent.take(sha)
    if kept is not None:  # the very bytes that were hashed at registration
        return ImageItem(image_id, sha, data=kept), None
    try:
        data = read_capped(location, settings.max_image_bytes)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if hashlib.sha256(data).hexdigest() != sha:
        return None, "file changed since it was registered (sha256 differs)"
    return ImageItem(image_id, sha, data=data), None
