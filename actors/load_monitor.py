"""The decision "is this node doing too much?", kept pure so it can be tested to the millisecond.

The MetricsActor measures; this module decides. Nothing here reads the clock,
psutil or Ray: every reading and every ``now`` is passed in, so a test can
drive hours of behaviour in microseconds.

The control:

* **Three verdicts.** ``ok`` (dispatch freely), ``throttle`` (start no new work)
  and ``shed`` (cut concurrency, recycle the heaviest actor). Shedding defers
  work; it never drops it.
* **Memory reacts at once.** Memory pressure kills processes (Ray's OOM killer
  fires at 95% of node memory, the kernel's after that), so a single reading at
  or above a limit escalates immediately: ``≥ throttle`` → throttle,
  ``≥ shed`` → shed. Defaults (75% / 85%) leave room for the memory that
  arrives between two samples and for the time it takes to act.
* **Hysteresis.** A state is left only once memory falls a band
  (``hysteresis x total``) below the limit that entered it: shed is left for
  throttle below ``shed - band``, throttle is left for ok below
  ``throttle - band``. Without the band a node sitting at the limit would flip
  every sample, and each flip costs a burst of dispatches or a recycle.
* **Hold.** A state is kept at least ``hold`` before stepping down, and steps
  down one level at a time (shed → throttle → ok), so relief is confirmed
  twice before full speed returns. Escalation never waits.
* **CPU only throttles, and only when sustained.** One sample above the CPU
  limit says little (a page's layout, a GC pause); CPU saturation only slows
  things down. As in Crawlee's ``SystemStatus``, the CPU counts as overloaded
  when, over the last ``window``, the *time-weighted* share spent above the
  limit exceeds ``cpu_overload_ratio``. The share is taken over the whole
  window (not just the samples seen so far), so a spike right after start-up
  does not throttle either. CPU never causes shed: cutting concurrency to
  save CPU is what throttle already does, and recycling a browser would cost
  more CPU than it saves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landmark.config.job import BudgetSpec


class Verdict(StrEnum):
    OK = "ok"
    THROTTLE = "throttle"
    SHED = "shed"

    @property
    def level(self) -> int:
        """0, 1, 2: comparable severity, also the value exported as a gauge."""
        return _LEVELS[self]


_LEVELS = {Verdict.OK: 0, Verdict.THROTTLE: 1, Verdict.SHED: 2}
_BY_LEVEL = {level: verdict for verdict, level in _LEVELS.items()}


@dataclass(frozen=True, slots=True)
class Limits:
    """The budget's limits resolved for one node: memory in bytes, CPU in percent (0 to 100)."""

    memory_throttle: int
    memory_shed: int
    cpu_throttle_percent: float

    def __post_init__(self) -> None:
        if self.memory_throttle > self.memory_shed:
            raise ValueError(
                f"memory_throttle ({self.memory_throttle} bytes) must not exceed "
                f"memory_shed ({self.memory_shed} bytes)"
            )

    @classmethod
    def from_budget(cls, budget: BudgetSpec, memory_total: int) -> Limits:
        """Resolve shares ("75%") against this node's memory total; absolutes stay as given."""
        return cls(
            memory_throttle=int(budget.memory_throttle.resolve(memory_total)),
            memory_shed=int(budget.memory_shed.resolve(memory_total)),
            cpu_throttle_percent=budget.cpu_throttle.resolve(100.0),
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of the node: memory as Ray's OOM killer counts it, CPU over all cores."""

    memory_used: int
    memory_total: int
    cpu_percent: float

    @property
    def memory_fraction(self) -> float:
        return self.memory_used / self.memory_total if self.memory_total > 0 else 0.0


class LoadMonitor:
    """Turns a stream of readings into a verdict with hysteresis, a hold time and a CPU window."""

    def __init__(
        self,
        limits: Limits,
        hysteresis: float = 0.05,
        hold: timedelta = timedelta(seconds=2),
        window: timedelta = timedelta(seconds=5),
        cpu_overload_ratio: float = 0.5,
    ) -> None:
        if not 0 <= hysteresis < 1:
            raise ValueError(f"hysteresis is a share of memory in [0, 1), got {hysteresis}")
        if window <= timedelta(0):
            raise ValueError("the CPU window must be longer than zero")
        if not 0 < cpu_overload_ratio <= 1:
            raise ValueError(f"cpu_overload_ratio must be in (0, 1], got {cpu_overload_ratio}")
        self.limits = limits
        self.hysteresis = hysteresis
        self.hold = hold.total_seconds()
        self.window = window.total_seconds()
        self.cpu_overload_ratio = cpu_overload_ratio
        self.verdict = Verdict.OK
        self.reason = "no reading yet"
        self.shed_events = 0
        self.throttle_events = 0
        self.time_in_state: dict[Verdict, float] = dict.fromkeys(Verdict, 0.0)
        self._entered_at: float | None = None
        self._last_now: float | None = None
        # (time, overloaded): each entry covers the span since the entry before it.
        self._cpu_samples: deque[tuple[float, bool]] = deque()

    def observe(self, reading: Reading, now: float) -> Verdict:
        """Take one reading taken at ``now`` (seconds, monotonic) and return the verdict."""
        self._account_time(now)
        self._record_cpu(reading.cpu_percent, now)
        memory_target, memory_reason = self._memory_target(reading)
        cpu_ratio = self.cpu_overload(now)
        cpu_overloaded = cpu_ratio > self.cpu_overload_ratio
        target, reason = memory_target, memory_reason
        if cpu_overloaded and target is Verdict.OK:
            target, reason = Verdict.THROTTLE, self._cpu_reason(cpu_ratio)
        self._move_towards(target, reason, now)
        return self.verdict

    def cpu_overload(self, now: float) -> float:
        """Share of the last ``window`` seconds during which CPU was above its limit."""
        start = now - self.window
        overloaded = 0.0
        previous: float | None = None
        for at, over in self._cpu_samples:
            if previous is not None and over:
                overloaded += max(0.0, at - max(previous, start))
            previous = at
        return min(1.0, overloaded / self.window)

    def stats(self) -> dict[str, object]:
        """Counters for reports and gauges; plain types so they cross a Ray call unchanged."""
        return {
            "verdict": str(self.verdict),
            "reason": self.reason,
            "shed_events": self.shed_events,
            "throttle_events": self.throttle_events,
            "time_in_state": {str(state): seconds for state, seconds in self.time_in_state.items()},
        }

    def _account_time(self, now: float) -> None:
        if self._last_now is not None and now > self._last_now:
            self.time_in_state[self.verdict] += now - self._last_now
        self._last_now = now
        if self._entered_at is None:
            self._entered_at = now

    def _record_cpu(self, cpu_percent: float, now: float) -> None:
        # Strictly above: a limit of 100% then means "never throttle for CPU".
        self._cpu_samples.append((now, cpu_percent > self.limits.cpu_throttle_percent))
        # Keep one sample at or before the window start: it bounds the first span inside it.
        while len(self._cpu_samples) > 1 and self._cpu_samples[1][0] <= now - self.window:
            self._cpu_samples.popleft()

    def _memory_target(self, reading: Reading) -> tuple[Verdict, str]:
        used, total = reading.memory_used, reading.memory_total
        band = self.hysteresis * total
        shed, throttle = self.limits.memory_shed, self.limits.memory_throttle
        share = _percent(used, total)
        if used >= shed:
            return Verdict.SHED, f"memory {share} ≥ shed {_percent(shed, total)}"
        if self.verdict is Verdict.SHED and used >= shed - band:
            return Verdict.SHED, (
                f"memory {share} within hysteresis of shed {_percent(shed, total)} "
                f"(leaves below {_percent(shed - band, total)})"
            )
        if used >= throttle:
            return Verdict.THROTTLE, f"memory {share} ≥ throttle {_percent(throttle, total)}"
        if self.verdict is not Verdict.OK and used >= throttle - band:
            return Verdict.THROTTLE, (
                f"memory {share} within hysteresis of throttle {_percent(throttle, total)} "
                f"(leaves below {_percent(throttle - band, total)})"
            )
        return Verdict.OK, f"memory {share} < throttle {_percent(throttle, total)}"

    def _cpu_reason(self, ratio: float) -> str:
        return (
            f"cpu above {self.limits.cpu_throttle_percent:g}% for {ratio:.0%} "
            f"of the last {self.window:g}s"
        )

    def _move_towards(self, target: Verdict, reason: str, now: float) -> None:
        if target.level > self.verdict.level:
            self._enter(target, now)
            self.reason = reason
        elif target.level < self.verdict.level:
            assert self._entered_at is not None
            held = now - self._entered_at
            if held >= self.hold:
                left = self.verdict
                self._enter(_BY_LEVEL[self.verdict.level - 1], now)
                self.reason = reason if self.verdict is target else f"left {left}: {reason}"
            else:
                self.reason = (
                    f"holding {self.verdict} for {self.hold - held:.1f}s more before stepping "
                    f"down ({reason})"
                )
        else:
            self.reason = reason

    def _enter(self, verdict: Verdict, now: float) -> None:
        escalating = verdict.level > self.verdict.level
        if escalating and verdict is Verdict.SHED:
            self.shed_events += 1
        elif escalating and verdict is Verdict.THROTTLE:
            self.throttle_events += 1
        self.verdict = verdict
        self._entered_at = now


def _percent(value: float, total: float) -> str:
    return f"{value / total:.0%}" if total > 0 else "?%"
