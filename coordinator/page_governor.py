"""How many pages each actor works at once: one more while its node's CPU has room.

A page waiting on a slow site costs the machine almost nothing, so on a slow site more
pages in flight is the only way to use the CPU. On a fast site a few pages already keep
every core busy, and each page more only adds rendering and switching. On a 2-CPU node,
``landmark bench scaling`` measured both: 1 actor × 8 pages beat × 4 by 15% at 100 ms of
site latency and lost to it by about 30% at 0 ms. No fixed count suits both, and a site's
latency is not known before the run. The CPU says which case a run is in.

The law, per node, once per ``WINDOW_S`` of the node's CPU readings (its MetricsActor's,
averaged over the window):

- below ``ROOM`` (80 %), with work waiting for that node (containers pending, or its pages
  all taken): each actor there works ``P × ROOM / cpu`` pages, at least one more, up to
  its most (``pages_per_actor``, or fewer where placement sized it to the node's memory).
  With the site's latency unchanged, a page's CPU is about constant, so that is the count
  that would bring the CPU to ``ROOM``: one window gets near it, not one per page. Only
  ``GROW_AFTER`` windows of room in a row count: one is often a dip between start-up and
  full work. ``bench scaling``, 400 items, against the best fixed count, median of 2:
  taking one window at its word, -12% at 0 ms (two pages added, then given back) and +0.3%
  at 100 ms; one page on the first window and the full step on the second, -10% and -2.5%;
  nothing before the second, -0.4% and -5.4%;
- at or above ``FULL`` (95 %): each gives one page back, down to ``pages_at_start``;
- in between, or with nothing waiting: hold.

Down one page per window, so each cut shows in the CPU before the next. The floor is
``pages_at_start``, not one page: below it the governor would trade a sure throughput for
a CPU reading that other processes on the node (the site, Ray, the coordinator) also move.
Memory stays the MetricsActor's: a node that throttles or sheds is the budget's business,
and the governor only ever adds a page to a node whose verdict is ``ok``.

Pure: no Ray, no clock. The Coordinator feeds it readings and applies its steps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

logger = logging.getLogger("landmark.coordinator")

WINDOW_S = 1.0  # CPU readings averaged per decision (the MetricsActor samples every 0.5 s)
ROOM = 0.80  # below: a page more
FULL = 0.95  # at or above: a page fewer
GROW_AFTER = 2  # windows of room in a row before a page more


@dataclass(slots=True)
class _Window:
    began: float | None = None
    readings: list[float] = field(default_factory=list)
    last_sample: int | None = None  # the MetricsActor's sample number: each counted once
    room_streak: int = 0  # windows in a row with room for a page more, this one excluded


class PageGovernor:
    """Per-node CPU windows and the step they call for (+1, -1 or 0 pages per actor)."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        room: float = ROOM,
        full: float = FULL,
        grow_after: int = GROW_AFTER,
    ) -> None:
        if not 0 < room < full <= 1:
            raise ValueError(f"need 0 < room < full <= 1, got room={room}, full={full}")
        if grow_after < 1:
            raise ValueError(f"need grow_after >= 1, got {grow_after}")
        self.window_s = window_s
        self.grow_after = grow_after
        self.room = room
        self.full = full
        self.windows = 0  # decisions taken, all nodes
        self.last: dict[str, dict[str, object]] = {}  # node -> its last window's figures
        self._windows: dict[str, _Window] = {}

    def reading(self, node: str, cpu_percent: float | None, sample: int | None, now: float) -> None:
        """One verdict's CPU figure; a sample read twice (verdicts are polled faster than the
        MetricsActor samples) counts once."""
        if cpu_percent is None:
            return
        window = self._windows.setdefault(node, _Window())
        if sample is not None and sample == window.last_sample:
            return
        window.last_sample = sample
        if window.began is None:
            window.began = now
        window.readings.append(cpu_percent / 100)

    def step(self, node: str, now: float, *, pages: int, waiting: bool, verdict: str = "ok") -> int:
        """Pages more (or fewer: -1) for each actor on ``node``, whose actors work ``pages``
        each; 0 before the window is full. A full window is spent either way."""
        window = self._windows.get(node)
        if window is None or window.began is None or now - window.began < self.window_s:
            return 0
        cpu = sum(window.readings) / len(window.readings)
        room = cpu < self.room and waiting and verdict == "ok"
        streak = window.room_streak + 1 if room else 0
        self._windows[node] = _Window(last_sample=window.last_sample, room_streak=streak)
        step = 0
        if cpu >= self.full:
            step = -1
        elif room and streak >= self.grow_after:
            target = math.floor(pages * self.room / max(cpu, 0.01) + 1e-9)  # 7.9999… is 8
            step = max(1, target - pages)
        self.windows += 1
        self.last[node] = {"cpu": round(cpu, 3), "waiting": waiting, "step": step}
        logger.debug(
            "page governor: node %s CPU %.0f%% over %d readings, work waiting %s, verdict %s: "
            "%+d pages",
            node[:8], cpu * 100, len(window.readings), waiting, verdict, step,
        )  # fmt: skip
        return step
