"""Where a worker's main thread spends its time during a pipeline run: a py-spy profile.

Runs one timed pipeline run (`bench.pipeline`'s set-up) and, once the first batches are in
flight, samples the first worker process with py-spy for a few seconds (idle samples
excluded). Prints the share of the sampled main-thread time per activity. Run:
    .venv/bin/python -m bench.worker_profile [--pool solo] [--transport bytes] [--seconds 2]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import bench.pipeline as pipeline
from allscreen.settings import Settings
from bench.common import replicate

#: Activity → frames that mark it, checked in this order against each sampled stack.
ACTIVITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("classify (SDK round trip to the model)", ("ModelSession.classify",)),
    ("wait for the prefetched image", ("Future.result",)),
    ("upsert results", ("upsert_results",)),
    ("begin_batch (done? deliveries)", ("begin_batch",)),
    ("parse batch message (our base64)", ("Batch.from_message",)),
    ("image bytes from/to Redis (MGET, UNLINK)", ("_fetch_blobs", "drop_blobs")),
    ("other run_batch work", ("run_batch",)),
    ("kombu: JSON of message", ("loads", "dumps")),
    ("kombu/redis I/O", ("_brpop_read", "Pipeline", "send_packed_command", "read_response")),
)


def classify_stack(frames: list[str]) -> str:
    """The activity a sampled stack belongs to."""
    names = [f.split(" (")[0] for f in frames]
    for activity, marks in ACTIVITIES:
        if any(any(n == m or n.endswith("." + m) for n in names) for m in marks):
            return activity
    return "other Celery/kombu"


def main() -> None:
    """Profile one run and print the breakdown."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", default="solo")
    ap.add_argument("--transport", default="bytes", choices=["bytes", "path"])
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size)
    ap.add_argument("--copies", type=int, default=3, help="copies of the image set (run length)")
    ap.add_argument("--top", type=int, default=0, help="also print the N busiest functions")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    recorders: list[threading.Thread] = []

    def record(pid: int) -> None:
        time.sleep(0.5)  # the first batches reach the workers
        cmd = [spy, "record", "-p", str(pid), "-d", str(args.seconds), "-r", "500"]
        cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)

    def on_submit(pids: list[int]) -> None:
        recorders.append(threading.Thread(target=record, args=(pids[0],), daemon=True))
        recorders[0].start()

    transport: Literal["bytes", "path"] = "path" if args.transport == "path" else "bytes"
    with tempfile.TemporaryDirectory() as tmp:
        archive = replicate(Path(tmp), args.copies)
        rate, _, _ = pipeline.pipeline_rate(
            2, args.batch_size, Path(tmp), args.pool, transport, archive, on_submit
        )
    recorders[0].join()
    shares: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, samples = line.rsplit(" ", 1)
        frames = stack.split(";")
        if any("_worker" in f and "thread.py" in f for f in frames):
            continue  # the prefetch thread
        shares[classify_stack(frames)] += int(samples)
        leaves[frames[-1]] += int(samples)
    total = sum(shares.values())
    print(f"# worker main thread, pool {args.pool}, transport {args.transport}: {rate:.0f} img/s")
    print(f"| activity | share of {total} non-idle samples |")
    print("|---|---|")
    for activity, count in shares.most_common():
        print(f"| {activity} | {count / total:.0%} |")
    for frame, count in leaves.most_common(args.top):
        print(f"{count / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
