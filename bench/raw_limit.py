"""(1) The raw limit: K processes in a tight loop of decode, features and SDK classify.

No queue, no database: the ceiling for one machine. Run:
    .venv/bin/python -m bench.raw_limit [--procs K] [--images N] [--repeats R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

from bench.common import images, machine, median, model_session
from worker.decode import decode_bgr


def _loop(paths: list[Path], start: mp.synchronize.Barrier, out: mp.Queue[float]) -> None:
    datas = [p.read_bytes() for p in paths]
    session = model_session()
    _ = session.info  # start the model before the clock starts
    start.wait()
    for data in datas:
        bgr = decode_bgr(data, max_bytes=1 << 25, max_pixels=40_000_000)
        session.classify(session.features_bgr(bgr))
    out.put(time.perf_counter())
    session.close()


def raw_rate(paths: list[Path], procs: int) -> float:
    """Images per second for `procs` processes sharing `paths`."""
    start = mp.Barrier(procs + 1)
    out: mp.Queue[float] = mp.Queue()
    chunks = [paths[i::procs] for i in range(procs)]
    ps = [mp.Process(target=_loop, args=(c, start, out)) for c in chunks]
    for p in ps:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    ends = [out.get() for _ in ps]
    for p in ps:
        p.join()
    return len(paths) / (max(ends) - t0)


def main() -> None:
    """Print the median raw rate over several repeats."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=mp.cpu_count())
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    paths = images(args.images)
    print(f"# raw limit: {len(paths)} images, {args.procs} processes; {machine()}")
    rates = [raw_rate(paths, args.procs) for _ in range(args.repeats)]
    print("runs (images/s):", " ".join(f"{r:.0f}" for r in rates))
    print(f"median: {median(rates):.0f} images/s")


if __name__ == "__main__":
    main()
