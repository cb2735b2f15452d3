"""Which images of an over-delivered batch to give up on: only the one a process died on.

A batch whose worker process dies (a pool child SIGKILLed, a segfault in a decoder) comes back
from the broker, and each delivery is counted per image (`worker.store.begin_batch`). Up to
`max_deliveries` a batch runs as usual. Past it, the batch is *isolated*: its images are
classified one at a time in id order, each counted in `images.attempts_alone` just before it
is read and its result committed just after, so a process that dies leaves the count of the
image it died on behind, and of no other. An image is given up on once `ISOLATED_DEATHS`
processes died with it in flight. A process killed from outside (an operator, the OOM killer,
a chaos test) then costs a retry, and a poison image fails alone instead of taking its
batch's healthy images with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from allscreen.messages import ImageItem

#: Worker processes that must die with an image in flight, classifying it alone, before that
#: image is recorded failed.
ISOLATED_DEATHS = 2


@dataclass(frozen=True, slots=True)
class Plan:
    """How to run one delivery of a batch."""

    todo: list[ImageItem]  #: images to classify, in this order
    blamed: list[tuple[ImageItem, int]]  #: images given up on, with their deaths in flight
    isolated: bool  #: classify one at a time, counting each first and committing each after


def over_delivered(
    images: Sequence[ImageItem], done: set[int], deliveries: Mapping[int, int], limit: int
) -> bool:
    """Whether an image still to do has been delivered more than `limit` times."""
    return any(deliveries.get(i.id, 0) > limit for i in images if i.id not in done)


def plan_delivery(
    images: Sequence[ImageItem],
    done: set[int],
    *,
    isolated: bool,
    attempts_alone: Mapping[int, int],
) -> Plan:
    """The plan for this delivery of a batch (`attempts_alone` read where `isolated`)."""
    left = [i for i in images if i.id not in done]
    if not isolated:
        return Plan(left, [], False)
    left.sort(key=lambda i: i.id)
    deaths = {i.id: attempts_alone.get(i.id, 0) for i in left}
    blamed = [(i, deaths[i.id]) for i in left if deaths[i.id] >= ISOLATED_DEATHS]
    return Plan([i for i in left if deaths[i.id] < ISOLATED_DEATHS], blamed, True)
