"""(1) The raw limit: K processes in a tight loop of decode, features and SDK classify.

No queue, no database: the ceiling for one machine. Besides the rate, each run measures the
CPU it spent per image in the loop processes (decode, features, the SDK's side of classify)
and in their model processes, so a pipeline run beside it can be set against it role by role
(`bench.pipeline`). Run:
    .venv/bin/python -m bench.raw_limit [--procs K] [--images N] [--repeats R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MODEL, images, machine, median
from worker.decode import decode_bgr
from worker.runner import GuardedImageRunner
from worker.session import ModelSession


@dataclass(frozen=True, slots=True)
class RawRun:
    """One raw-limit run: its rate and the CPU it spent per image, by role."""

    rate: float  #: images per second, all processes together
    client_ms: float  #: CPU ms per image in the loop processes
    model_ms: float  #: CPU ms per image in the model processes

    @property
    def cpu_ms(self) -> float:
        """All the CPU one image cost, loop and model together."""
        return self.client_ms + self.model_ms


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid`."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loop(
    paths: list[Path], start: mp.synchronize.Barrier, out: mp.Queue[tuple[float, float, float]]
) -> None:
    datas = [p.read_bytes() for p in paths]
    runners: list[GuardedImageRunner] = []

    def factory() -> GuardedImageRunner:
        runners.append(GuardedImageRunner(str(MODEL), start_timeout=30, timeout=30))
        return runners[-1]

    session = ModelSession(MODEL, factory=factory, attempts=1)
    _ = session.info  # start the model before the clock starts
    model_pid = runners[-1].pid
    assert model_pid is not None
    start.wait()
    cpu0, model0 = time.process_time(), _cpu(model_pid)
    for data in datas:
        bgr = decode_bgr(data, max_bytes=1 << 25, max_pixels=40_000_000)
        session.classify(session.features_bgr(bgr))
    end = time.perf_counter()
    out.put((end, time.process_time() - cpu0, _cpu(model_pid) - model0))
    session.close()


def raw_run(paths: list[Path], procs: int) -> RawRun:
    """One run of `procs` processes sharing `paths`: rate and CPU per image."""
    start = mp.Barrier(procs + 1)
    out: mp.Queue[tuple[float, float, float]] = mp.Queue()
    chunks = [paths[i::procs] for i in range(procs)]
    ps = [mp.Process(target=_loop, args=(c, start, out)) for c in chunks]
    for p in ps:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    ends = [out.get() for _ in ps]
    for p in ps:
        p.join()
    n = len(paths)
    return RawRun(
        rate=n / (max(e for e, _, _ in ends) - t0),
        client_ms=sum(c for _, c, _ in ends) * 1000 / n,
        model_ms=sum(m for _, _, m in ends) * 1000 / n,
    )


def raw_rate(paths: list[Path], procs: int) -> float:
    """Images per second for `procs` processes sharing `paths`."""
    return raw_run(paths, procs).rate


def main() -> None:
    """Print the median raw rate over several repeats."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=mp.cpu_count())
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    paths = images(args.images)
    print(f"# raw limit: {len(paths)} images, {args.procs} processes; {machine()}")
    runs = [raw_run(paths, args.procs) for _ in range(args.repeats)]
    print("runs (images/s):", " ".join(f"{r.rate:.0f}" for r in runs))
    print(
        f"median: {median([r.rate for r in runs]):.0f} images/s; CPU ms/image: loop "
        f"{median([r.client_ms for r in runs]):.3f}, model {median([r.model_ms for r in runs]):.3f}"
    )


if __name__ == "__main__":
    main()
