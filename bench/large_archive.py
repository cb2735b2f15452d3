"""(4) A large archive: producer scan and enqueue rates, producer and Redis memory, writes.

For each size (default 50,000 and 200,000 tiny distinct PNGs, generated once under /tmp in
folders of 10,000 and reused by every repeat), on a fresh database and an embedded Redis
with K stub workers (`bench/stub.eim`: the real `.eim` server, constant classifier), the
producer runs as a subprocess (`python -m allscreen submit SHARD... --run big`), so that its
peak RSS can be read from `wait4`. Meanwhile Redis `INFO memory`, the queue's `LLEN` and the
`unacked` hash are polled. The producer's own stderr lines give the scan+register and the
enqueue rates; the run is then watched to its end. Afterwards the result-write micro-benchmark
(`bench.result_writes`) runs. Run:
    .venv/bin/python -m bench.large_archive [--sizes 50000 200000] [--repeats R]
        [--database postgresql|sqlite] [--workers K] [--profile N] [--with-writes]
        [--analyze-every S]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import cv2
import numpy as np
import redis
from sqlalchemy import Engine, func, select

from allscreen.db import ensure_schema, make_engine
from allscreen.defaults import REPO_ROOT
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group
from allscreen.schema import Result, Run
from allscreen.settings import Settings, settings_env
from bench.common import machine, median, start_worker
from bench.result_writes import PG_ADMIN_URL, database, run_write_benchmark
from producer.submit import watch

STUB_MODEL = REPO_ROOT / "bench" / "stub.eim"
SHARD = 10_000  #: images per folder of the synthetic archive
WARM_IMAGES = 256  #: images of the warm-up run (starts every worker's model; producer baseline)
_POLL = 0.1  #: seconds between samples of Redis and the producer's memory
_WARM_OFFSET = 1 << 30  #: image indices of the warm-up folder, apart from the archive's
_MB = 1024 * 1024

_REGISTERED = re.compile(
    r"registered (\d+) new images from (\d+) files in ([\d.]+) s \((\d+) files/s\)"
)
_ENQUEUED = re.compile(r"enqueued (\d+) images in (\d+) batches in ([\d.]+) s")


# --- the synthetic archive -------------------------------------------------------------------


def tiny_png(index: int) -> bytes:
    """An 8x8 RGB PNG whose pixels spell `index`, so every image has distinct content."""
    px = np.zeros((8, 8, 3), dtype=np.uint8)
    px[:, :, 0] = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3  # a smear-ish gradient
    px[:, :, 1] = 90
    px[:, :, 2] = 160
    px[0, :, 1] = np.frombuffer(index.to_bytes(8, "little"), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", px)
    assert ok
    return bytes(buf.tobytes())


def write_folder(folder: Path, indices: range) -> None:
    """Write one image per index into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        with open(folder / f"img-{i:09d}.png", "wb") as fh:
            fh.write(tiny_png(i))


def archive_shards(root: Path, n: int) -> list[Path]:
    """The folders holding the first `n` archive images, generating the missing ones.

    A folder is complete once its marker exists (outside the folder, so the scanner never sees
    it); an interrupted folder is written again.
    """
    if n % SHARD:
        raise SystemExit(f"archive sizes must be multiples of {SHARD}, not {n}")
    shards = []
    for s in range(n // SHARD):
        folder = root / f"shard-{s:03d}"
        done = root / f"shard-{s:03d}.complete"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            write_folder(folder, range(s * SHARD, (s + 1) * SHARD))
            done.touch()
        shards.append(folder)
    return shards


# --- sampling the producer and Redis ---------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int | None:
    """A `VmRSS`-style field of /proc/PID/status in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(slots=True)
class Samples:
    """What the sampler saw while the producer ran."""

    redis_used_max: int = 0  #: bytes
    llen_max: int = 0
    unacked_max: int = 0
    rss_at_registered_kb: int = 0  #: the producer's RSS when it printed "registered ..."
    n: int = 0
    empty: int = 0  #: samples that found the queue empty (the workers waiting on the producer)


class Sampler(threading.Thread):
    """Polls Redis memory, the queue, the unacked hash and the producer's RSS."""

    def __init__(self, url: str, queue: str, pid: int, stderr: Path) -> None:
        super().__init__(daemon=True)
        self.samples = Samples()
        self._client = redis.Redis.from_url(url)
        self._queue = queue
        self._pid = pid
        self._stderr = stderr
        self._halt = threading.Event()

    def run(self) -> None:
        """Sample every `_POLL` seconds until stopped."""
        s = self.samples
        while not self._halt.is_set():
            pipe = self._client.pipeline(transaction=False)
            pipe.info("memory")
            pipe.llen(self._queue)
            pipe.hlen("unacked")
            mem, llen, unacked = pipe.execute()
            s.redis_used_max = max(s.redis_used_max, int(mem["used_memory"]))
            s.llen_max = max(s.llen_max, int(llen))
            s.unacked_max = max(s.unacked_max, int(unacked))
            s.empty += int(llen) == 0
            if not s.rss_at_registered_kb and b"registered " in self._stderr.read_bytes():
                s.rss_at_registered_kb = proc_status_kb(self._pid, "VmRSS") or 0
            s.n += 1
            self._halt.wait(_POLL)

    def stop(self) -> Samples:
        """Stop sampling; the samples."""
        self._halt.set()
        self.join()
        self._client.close()
        return self.samples


# --- one producer run ------------------------------------------------------------------------


@dataclass(slots=True)
class ProducerRun:
    """One `allscreen submit` subprocess, measured."""

    files: int
    registered: int
    register_s: float
    enqueued: int
    batches: int
    enqueue_s: float
    wall_s: float  #: process start to exit, imports included
    cpu_s: float  #: user + system CPU of the producer process
    peak_rss_kb: int  #: ru_maxrss from wait4 (VmHWM)
    samples: Samples = field(default_factory=Samples)
    redis_base: int = 0  #: Redis used_memory before the producer started, bytes
    redis_peak: int = 0  #: INFO used_memory_peak after the run, bytes
    end_to_end: float = 0.0  #: images/s, producer start to the last result committed
    stderr: str = ""

    @property
    def register_rate(self) -> float:
        """Files scanned, hashed and registered per second."""
        return self.files / max(self.register_s, 1e-9)

    @property
    def enqueue_rate(self) -> float:
        """Images enqueued per second (bounded by how fast the workers drain the window)."""
        return self.enqueued / max(self.enqueue_s, 1e-9)


def run_producer(
    paths: list[Path],
    settings: Settings,
    run: str,
    log_dir: Path,
    *,
    wrap: list[str] | None = None,
) -> ProducerRun:
    """`python -m allscreen submit PATHS --run RUN` as a subprocess, sampled until it exits.

    `wrap` prefixes the command (a profiler); peak RSS is then the wrapper's and the child's.
    """
    err_path = log_dir / f"producer-{run}-{time.time_ns()}.err"
    env = {**os.environ, **settings_env(settings)}
    cmd = [*(wrap or [sys.executable]), "-m", "allscreen", "submit", *map(str, paths)]
    client = redis.Redis.from_url(settings.effective_broker_url)
    base = int(client.info("memory")["used_memory"])
    with err_path.open("wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [*cmd, "--run", run], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    sampler = Sampler(settings.effective_broker_url, settings.queue, proc.pid, err_path)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    samples = sampler.stop()
    peak_redis = int(client.info("memory")["used_memory_peak"])
    client.close()
    text = err_path.read_text(errors="replace")
    reg, enq = _REGISTERED.search(text), _ENQUEUED.search(text)
    if proc.returncode != 0 or reg is None or enq is None:
        raise SystemExit(f"producer failed ({proc.returncode}):\n{text[-3000:]}")
    return ProducerRun(
        files=int(reg.group(2)),
        registered=int(reg.group(1)),
        register_s=float(reg.group(3)),
        enqueued=int(enq.group(1)),
        batches=int(enq.group(2)),
        enqueue_s=float(enq.group(3)),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_kb=usage.ru_maxrss,
        samples=samples,
        redis_base=base,
        redis_peak=peak_redis,
        stderr=text,
    )


# --- one size, end to end --------------------------------------------------------------------


@dataclass(slots=True)
class SizeRun:
    """The warm-up (baseline) and the measured run of one archive size."""

    size: int
    warm: ProducerRun
    big: ProducerRun


@dataclass(slots=True)
class Pipeline:
    """A running pipeline: its settings, its worker processes, and a way to await a run."""

    settings: Settings
    workers: list[subprocess.Popen[bytes]]
    finish: Callable[[str], float]  #: watch a run to its end; the epoch time of its last result


#: Seconds between `ANALYZE images, results` during a PostgreSQL run (`--analyze-every`), as
#: autovacuum would do; 0: never (this machine's PostgreSQL runs without autovacuum).
ANALYZE_EVERY = {"seconds": 0.0}


@contextmanager
def _analyzing(engine: Engine) -> Iterator[None]:
    """Refresh the planner's statistics every ANALYZE_EVERY seconds while the block runs."""
    every = ANALYZE_EVERY["seconds"]
    if every <= 0 or engine.dialect.name != "postgresql":
        yield
        return
    halt = threading.Event()

    def loop() -> None:
        while not halt.wait(every):
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE images, results")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        halt.set()
        thread.join()


@contextmanager
def pipeline(kind: str, workdir: Path, workers: int, log_dir: Path) -> Iterator[Pipeline]:
    """A fresh database, an embedded Redis and `workers` stub workers, torn down afterwards."""
    with database(kind, workdir, PG_ADMIN_URL) as url, EmbeddedRedis() as broker:
        settings = Settings(broker_url=broker.url, database_url=url, model=STUB_MODEL)
        engine = make_engine(url)
        ensure_schema(engine, create=True)

        env = {"ALLSCREEN_EIM_PYTHON": sys.executable}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(workers):
                log = log_dir / f"worker-stub-{i + 1}-{time.time_ns()}.log"
                procs.append(start_worker(settings, f"stub-{i + 1}", 1, env=env, log=log))

            def finish(run: str) -> float:
                watch(run, settings, err=io.StringIO())
                with engine.connect() as conn:
                    last = conn.scalar(
                        select(func.max(Result.finished_at))
                        .join(Run, Run.id == Result.run_id)
                        .where(Run.name == run)
                    )
                assert last is not None
                return last.replace(tzinfo=UTC).timestamp()

            with _analyzing(engine):
                yield Pipeline(settings, procs, finish)
        finally:
            for p in procs:
                stop_group(p)
            engine.dispose()


def measure_size(
    shards: list[Path], warm: Path, kind: str, workers: int, workdir: Path, log_dir: Path
) -> SizeRun:
    """Warm up (a small run through the same subprocess path), then the measured run."""
    with pipeline(kind, workdir, workers, log_dir) as p:
        w = run_producer([warm], p.settings, "warm-up", log_dir)
        p.finish("warm-up")
        t0 = time.time()
        big = run_producer(shards, p.settings, "big", log_dir)
        last = p.finish("big")
        big.end_to_end = big.registered / (last - t0)
    return SizeRun(len(shards) * SHARD, w, big)


def enqueue_ceiling(shards: list[Path], kind: str, workdir: Path, log_dir: Path) -> ProducerRun:
    """The producer alone: no workers and an unbounded window, so nothing makes it wait.

    Its enqueue rate is then the producer's own ceiling, and Redis holds every batch at once:
    what the bounded window saves.
    """
    with database(kind, workdir, PG_ADMIN_URL) as url, EmbeddedRedis() as broker:
        settings = Settings(broker_url=broker.url, database_url=url, max_queued_batches=10**9)
        engine = make_engine(url)
        try:
            ensure_schema(engine, create=True)
            return run_producer(shards, settings, "ceiling", log_dir)
        finally:
            engine.dispose()


def profile_size(
    shards: list[Path], warm: Path, kind: str, workers: int, workdir: Path, log_dir: Path
) -> tuple[Path, Path | None]:
    """One extra, unmeasured run with the producer under pyinstrument and py-spy on a worker.

    Returns the pyinstrument text profile and the py-spy collapsed stacks (None without
    py-spy). Profiling slows what it watches, so none of these figures enter the tables.
    """
    prof = log_dir / "producer.pyinstrument.txt"
    spy_out = log_dir / "worker.pyspy.txt"
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    with pipeline(kind, workdir, workers, log_dir) as p:
        run_producer([warm], p.settings, "warm-up", log_dir)
        p.finish("warm-up")
        spy_proc = None
        if spy is not None:  # the first worker: its main process, pool child and model
            spy_cmd = [spy, "record", "--pid", str(p.workers[0].pid), "--subprocesses"]
            spy_cmd += ["--format", "raw", "--rate", "200", "--nonblocking", "-o", str(spy_out)]
            spy_proc = subprocess.Popen(
                spy_cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        session = log_dir / "producer.pyisession"
        wrap = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session)]
        run_producer(shards, p.settings, "big", log_dir, wrap=wrap)
        p.finish("big")
        if spy_proc is not None:
            spy_proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy_proc.wait(60)
    render = [sys.executable, "-m", "pyinstrument", "--load", str(session), "--no-color"]
    render += ["--no-unicode", "-r", "text"]
    subprocess.run([*render, "-o", str(prof)], check=True)
    subprocess.run([*render, "--show-all", "-o", str(prof.with_suffix(".all.txt"))], check=True)
    return prof, (spy_out if spy_out.exists() else None)


#: Frames of the producer's full profile quoted in the report (what each phase spends).
KEY_FRAMES = (
    "register ",
    "_insert ",
    "hash_file ",
    "scan ",
    "enqueue ",
    "wait_for_room ",
    "sleep ",
    "publish ",
    "pending_images ",
    "_load ",
    "_compile_w_cache ",
    "do_execute ",
)


def key_lines(full_profile: Path, depth: int = 14) -> list[str]:
    """Lines of a `--show-all` pyinstrument text profile for KEY_FRAMES, first occurrences."""
    out = []
    for line in full_profile.read_text().splitlines():
        body = line.lstrip(" |`-")
        parts = body.split(" ", 2)
        if len(parts) < 2 or not re.fullmatch(r"[\d.]+", parts[0]):
            continue
        indent = len(line) - len(body)
        name = parts[1].split(".")[-1] + " "
        if name in KEY_FRAMES and indent <= depth * 3 + 20:
            out.append(line.rstrip())
    return out


def code_fingerprint() -> str:
    """The commit and a digest of the working tree's Python code that the processes run.

    Other people edit the same tree: a change between the start and the end of a benchmark
    means its repeats ran different code.
    """
    digest = hashlib.sha256()
    files = [
        p for pkg in ("allscreen", "producer", "worker") for p in (REPO_ROOT / pkg).glob("*.py")
    ]
    files += [*(REPO_ROOT / "model").glob("eim_*.py"), REPO_ROOT / "model" / "pin.py"]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + path.read_bytes())
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"commit {head or '?'}, code {digest.hexdigest()[:12]}"


# --- reporting -------------------------------------------------------------------------------


#: Functions whose share of the worker's task time the py-spy summary reports, besides the
#: direct callees of `run_batch` (whatever the worker's code calls them).
TASK_PARTS = (
    "begin_batch (worker/store.py",
    "ModelSession.classify (worker/session.py",
    "upsert_results (allscreen/results.py",
    "ClauseElement._compile_w_cache (sqlalchemy/sql/elements.py",
    "Connection.wait (psycopg/connection.py",
)
_IN_UPSERT = TASK_PARTS[3:]  #: counted only inside `upsert_results`
_RUN_BATCH = "run_batch (worker/batch.py"


def task_shares(path: Path, root: str = "classify_batch (worker/tasks.py") -> list[str]:
    """Share of the task's samples per direct callee of `run_batch` and per TASK_PARTS entry,
    from py-spy collapsed stacks (`--format raw`)."""
    total = 0
    parts = dict.fromkeys(TASK_PARTS, 0)
    callees: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or root not in stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for i, frame in enumerate(frames[:-1]):
            if frame.startswith(_RUN_BATCH):
                callee = re.sub(r":\d+\)$", ")", frames[i + 1])
                callees[callee] = callees.get(callee, 0) + n
                break
        in_upsert = False
        hit: set[str] = set()
        for frame in frames:
            in_upsert = in_upsert or frame.startswith(TASK_PARTS[2])
            for part in TASK_PARTS:
                if frame.startswith(part) and part not in hit:
                    if part in _IN_UPSERT and not in_upsert:
                        continue
                    hit.add(part)
                    parts[part] += n
    lines = [f"{total} samples in `classify_batch`; direct callees of run_batch:"]
    for callee, n in sorted(callees.items(), key=lambda kv: -kv[1])[:6]:
        lines.append(f"{100 * n / max(total, 1):5.1f}%  {callee}")
    lines.append("within them:")
    for part, n in parts.items():
        name = part.split(" (")[0]
        where = " (inside upsert_results)" if part in _IN_UPSERT else ""
        lines.append(f"{100 * n / max(total, 1):5.1f}%  {name}{where}")
    return lines


def print_tables(runs: dict[int, list[SizeRun]], out: Callable[[str], None]) -> None:
    """The per-size table (medians) and the flatness ratios of the largest size to the smallest."""
    mb = _MB

    def med(size: int, f: Callable[[SizeRun], float]) -> float:
        return median([f(r) for r in runs[size]])

    out(
        "| files | scan+register files/s | enqueue img/s | end-to-end img/s | "
        "producer CPU µs/image | producer peak RSS MB | producer RSS after register MB | "
        "Redis used_memory peak MB (baseline) | max LLEN | max unacked | repeats |"
    )
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, rs in runs.items():
        out(
            f"| {size:,} | {med(size, lambda r: r.big.register_rate):.0f} | "
            f"{med(size, lambda r: r.big.enqueue_rate):.0f} | "
            f"{med(size, lambda r: r.big.end_to_end):.0f} | "
            f"{med(size, lambda r: r.big.cpu_s * 1e6 / r.size):.0f} | "
            f"{med(size, lambda r: r.big.peak_rss_kb / 1024):.1f} | "
            f"{med(size, lambda r: r.big.samples.rss_at_registered_kb / 1024):.1f} | "
            f"{med(size, lambda r: r.big.redis_peak / mb):.2f} "
            f"({med(size, lambda r: r.big.redis_base / mb):.2f}) | "
            f"{max(r.big.samples.llen_max for r in rs)} | "
            f"{max(r.big.samples.unacked_max for r in rs)} | {len(rs)} |"
        )
    for size, rs in runs.items():
        out(
            f"runs at {size:,}: register files/s "
            + " ".join(f"{r.big.register_rate:.0f}" for r in rs)
            + "; enqueue img/s "
            + " ".join(f"{r.big.enqueue_rate:.0f}" for r in rs)
            + "; end-to-end img/s "
            + " ".join(f"{r.big.end_to_end:.0f}" for r in rs)
            + "; producer peak RSS MB "
            + " ".join(f"{r.big.peak_rss_kb / 1024:.1f}" for r in rs)
            + f"; warm-up ({WARM_IMAGES} images) producer peak RSS MB "
            + " ".join(f"{r.warm.peak_rss_kb / 1024:.1f}" for r in rs)
        )
    sizes = sorted(runs)
    if len(sizes) < 2:
        return
    lo, hi = sizes[0], sizes[-1]

    def ratio(f: Callable[[SizeRun], float]) -> float:
        return med(hi, f) / med(lo, f)

    out(
        f"{hi:,} vs {lo:,} ({hi / lo:.0f}x the images): producer peak RSS "
        f"{ratio(lambda r: r.big.peak_rss_kb):.2f}x, Redis used_memory peak "
        f"{ratio(lambda r: r.big.redis_peak):.2f}x, Redis peak above baseline "
        f"{ratio(lambda r: max(r.big.redis_peak - r.big.redis_base, 1)):.2f}x, "
        f"scan+register rate {ratio(lambda r: r.big.register_rate):.2f}x, "
        f"enqueue rate {ratio(lambda r: r.big.enqueue_rate):.2f}x"
    )


def main() -> None:
    """Measure every size `--repeats` times (sizes alternating), then the result writes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="stub workers, one process each")
    ap.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--ceiling-size", type=int, default=20_000, help="producer-alone run; 0: none")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="a profiled run of N")
    ap.add_argument("--with-writes", action="store_true", help="then bench.result_writes")
    ap.add_argument("--write-rows", type=int, default=200_000)
    ap.add_argument("--write-per-row", type=int, default=1000)
    ap.add_argument("--write-repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and profiles here")
    ap.add_argument(
        "--analyze-every",
        type=float,
        default=0.0,
        metavar="S",
        help="PostgreSQL: ANALYZE images, results every S seconds, as autovacuum would",
    )
    args = ap.parse_args()
    ANALYZE_EVERY["seconds"] = args.analyze_every
    sizes = sorted(args.sizes)
    print(
        f"# large archive: sizes {sizes}, {args.workers} stub workers x 1 process, "
        f"{args.database}, batch {Settings().batch_size}, window {Settings().max_queued_batches}"
        f" batches; {machine()}",
        flush=True,
    )
    runs: dict[int, list[SizeRun]] = {s: [] for s in sizes}
    code = code_fingerprint()
    print(f"code at start: {code}", flush=True)
    ceilings: list[ProducerRun] = []
    root = Path(tempfile.mkdtemp(prefix="allscreen-large-", dir="/tmp"))
    log_dir = args.keep or root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        t = time.monotonic()
        archive = root / "archive"
        all_shards = archive_shards(archive, max(sizes[-1], args.ceiling_size, args.profile))
        warm = root / "warm"
        write_folder(warm, range(_WARM_OFFSET, _WARM_OFFSET + WARM_IMAGES))
        print(f"generated {sizes[-1]:,} images in {time.monotonic() - t:.0f} s", flush=True)
        for r in range(args.repeats):
            for size in sizes:
                shards = all_shards[: size // SHARD]
                sr = measure_size(shards, warm, args.database, args.workers, root, log_dir)
                runs[size].append(sr)
                b = sr.big
                print(
                    f"  repeat {r + 1} {size:>7,}: register {b.register_rate:.0f} files/s "
                    f"({b.register_s:.1f} s), enqueue {b.enqueue_rate:.0f} img/s "
                    f"({b.enqueue_s:.1f} s), end-to-end {b.end_to_end:.0f} img/s, producer "
                    f"{b.cpu_s:.1f} s CPU, peak RSS {b.peak_rss_kb / 1024:.1f} MB (warm-up "
                    f"{sr.warm.peak_rss_kb / 1024:.1f}), Redis peak {b.redis_peak / _MB:.2f} MB "
                    f"(base {b.redis_base / _MB:.2f}), max LLEN {b.samples.llen_max}, "
                    f"max unacked {b.samples.unacked_max}, {b.samples.n} samples, queue empty in "
                    f"{b.samples.empty / max(b.samples.n, 1):.0%}",
                    flush=True,
                )
            if args.ceiling_size:
                c = enqueue_ceiling(
                    all_shards[: args.ceiling_size // SHARD], args.database, root, log_dir
                )
                ceilings.append(c)
                print(
                    f"  repeat {r + 1} producer alone, {args.ceiling_size:,} images, unbounded "
                    f"window: register {c.register_rate:.0f} files/s, enqueue "
                    f"{c.enqueue_rate:.0f} img/s, CPU {c.cpu_s * 1e6 / c.files:.0f} µs/image, "
                    f"Redis peak {c.redis_peak / _MB:.2f} MB, max LLEN {c.samples.llen_max}",
                    flush=True,
                )
        print()
        end = code_fingerprint()
        if end != code:
            print(f"WARNING: the code changed during the run: now {end}", flush=True)
        print_tables(runs, print)
        if ceilings:
            print(
                f"producer alone ({args.ceiling_size:,} images, no workers, unbounded window), "
                f"median of {len(ceilings)}: register "
                f"{median([c.register_rate for c in ceilings]):.0f} files/s, enqueue "
                f"{median([c.enqueue_rate for c in ceilings]):.0f} img/s, Redis used_memory peak "
                f"{median([c.redis_peak / _MB for c in ceilings]):.2f} MB, max LLEN "
                f"{max(c.samples.llen_max for c in ceilings)}"
            )
        if args.profile:
            prof, spy = profile_size(
                all_shards[: args.profile // SHARD],
                warm,
                args.database,
                args.workers,
                root,
                log_dir,
            )
            print(f"\nproducer profile (pyinstrument, {args.profile:,} images): {prof}")
            print(prof.read_text()[:6000])
            print("key frames of the full profile (library frames shown):")
            for line in key_lines(prof.with_suffix(".all.txt")):
                print(line)
            if spy is not None:
                print(f"worker task time (py-spy on the first worker's pool process): {spy}")
                for line in task_shares(spy):
                    print("  " + line)
        if args.with_writes:
            print(f"\n# result writes ({args.write_rows:,} rows, batches of 32)", flush=True)
            e2e = median([r.big.end_to_end for r in runs[sizes[-1]]])
            run_write_benchmark(
                rows=args.write_rows,
                per_row=args.write_per_row,
                repeats=args.write_repeats,
                pipeline_rate=e2e,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
