"""PerformanceLearner: what this actor has seen a site take, turned into deadlines and orders.

Two things are learned, per domain:

* **Timings** per operation (open, settle, close, discover_idle, ...): a bounded
  window of recent durations gives p50/p95. A deadline is ``p95 × margin``,
  clamped to the job's bounds, and the job's default until ``MIN_SAMPLES``
  exist. A window (not an all-time reservoir) lets deadlines follow a site that
  slows down or recovers.
* **Strategies** per field (landmark, css): successes and tries. The
  chain is ordered by a smoothed success rate (Laplace prior, so an untried
  strategy is neither first nor buried), ties kept in the job's order. The
  chain runs in one in-page call, so a miss costs little, but on a site where
  the job's first strategy usually fails the learned order skips it. (The DOM
  cache's verified path always runs before the chain; see dom_cache.py.)

``snapshot()``/``load()`` let a replacement actor start warm from another's
experience, which matters when the coordinator restarts a dead actor mid-run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landmark.config.job import TimeoutSpec

WINDOW = 256
MIN_SAMPLES = 8
DEFAULT_CHAIN = ("landmark", "css")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of unsorted values (empty → 0)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


@dataclass(slots=True)
class StrategyStats:
    tries: int = 0
    successes: int = 0

    def score(self) -> float:
        return (self.successes + 1) / (self.tries + 2)


class PerformanceLearner:
    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._timings: dict[tuple[str, str], deque[float]] = {}
        self._strategies: dict[tuple[str, str, str], StrategyStats] = {}

    # -- timings -------------------------------------------------------------
    def observe(self, domain: str, operation: str, seconds: float) -> None:
        key = (domain, operation)
        samples = self._timings.get(key)
        if samples is None:
            samples = self._timings[key] = deque(maxlen=self._window)
        samples.append(seconds)

    def quantiles(self, domain: str, operation: str) -> tuple[float, float, int]:
        """(p50, p95, sample count) in seconds."""
        samples = list(self._timings.get((domain, operation), ()))
        return percentile(samples, 0.5), percentile(samples, 0.95), len(samples)

    def deadline(
        self,
        domain: str,
        operation: str,
        *,
        default: timedelta,
        low: timedelta,
        high: timedelta,
        margin: float,
    ) -> timedelta:
        """How long to wait for ``operation`` on ``domain``: learned p95 × margin, clamped."""
        _, p95, count = self.quantiles(domain, operation)
        if count < MIN_SAMPLES:
            return default
        learned = timedelta(seconds=p95 * margin)
        return max(low, min(high, learned))

    # -- strategies ----------------------------------------------------------
    def record_strategy(
        self, domain: str, field: str, tried: list[str], winner: str | None
    ) -> None:
        """``tried`` lists the strategies run, in order, up to and including ``winner``."""
        for strategy in tried:
            stats = self._strategies.setdefault((domain, field, strategy), StrategyStats())
            stats.tries += 1
            if strategy == winner:
                stats.successes += 1

    def order(self, domain: str, field: str, chain: tuple[str, ...] = DEFAULT_CHAIN) -> list[str]:
        """The chain for ``field``, best first; a stable sort keeps the job's order for ties."""

        def score(strategy: str) -> float:
            stats = self._strategies.get((domain, field, strategy))
            return stats.score() if stats else 0.5

        return sorted(chain, key=score, reverse=True)

    # -- sharing -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "timings": [[d, op, list(s)] for (d, op), s in self._timings.items()],
            "strategies": [
                [d, f, s, st.tries, st.successes] for (d, f, s), st in self._strategies.items()
            ],
        }

    def load(self, snapshot: dict[str, Any]) -> None:
        """Merge another learner's snapshot (its samples first, ours after: ours are newer)."""
        for domain, operation, samples in snapshot.get("timings", []):
            merged = deque(samples, maxlen=self._window)
            merged.extend(self._timings.get((domain, operation), ()))
            self._timings[(domain, operation)] = merged
        for domain, field, strategy, tries, successes in snapshot.get("strategies", []):
            stats = self._strategies.setdefault((domain, field, strategy), StrategyStats())
            stats.tries += tries
            stats.successes += successes

    def summary(self) -> dict[str, Any]:
        """Per domain and operation: p50/p95 in ms and sample count; the chain per field."""
        timings = {}
        for domain, operation in sorted(self._timings):
            p50, p95, count = self.quantiles(domain, operation)
            timings[f"{domain} {operation}"] = {
                "p50_ms": round(p50 * 1000, 1),
                "p95_ms": round(p95 * 1000, 1),
                "n": count,
            }
        chains: dict[str, list[str]] = {}
        for domain, field, _ in sorted(self._strategies):
            chains.setdefault(f"{domain} {field}", self.order(domain, field))
        return {"timings": timings, "chains": chains}


class Deadlines:
    """The learner's deadlines with the job's bounds applied: ``deadlines(domain, op)``."""

    def __init__(self, learner: PerformanceLearner, timeouts: TimeoutSpec) -> None:
        self.learner = learner
        self.timeouts = timeouts

    def __call__(self, domain: str, operation: str, default: timedelta | None = None) -> timedelta:
        timeouts = self.timeouts
        return self.learner.deadline(
            domain,
            operation,
            default=default or timeouts.wait,
            low=timeouts.wait_min,
            high=timeouts.wait_max,
            margin=timeouts.margin,
        )
