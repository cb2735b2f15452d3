"""The chaos soak's faults: a seeded schedule, and the thread that carries it out.

Faults fire at fractions of the run's progress (results committed / images), drawn from a
seeded generator, so one seed gives the same sequence of faults at any archive size. The
faults are the ones `tests/test_faults.py` injects one at a time, here all in one run: a pool
process SIGKILLed (Celery replaces it), a whole worker SIGKILLed and started again, the
broker restarted empty, the database cut for 20 s behind a proxy. Every fault is recorded
with its moment; for a killed worker also the images of the batches it held, so the report
can say when the last of them was done elsewhere.

The worker handle, the proxy and the pool-process lookup are the test suite's own
(`tests/support/`), so the soak breaks things exactly as the fault tests do.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from allscreen.embedded_redis import EmbeddedRedis
from allscreen.settings import Settings
from tests.support.proxy import CuttableProxy
from tests.support.runs import pool_processes
from tests.support.workers import WorkerProcess
from worker.reclaim import held_key, holders_key

log = logging.getLogger(__name__)

KINDS = ("child", "worker", "redis", "database")  #: the faults a schedule may hold
DB_CUT_SECONDS = 20.0  #: how long the database stays unreachable
RESTART_AFTER_SECONDS = 3.0  #: a killed worker's device comes back this long after the kill
#: Faults fire between these fractions of progress: after the first batches, and before the
#: run's tail, where a dead worker's batch would be the only work left.
EARLIEST, LATEST = 0.05, 0.85
_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault: what, and at which fraction of the run's progress."""

    at: float
    kind: str


def schedule(seed: int, *, children: int, workers: int) -> list[Fault]:
    """A seeded plan: `children` pool kills, `workers` worker kills, one broker restart that
    loses the queue and one database cut, in order of progress."""
    rng = random.Random(seed)
    kinds = ["child"] * children + ["worker"] * workers + ["redis", "database"]
    faults = [Fault(round(rng.uniform(EARLIEST, LATEST), 3), k) for k in kinds]
    return sorted(faults, key=lambda f: (f.at, f.kind))


@dataclass(slots=True)
class Fired:
    """A fault as it happened: when (seconds from the start and wall clock), on what."""

    kind: str
    planned: float
    progress: float
    seconds: float
    wall: float
    target: str = ""
    held_images: set[int] = field(default_factory=set)  #: a killed worker's unfinished images


class Fleet:
    """The soak's worker processes, one per device, started again after a kill."""

    def __init__(
        self, settings: Settings, devices: list[str], logs: Path, env: dict[str, str]
    ) -> None:
        self.settings, self.logs, self.env = settings, logs, env
        # One lock for the slots and the pending restarts: a second kill of a device whose
        # restart is due must kill what runs there, not leave a process nobody stops.
        self._lock = threading.Lock()
        self._restarts: dict[str, threading.Timer] = {}
        self._stopped = False
        self.workers = {d: self._start(d) for d in devices}

    def _start(self, device: str) -> WorkerProcess:
        log_file = self.logs / f"worker-{device}.log"
        return WorkerProcess(self.settings, device, log_file, concurrency=1, extra_env=self.env)

    def wait_ready(self) -> None:
        """Block until every worker is ready."""
        for w in self.workers.values():
            w.wait_ready()

    def kill_child(self, rng: random.Random) -> str:
        """SIGKILL one pool process of a random worker; Celery starts another."""
        with self._lock:
            for device in rng.sample(sorted(self.workers), len(self.workers)):
                w = self.workers[device]
                if w.proc.poll() is not None:
                    continue
                pool = pool_processes(w.proc.pid)
                if pool:
                    os.kill(rng.choice(pool), signal.SIGKILL)
                    return device
        return ""

    def kill_worker(self, device: str) -> None:
        """SIGKILL a whole worker (parent, pool, models); start it again a little later."""
        with self._lock:
            pending = self._restarts.pop(device, None)
            if pending is not None:
                pending.cancel()
            self.workers[device].kill(signal.SIGKILL)
            timer = threading.Timer(RESTART_AFTER_SECONDS, self._restart, args=(device,))
            self._restarts[device] = timer
            timer.start()

    def _restart(self, device: str) -> None:
        with self._lock:
            if self._stopped or self._restarts.get(device) is not threading.current_thread():
                return  # cancelled after it fired: a later kill scheduled its own restart
            del self._restarts[device]
            self.workers[device] = self._start(device)

    def stop(self) -> None:
        """Stop every worker (and any restart still pending)."""
        with self._lock:
            self._stopped = True
            pending = list(self._restarts.values())
            self._restarts.clear()
        for t in pending:
            t.cancel()
            t.join()
        for w in self.workers.values():
            w.stop()


def held_images(
    client: redis.Redis[bytes], queue: str, device: str, *, dead: set[str]
) -> tuple[set[str], set[int]]:
    """The live instances of the worker of `device` (leaving out `dead`, those already killed
    whose lease has not expired yet), and the image ids of the batches they hold now."""
    instances: set[str] = set()
    ids: set[int] = set()
    for raw_instance, node in client.hgetall(holders_key(queue)).items():
        instance = raw_instance.decode()
        if not node.decode().startswith(f"{device}@") or instance in dead:
            continue
        instances.add(instance)
        for tag in client.smembers(held_key(queue, instance)):
            raw = client.hget("unacked", tag)
            if raw is not None:
                body = json.loads(raw)[0]["body"]
                ids.update(int(i["id"]) for i in json.loads(body)[0][0]["images"])
    return instances, ids


class Chaos(threading.Thread):
    """Carries out a schedule against a fleet, a throwaway Redis and a database proxy."""

    def __init__(
        self,
        plan: list[Fault],
        *,
        seed: int,
        progress: Callable[[], float],
        fleet: Fleet,
        broker: EmbeddedRedis,
        proxy: CuttableProxy,
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.plan, self.progress = plan, progress
        self.fleet, self.broker, self.proxy = fleet, broker, proxy
        self.rng = random.Random(seed + 1)
        self.fired: list[Fired] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._killed: set[str] = set()  #: holder instances of the workers killed so far
        self._t0 = time.monotonic()

    def run(self) -> None:
        """Fire each fault once progress reaches it."""
        try:
            for fault in self.plan:
                while (p := self.progress()) < fault.at:
                    if self._halt.wait(_POLL_SECONDS):
                        return
                self.fired.append(self._fire(fault, p))
        except BaseException as exc:  # reported by the soak, which fails on it
            self.error = exc

    def stop(self) -> None:
        """Fire nothing more."""
        self._halt.set()
        self.join()

    def _fire(self, fault: Fault, progress: float) -> Fired:
        rec = Fired(fault.kind, fault.at, progress, time.monotonic() - self._t0, time.time())
        if fault.kind == "child":
            rec.target = self.fleet.kill_child(self.rng)
        elif fault.kind == "worker":
            rec.target = self.rng.choice(sorted(self.fleet.workers))
            client: redis.Redis[bytes] = redis.Redis.from_url(self.broker.url)
            try:
                instances, rec.held_images = held_images(
                    client, self.fleet.settings.queue, rec.target, dead=self._killed
                )
                self._killed |= instances
            finally:
                client.close()
            rec.wall = time.time()
            self.fleet.kill_worker(rec.target)
        elif fault.kind == "redis":
            port = self.broker.port
            self.broker.stop()  # keeps nothing: the queue, the unacked batches, the bytes
            time.sleep(1.0)
            self.broker = EmbeddedRedis(port=port).start()
        elif fault.kind == "database":
            self.proxy.cut()
            time.sleep(DB_CUT_SECONDS)
            self.proxy.restore()
        log.info("fault %s at %.0f%% (%s)", fault.kind, 100 * progress, rec.target)
        return rec
