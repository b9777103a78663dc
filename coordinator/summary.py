"""The run's summary (``summary.json``): what was done, how fast, what went wrong, and where.

Built from the Coordinator's state at the end; the driver adds the output folder and
prints the short table (``report.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landmark.coordinator.actor import Coordinator


def build_summary(coordinator: Coordinator) -> dict[str, Any]:
    stats = coordinator.stats
    scheduler = coordinator.scheduler
    ledger = scheduler.ledger
    actors = coordinator.final_actor_stats
    verdict = coordinator.verdict
    wall = stats.wall_s
    pending = ledger.pending + ledger.in_flight
    return {
        "job": coordinator.job.name,
        "completed": scheduler.finished and not scheduler.cancelled and coordinator.failure is None,
        "stopped": _stopped(coordinator),
        "failure": coordinator.failure,
        "pending": pending,
        "records": stats.records + stats.resumed,
        "new_records": stats.records,
        "resumed": stats.resumed,
        "by_status": dict(stats.by_status),
        "wall_s": round(wall, 3),
        "per_minute": round(stats.records / wall * 60, 1) if wall > 0 else 0.0,
        "latency_ms": stats.latency_ms(),
        "retries": ledger.retries,
        "duplicates_dropped": ledger.duplicates_dropped,
        "duplicates_discovered": ledger.duplicates_discovered,
        "actor_deaths": scheduler.roster.deaths,
        "failed_starts": scheduler.roster.failed_starts,
        "oom_kills": stats.oom_kills,
        "expired_leases": scheduler.expired_leases,
        "discovery_failures": stats.discovery_failures,
        "failed_sources": dict(stats.failed_sources),
        "discovery_cut": list(stats.discovery_cut),
        "discovery_cuts": stats.discovery_cuts,
        "given_up": {d: scheduler.breaker.why(d) for d in scheduler.breaker.given_up_domains()},
        "breaker": {d: scheduler.breaker.why(d) for d in scheduler.breaker.open_domains()},
        "record_cache": _ratio(stats.cached, stats.records),
        "dom_cache": _dom_cache(actors),
        "blocked_hosts": dict(stats.blocked_hosts),
        "shed_events": verdict.get("shed_events", 0),
        "throttle_events": verdict.get("throttle_events", 0),
        "shed_requests": stats.shed_requests,
        "monitor_restarts": coordinator.crew.metrics_restarts,
        "peak_tree_pss": verdict.get("peak_tree_pss"),
        "peak_tree_rss": verdict.get("peak_tree_rss"),
        "adaptive_limit": scheduler.budget.limit.value,
        "coordinator": {**stats.coordinator_cpu(), "wakes": dict(coordinator.wakes)},
        "store": coordinator.store_config.description,
        "placement": coordinator.crew.placement(stats.by_actor),
        "actors": actors,
        "learner": actors[0]["learner"] if actors else {},
    }


def _stopped(coordinator: Coordinator) -> str | None:
    scheduler = coordinator.scheduler
    if scheduler.cancelled:
        return "cancelled"
    if coordinator.failure is not None:
        return "failed"
    if scheduler.stopping:
        return "interrupted"
    return None


def _ratio(hits: int, total: int) -> dict[str, Any]:
    return {"hits": hits, "total": total, "hit_ratio": round(hits / total, 4) if total else 0.0}


def _dom_cache(actors: list[dict[str, Any]]) -> dict[str, Any]:
    hits = sum(s.get("cache", {}).get("hits", 0) for s in actors)
    misses = sum(s.get("cache", {}).get("misses", 0) for s in actors)
    return {
        "hits": hits,
        "misses": misses,
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else 0.0,
    }
