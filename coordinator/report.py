"""The short table printed at the end of a run (the full figures are in summary.json)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _mib(value: float | None) -> str:
    return f"{value / 2**20:,.0f} MiB" if value else "n/a"


SOURCES_SHOWN = 5  # the rest are in summary.json
NODES_SHOWN = 5


def _first(parts: list[str], shown: int = NODES_SHOWN) -> str:
    more = f"; … {len(parts) - shown} more" if len(parts) > shown else ""
    return "; ".join(parts[:shown]) + more


def _placement(placement: dict[str, dict[str, int]]) -> str:
    """``node 1a2b3c4d: 2 actors, 150 records; …`` (busiest node first)."""
    nodes = sorted(placement.items(), key=lambda item: -item[1]["records"])
    parts = [
        f"node {node[:8]}: {n['actors']} actors, {n['records']:,} records" for node, n in nodes
    ]
    return _first(parts)


def _node_states(nodes: dict[str, dict[str, Any]]) -> str:
    """``node 1a2b3c4d: shed (mem 91%, 2 shed events); node 5e6f7a8b: ok (mem 40%)``: the
    worst first (shed, then throttle, then ok)."""
    order = {"shed": 0, "throttle": 1, "ok": 2}
    ranked = sorted(nodes.items(), key=lambda item: (order.get(item[1]["verdict"], 3), item[0]))
    parts = []
    for node, state in ranked:
        details = []
        if state.get("memory_fraction") is not None:
            details.append(f"mem {state['memory_fraction']:.0%}")
        for key in ("shed_events", "throttle_events"):
            if state.get(key):
                details.append(f"{state[key]} {key.replace('_', ' ')}")
        suffix = f" ({', '.join(details)})" if details else ""
        parts.append(f"node {node[:8]}: {state['verdict']}{suffix}")
    return _first(parts)


def _node_events(events: list[dict[str, Any]]) -> str:
    """``node 1a2b3c4d joined at 12.0 s (first actor 3.1 s later); node … left at 40.2 s``."""
    parts = []
    for event in events:
        part = f"node {event['node'][:8]} {event['event']} at {event['at_s']:.1f} s"
        if event.get("first_actor_after_s") is not None:
            part += f" (first actor {event['first_actor_after_s']:.1f} s later)"
        parts.append(part)
    return _first(parts)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    by_status = summary["by_status"]
    cache = summary["dom_cache"]
    records = summary["record_cache"]
    rows = [
        ("records", f"{summary['records']:,}"),
        (
            "ok / partial / failed",
            f"{by_status.get('ok', 0):,} / {by_status.get('partial', 0):,} / "
            f"{by_status.get('failed', 0):,}",
        ),
        ("wall time", f"{summary['wall_s']:.1f} s"),
        ("throughput", f"{summary['per_minute']:,.0f} per minute"),
        (
            "latency p50 / p95",
            f"{summary['latency_ms']['p50']:.0f} / {summary['latency_ms']['p95']:.0f} ms",
        ),
        ("retries / duplicates dropped", f"{summary['retries']} / {summary['duplicates_dropped']}"),
        ("actor deaths / OOM kills", f"{summary['actor_deaths']} / {summary['oom_kills']}"),
        ("DOM cache hit ratio", f"{cache['hit_ratio']:.1%} ({cache['hits']:,} hits)"),
        ("record cache", f"{records['hits']:,} of {records['total']:,} served from it"),
        ("shed / throttle events", f"{summary['shed_events']} / {summary['throttle_events']}"),
        ("peak memory (process tree, PSS)", _mib(summary.get("peak_tree_pss"))),
    ]
    placement = summary.get("placement") or {}
    if len(placement) > 1:  # one node says nothing the rows above do not
        rows.append(("placement", _placement(placement)))
    nodes = summary.get("nodes") or {}
    if len(nodes) > 1:
        rows.append(("node states", _node_states(nodes)))
    if summary.get("node_events"):
        rows.append(("nodes joined / left", _node_events(summary["node_events"])))
    if summary.get("resumed"):
        rows.append(("resumed", f"{summary['resumed']:,} records written by earlier runs"))
    if summary.get("pending"):
        rows.append(("pending", f"{summary['pending']:,} (run the same command to resume)"))
    for source, reason in summary.get("failed_sources", {}).items():
        rows.append(("source failed", f"{source}: {reason} (its items were never discovered)"))
    cuts = [cut for cut in summary.get("discovery_cut", []) if cut.get("kind") != "limit"]
    for cut in cuts[:SOURCES_SHOWN]:
        rows.append(("source cut short", f"{cut['source']}: {cut['reason']}"))
    if len(cuts) > SOURCES_SHOWN:
        more = len(cuts) - SOURCES_SHOWN
        rows.append(("source cut short", f"... and {more} more in summary.json"))
    blocked = summary.get("blocked_hosts") or {}
    if blocked:
        most = sorted(blocked, key=lambda host: (-blocked[host], host))  # most records first
        shown = ", ".join(most[:SOURCES_SHOWN])
        more = f" and {len(blocked) - SOURCES_SHOWN} more" if len(blocked) > SOURCES_SHOWN else ""
        rows.append(("hosts blocked", f"{shown}{more} (browser.allow_domains allows a host)"))
    for reason in summary.get("given_up", {}).values():
        rows.append(("gave up on", reason))
    rows.append(("store", summary.get("store", "")))
    rows.append(("output", summary.get("out_dir", "")))
    return rows


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    table = Table(
        title=f"landmark: {summary['job']}"
        + ("" if summary["completed"] else f" ({summary.get('stopped') or 'stopped'})"),
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column()
    for name, value in summary_rows(summary):
        table.add_row(name, value)
    (console or Console()).print(table)
