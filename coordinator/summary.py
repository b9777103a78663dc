"""The run's summary (``summary.json``): what was done, how fast, what went wrong, and where.

Built from the Coordinator's state at the end; the driver adds the output folder and
prints the short table (``report.py``).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landmark.coordinator.actor import Coordinator

STATES = ("ok", "throttle", "shed")  # mildest first


def cluster_view(nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cluster's verdict from each node's latest one: the worst node (by verdict, then
    memory) gives ``verdict``, ``reason``, ``memory_fraction`` and ``node``; ``nodes`` counts
    the nodes in each state. Events are summed over nodes; the peaks are the largest node's,
    since a node runs out of its own memory (each node's are in the summary's ``nodes``)."""
    if not nodes:
        return {"verdict": "ok", "reason": "no reading yet", "nodes": {}}
    worst = max(nodes, key=lambda node: (_severity(nodes[node]), _memory(nodes[node]), node))
    counts = Counter(verdict.get("verdict", "ok") for verdict in nodes.values())
    return {
        "verdict": nodes[worst].get("verdict", "ok"),
        "reason": nodes[worst].get("reason"),
        "memory_fraction": nodes[worst].get("memory_fraction"),
        "node": worst,
        "nodes": {state: counts[state] for state in STATES if counts[state]},
        "shed_events": sum(v.get("shed_events") or 0 for v in nodes.values()),
        "throttle_events": sum(v.get("throttle_events") or 0 for v in nodes.values()),
        "peak_tree_pss": max(v.get("peak_tree_pss") or 0 for v in nodes.values()) or None,
        "peak_tree_rss": max(v.get("peak_tree_rss") or 0 for v in nodes.values()) or None,
    }


def _severity(verdict: dict[str, Any]) -> int:
    state = verdict.get("verdict", "ok")
    return STATES.index(state) if state in STATES else 0


def _memory(verdict: dict[str, Any]) -> float:
    return verdict.get("memory_fraction") or 0.0


def node_summaries(nodes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per node id: its last verdict, memory, events and peak, for ``summary.json``."""
    return {
        node: {
            "verdict": verdict.get("verdict", "ok"),
            "reason": verdict.get("reason"),
            "memory_fraction": verdict.get("memory_fraction"),
            "shed_events": verdict.get("shed_events", 0),
            "throttle_events": verdict.get("throttle_events", 0),
            "peak_tree_pss": verdict.get("peak_tree_pss"),
        }
        for node, verdict in sorted(nodes.items())
    }


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
        "startup_s": dict(stats.milestones),
        "started_at": stats.started_at,
        "startup_parts_s": dict(stats.actor_start),
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
        "nodes": node_summaries(coordinator.node_verdicts),
        "cluster_verdict": {
            "verdict": verdict.get("verdict", "ok"),
            "worst_node": verdict.get("node"),
            "reason": verdict.get("reason"),
            "nodes": dict(verdict.get("nodes", {})),
        },
        "adaptive_limit": scheduler.budget.limit.value,
        "pages": _pages(coordinator),
        "coordinator": {**stats.coordinator_cpu(), "wakes": dict(coordinator.wakes)},
        "store": coordinator.store_config.description,
        "placement": coordinator.crew.placement(stats.by_actor),
        "node_events": coordinator.node_keeper.watch_state.events,
        "actors": actors,
        "learner": actors[0]["learner"] if actors else {},
    }


def _pages(coordinator: Coordinator) -> dict[str, Any]:
    """Pages each live actor works at the end, and the page governor's moves to get there."""
    roster, stats, governor = (
        coordinator.scheduler.roster,
        coordinator.stats,
        coordinator.page_governor,
    )
    return {
        "governed": governor is not None,
        "windows": governor.windows if governor else 0,
        "last_window": dict(governor.last) if governor else {},
        "at_start": roster.first,
        "most": roster.pages,
        "now": {name: roster.entries[name].pages for name in coordinator.scheduler.live_actors()},
        "moves": stats.page_move_count,
        "log": list(stats.page_moves),
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
