"""Documented defaults. Every tunable number in allscreen starts here."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  #: the checkout (or site-packages) root

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"  #: a local Redis, as on most dev machines
DEFAULT_DATABASE_URL = "sqlite:///allscreen.db"  #: embedded SQLite in the working directory
DEFAULT_MODEL = REPO_ROOT / "model" / "allscreen-all.eim"  #: the reference model's runner

#: Images per task (at most; the tail of a run is cut finer, see producer.enqueue). A task
#: costs a few ms of dispatch, bookkeeping and SQL whatever its size, and the network under
#: 1 ms per image, so batches amortise it: 128 beat 32 and 64 on one machine and on an
#: emulated fleet (BENCHMARKS.md, sections 2 and 3).
DEFAULT_BATCH_SIZE = 128
#: Batches waiting in the broker before the producer pauses: keeps Redis memory flat.
DEFAULT_MAX_QUEUED_BATCHES = 16
#: A message larger than this is split; a single image larger than it is refused.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Files larger than this are recorded as failed without decoding.
DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
#: Images whose header declares more pixels than this are refused (decompression bombs).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
#: Seconds the model may take to create its socket and answer `hello`.
DEFAULT_MODEL_START_TIMEOUT = 20.0
#: Seconds one classification may take before the model counts as hung and is restarted.
DEFAULT_MODEL_TIMEOUT = 10.0
#: Attempts per image when the model dies or hangs on it, before it is recorded as failed.
DEFAULT_MODEL_ATTEMPTS = 3
#: Seconds before an unacknowledged message returns to the queue (Redis transport).
DEFAULT_VISIBILITY_TIMEOUT = 600.0
#: Seconds a worker keeps retrying a result write while the database is unreachable.
DEFAULT_DB_RETRY_SECONDS = 300.0
#: How long `submit` waits for a lost broker before it stops (the run is saved either way).
DEFAULT_BROKER_RETRY_SECONDS = 300.0
#: Deliveries of one batch that ended with its worker process dying, before its images are
#: recorded as failed (a poison image must not crash workers forever).
DEFAULT_MAX_DELIVERIES = 3
QUEUE_NAME = "allscreen"  #: the Celery queue that carries classification batches
#: Where `allscreen flower` and `allscreen metrics` listen: loopback, so nothing is exposed
#: until an operator chooses an address (Flower then insists on authentication).
DEFAULT_MONITOR_ADDRESS = "127.0.0.1"
DEFAULT_FLOWER_PORT = 5555  #: Flower's usual port
DEFAULT_FLOWER_DB = "flower.db"  #: Flower's `--persistent` state file, in the working directory
DEFAULT_METRICS_PORT = 9808  #: `allscreen metrics`, the Prometheus exporter
DEFAULT_RATE_WINDOW = 60.0  #: seconds over which `allscreen_images_per_second` is measured
#: Seconds an image's bytes may wait in Redis for a worker before Redis drops them. Workers
#: delete them once their results are committed; this only bounds what a purged queue or a
#: lost message leaves behind. An image whose bytes expired stays pending, and `allscreen
#: resume` (or `submit --wait`'s stall recovery) sends it again.
DEFAULT_BLOB_TTL = 7 * 24 * 3600.0

#: Images a worker decodes ahead, in background threads, while the model classifies (at
#: least one per decode thread, `ALLSCREEN_DECODE_THREADS`), where it decodes ahead at all:
#: unless `ALLSCREEN_PREFETCH` says otherwise, only where the worker's pool processes leave a
#: core free (`worker.prefetch.decode_ahead`). Overlap pays where the model runs on its own
#: silicon (a Jetson's GPU) or a spare core; on cores every pool process and its model keep
#: busy, it only adds thread hand-offs (BENCHMARKS.md, section 2).
DEFAULT_PREFETCH = 2

#: Memory for just-registered files' bytes that `submit` keeps for its enqueuer
#: (producer/recent.py), so a file is read and hashed once: a register chunk of 500 typical
#: 24 KB images is 12 MB.
DEFAULT_RECENT_BYTES = 16 * 1024 * 1024
#: Seconds before a batch returns to the queue when the model cannot start on a device.
MODEL_RETRY_COUNTDOWN = 5.0
#: Retries of a batch whose model cannot start, before its images are recorded failed.
MODEL_START_RETRIES = 3
#: Seconds before a batch returns after a database outage longer than the write retries.
DB_RETRY_COUNTDOWN = 30.0
#: Seconds a device holding the wrong model waits before handing a pinned batch back, so it
#: does not spin on a queue that holds only that run's batches.
MISMATCH_PAUSE_SECONDS = 2.0
#: Seconds without progress before `submit --wait` counts an idle broker as having lost work.
RECOVER_AFTER_SECONDS = 5.0

#: Decode a JPEG at reduced scale (libjpeg's DCT scaling) when the model needs far fewer
#: pixels than it holds (allscreen/reduced.py; BENCHMARKS.md, section 9).
DEFAULT_REDUCED_DECODE = True
#: How many times the model's input, on each side, a reduced decode must keep: INTER_AREA then
#: still averages at least 2x2 decoded pixels into each input pixel.
DEFAULT_DECODE_MARGIN = 2.0
#: Shorter side, in pixels, the producer reduces images to before shipping them through Redis
#: (bytes transport only); 0 ships every file as it is (BENCHMARKS.md, section 9).
DEFAULT_SHIP_SIDE = 0
#: JPEG quality of the reduced copies the producer ships.
SHIP_JPEG_QUALITY = 95
