"""What a run has done, for the progress line and the summary: counts, rate, latencies.

Bounded whatever the run's size: the rate looks at the last ``RATE_WINDOW_S`` seconds,
latencies are a reservoir sample, and nothing keeps a record.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from landmark.actors.learner import percentile
from landmark.config.records import Record, Status

# The start of a run, in order: the store taken over, the first BrowserActor ready, the
# first containers found, the first batch sent, the first record written.
MILESTONES = ("store_open", "actor_ready", "containers_found", "batch_sent", "record_written")
LATENCY_RESERVOIR = 10_000
RATE_WINDOW_S = 10.0
HOSTS_KEPT = 1_000  # blocked hosts counted by name; beyond, not counted
CUTS_KEPT = 1_000  # sources cut short listed by name; beyond, only counted
PAGE_MOVES_KEPT = 200  # the page governor's moves listed; beyond, only counted


@dataclass(slots=True)
class RunStats:
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cpu_started: float = field(default_factory=time.process_time)
    cpu_s: float | None = None
    records: int = 0  # written by this run
    resumed: int = 0  # written by earlier runs of the job, found on resume
    cached: int = 0  # served from the record cache
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    latencies: list[float] = field(default_factory=list)  # a reservoir sample, ms
    latency_seen: int = 0
    oom_kills: int = 0
    shed_requests: int = 0
    discovery_failures: int = 0
    failed_sources: dict[str, str] = field(default_factory=dict)
    discovery_cut: list[dict[str, str]] = field(default_factory=list)  # {source, kind, reason}
    discovery_cuts: int = 0  # all of them, listed or not
    blocked_hosts: dict[str, int] = field(default_factory=dict)  # host → records it was in
    by_actor: dict[str, int] = field(default_factory=dict)  # actor → records it extracted
    done_times: deque[float] = field(default_factory=deque)
    # When each step of the run's start first happened, in seconds from ``started``: where
    # the time to the first record goes (see MILESTONES).
    milestones: dict[str, float] = field(default_factory=dict)
    # The first actor's start in parts, in seconds (see crew.start_parts).
    actor_start: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)  # wall clock, for the driver
    # The page governor's moves, in order: {"at_s", "actor", "pages"} (the first PAGE_MOVES_KEPT).
    page_moves: list[dict[str, Any]] = field(default_factory=list)
    page_move_count: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(1))

    def mark(self, milestone: str) -> None:
        """Note the first time ``milestone`` happened; later times are not kept."""
        if milestone not in self.milestones:
            self.milestones[milestone] = round(time.monotonic() - self.started, 3)

    def pages_moved(self, actor: str, pages: int) -> None:
        self.page_move_count += 1
        if len(self.page_moves) < PAGE_MOVES_KEPT:
            at = round(time.monotonic() - self.started, 3)
            self.page_moves.append({"at_s": at, "actor": actor, "pages": pages})

    def note_blocked(self, record: Record) -> list[str]:
        """Count the hosts the record's page was refused; return those new to the run."""
        new = []
        for host in record.blocked:
            if host in self.blocked_hosts:
                self.blocked_hosts[host] += 1
            elif len(self.blocked_hosts) < HOSTS_KEPT:
                self.blocked_hosts[host] = 1
                new.append(host)
        return new

    def wrote(self, record: Record) -> None:
        self.mark("record_written")
        self.records += 1
        self.by_status[record.status] = self.by_status.get(record.status, 0) + 1
        if record.cached:
            self.cached += 1
        elif record.actor is not None:
            self.by_actor[record.actor] = self.by_actor.get(record.actor, 0) + 1
        now = time.monotonic()
        self.done_times.append(now)
        self._trim(now)
        latency = record.timings.get("total")
        if latency is None or record.cached:
            return
        self.latency_seen += 1
        if len(self.latencies) < LATENCY_RESERVOIR:
            self.latencies.append(latency)
        else:
            slot = self._rng.randrange(self.latency_seen)
            if slot < LATENCY_RESERVOIR:
                self.latencies[slot] = latency

    def cut_short(self, source: str, kind: str, reason: str) -> None:
        """A source whose discovery stopped before its gallery's end (deadline or limit)."""
        self.discovery_cuts += 1
        if len(self.discovery_cut) < CUTS_KEPT:
            self.discovery_cut.append({"source": source, "kind": kind, "reason": reason})

    def resumed_with(self, by_status: dict[str, int]) -> None:
        """Records an earlier run of the job wrote: they count in the totals."""
        for status, count in by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + count
            self.resumed += count

    def _trim(self, now: float) -> None:
        window = self.done_times
        while window and now - window[0] > RATE_WINDOW_S:
            window.popleft()

    def rate(self) -> float:
        """Records per second over the last window."""
        now = time.monotonic()
        self._trim(now)
        span = min(RATE_WINDOW_S, now - self.started) or 1.0
        return len(self.done_times) / span

    def finish(self) -> None:
        self.finished = time.monotonic()
        self.cpu_s = time.process_time() - self.cpu_started

    @property
    def wall_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def latency_ms(self) -> dict[str, float]:
        return {
            "p50": round(percentile(self.latencies, 0.5), 1),
            "p95": round(percentile(self.latencies, 0.95), 1),
            "p99": round(percentile(self.latencies, 0.99), 1),
        }

    def coordinator_cpu(self) -> dict[str, float]:
        """The coordinator process's own CPU: total, per record written, share of one core."""
        cpu = self.cpu_s if self.cpu_s is not None else time.process_time() - self.cpu_started
        wall = self.wall_s
        return {
            "cpu_s": round(cpu, 3),
            "us_per_record": round(cpu / self.records * 1e6, 1) if self.records else 0.0,
            "core_share": round(cpu / wall, 4) if wall > 0 else 0.0,
        }
