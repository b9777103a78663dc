"""The research scenarios: each a function of a ``Bench`` that returns its JSON section.

Every scenario starts the Gallery site(s) it needs in their own processes,
runs its contenders interleaved (A B C, then C B A, ...) so that whatever else
the machine is doing hurts all of them alike, and scores every run against
the site's ground truth: a run that loses or duplicates a container fails
the scenario, whatever its speed. Sizes have a full and a ``--quick`` value.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landmark.benchmarks.contenders import (
    ContenderProcess,
    Kind,
    Mode,
    Outcome,
    RunSpec,
    Samples,
    WorkerError,
)
from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import SiteConfig, start_site_process
from landmark.config.job import BudgetSpec
from landmark.coordinator.preflight import actors_for

GiB = 2**30
DEFAULT_LANDMARK = "landmark-auto"  # the default budget (see landmark_default)
START_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Contender:
    """One line of the tables: a contender kind with its settings."""

    name: str  # e.g. "landmark-2x4", "bare-8", "baseline-0.1"
    kind: Kind
    actors: int = 1
    pages: int = 4
    delay_scale: float = 1.0
    adaptive_pages: bool = False
    max_items: int | None = None  # the seeds' baseline is too slow for a whole gallery
    modes: tuple[Mode, ...] = ("click", "link")

    def spec(
        self, sources: list[str], mode: Mode, items: int, out_dir: Path, **extra: Any
    ) -> RunSpec:
        return RunSpec(
            kind=self.kind,
            label=self.name,
            sources=sources,
            mode=mode,
            items=items,
            actors=self.actors,
            pages=self.pages,
            adaptive_pages=self.adaptive_pages,
            delay_scale=self.delay_scale,
            out_dir=str(out_dir),
            **extra,
        )


def landmark(actors: int, pages: int) -> Contender:
    return Contender(f"landmark-{actors}x{pages}", "landmark", actors=actors, pages=pages)


def landmark_default() -> Contender:
    """The default budget, as a newcomer's run gets it: ``actors: auto`` on this machine,
    ``pages_at_start`` pages each, the page governor taking them up to ``pages_per_actor``."""
    budget = BudgetSpec()
    actors = actors_for([os.cpu_count() or 1])
    return Contender(
        DEFAULT_LANDMARK,
        "landmark",
        actors=actors,
        pages=budget.pages_per_actor,
        adaptive_pages=True,
    )


def bare(pages: int) -> Contender:
    return Contender(f"bare-{pages}", "bare", pages=pages)


def baseline(scale: float, max_items: int) -> Contender:
    return Contender(
        f"baseline-{scale:g}", "baseline", pages=1, delay_scale=scale, max_items=max_items
    )


def crawlee(pages: int) -> Contender:
    return Contender(f"crawlee-{pages}", "crawlee", pages=pages, modes=("link",))


@dataclass(slots=True)
class Bench:
    """What every scenario shares: sizes, filters, scratch space and the worker processes."""

    quick: bool = False
    repeats: int | None = None
    items: int | None = None
    latencies: list[float] | None = None
    modes: list[Mode] | None = None
    only: list[str] | None = None  # contender-name prefixes to keep
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="landmark-bench-")))
    out: Any = sys.stderr
    workers: dict[str, ContenderProcess] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _runs: int = 0

    def size(self, quick: int, full: int) -> int:
        return self.items or (quick if self.quick else full)

    def reps(self, quick: int = 2, full: int = 3) -> int:
        return self.repeats or (quick if self.quick else full)

    def pick_latencies(self, default: list[float]) -> list[float]:
        return self.latencies if self.latencies is not None else default

    def pick_modes(self, default: list[Mode]) -> list[Mode]:
        return self.modes if self.modes is not None else default

    def keep(self, contenders: list[Contender]) -> list[Contender]:
        if not self.only:
            return contenders
        return [c for c in contenders if any(c.name.startswith(p) for p in self.only)]

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=self.out, flush=True)

    def worker(self, kind: str) -> ContenderProcess:
        process = self.workers.get(kind)
        if process is None:
            process = ContenderProcess(kind, self.scratch / "logs" / f"{kind}.log")  # type: ignore[arg-type]
            for attempt in range(START_ATTEMPTS):
                self.say(f"starting the {kind} worker")
                try:
                    self.workers[kind] = process.start()
                    break
                except WorkerError as error:  # e.g. Ray timing out on a loaded machine
                    process.stop()
                    self.say(f"{error}")
                    if attempt == START_ATTEMPTS - 1:
                        raise
        return process

    def close(self) -> None:
        for process in self.workers.values():
            process.stop()
        self.workers.clear()

    def run(
        self,
        contender: Contender,
        spec: RunSpec,
        truth: list[dict],
        cell: dict[str, Any],
        repeat: int = 0,
        interval: float = 0.5,
        keep_series: bool = False,
        keep_latencies: bool = False,
    ) -> dict[str, Any]:
        """One scored run as a JSON row; a lost or duplicated container is recorded as a failure."""
        self._runs += 1
        try:
            outcome, samples = self.worker(contender.kind).run(spec, interval)
        except WorkerError as error:
            outcome, samples = (
                Outcome(label=spec.label, kind=spec.kind, error=str(error)),
                Samples(),
            )
        row = _row(contender, spec, outcome, samples, truth, cell, repeat)
        if keep_series:
            row["series"] = samples.series()
        if keep_latencies:
            row["latencies"] = _positions_and_latencies(outcome, truth)
        problem = _problem(row)
        if problem:
            self.failures.append(f"{contender.name} {cell}: {problem}")
        self.say(_one_line(row))
        return row


@contextlib.contextmanager
def site(config: SiteConfig) -> Iterator[Any]:
    with start_site_process(config) as running:
        yield running


def reset_site(url: str) -> None:
    """Forget the site's attempt counters between runs (failure injection is per attempt)."""
    request = urllib.request.Request(url.rstrip("/") + "/api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):
        pass


def interleaved(contenders: list[Contender], repeats: int) -> Iterator[tuple[int, Contender]]:
    """A B C, C B A, A B C, ...: order effects cancel over the repeats."""
    for repeat in range(repeats):
        order = contenders if repeat % 2 == 0 else contenders[::-1]
        for contender in order:
            yield repeat, contender


def _run_cells(
    bench: Bench,
    cells: list[dict[str, Any]],
    contenders: list[Contender],
    items: int,
    repeats: int,
    page_size: int | None = None,
    **run_options: Any,
) -> list[dict[str, Any]]:
    """``page_size``: cards per list page (default: the site's)."""
    rows = []
    for cell in cells:
        config = SiteConfig(
            items=items, latency_ms=cell["latency_ms"], label_variants=True, missing_rate=0.05
        )
        if page_size is not None:
            config = config.model_copy(update={"page_size": page_size})
        with site(config) as running:
            truth = running.truth()
            for repeat, contender in interleaved(contenders, repeats):
                if cell["mode"] not in contender.modes:
                    continue
                count = min(items, contender.max_items or items)
                spec = contender.spec(
                    [running.url], cell["mode"], count, bench.scratch / "runs" / contender.name
                )
                reset_site(running.url)
                rows.append(bench.run(contender, spec, truth[:count], cell, repeat, **run_options))
    return rows


# -- the scenarios ------------------------------------------------------------------------------


def throughput(bench: Bench) -> dict[str, Any]:
    """Containers/min and p50/p95 container latency, click and link, site latency 0 and 100 ms."""
    items = bench.size(40, 400)
    if bench.quick:  # equal concurrency (4); the scaling scenario covers actor counts
        contenders = [landmark_default(), bare(4), crawlee(4), baseline(0.1, 6), baseline(1.0, 1)]
    else:  # the targets' contenders: landmark with the default budget
        contenders = [landmark_default(), bare(4), crawlee(4), baseline(0.1, 10), baseline(1.0, 3)]
    contenders = bench.keep(contenders)
    cells = [
        {"mode": mode, "latency_ms": latency}
        for mode in bench.pick_modes(["click", "link"])
        for latency in bench.pick_latencies([0.0, 100.0])
    ]
    rows = _run_cells(bench, cells, contenders, items, bench.reps())
    return {
        "params": {
            "items": items,
            "repeats": bench.reps(),
            "cells": cells,
            "contenders": [c.name for c in contenders],
        },
        "runs": rows,
    }


def efficiency(bench: Bench) -> dict[str, Any]:
    """Share of wall time that is the site's own latency, at 0/50/200/1000 ms, equal concurrency.

    The gallery lists all its cards in its first list page. The site waits its latency on
    list pages too, and in a paginated gallery a page seeking a card waits for the list
    pages before it (and the pages of one browser were seen to get the same list page one
    after another, a latency apart). That wait is the site's, but the
    shares count item latency only, so neither contender could get near 100% at any
    latency. With one list page, loaded when a page opens (outside every container), a
    container's time is its item's latency plus the crawler's own work.
    """
    items = bench.size(48, 240)
    contenders = bench.keep([landmark(2, 4), bare(8)])
    cells = [
        {"mode": mode, "latency_ms": latency}
        for mode in bench.pick_modes(["click"])
        for latency in bench.pick_latencies([0.0, 50.0, 200.0, 1000.0])
    ]
    rows = _run_cells(bench, cells, contenders, items, bench.reps(1, 3), page_size=items)
    return {
        "params": {
            "items": items,
            "page_size": items,
            "repeats": bench.reps(1, 3),
            "cells": cells,
            "contenders": [c.name for c in contenders],
        },
        "runs": rows,
    }


def scaling(bench: Bench) -> dict[str, Any]:
    """landmark throughput against actors (1,2,4) and pages per actor (1,2,4,8), CPU and RSS."""
    items = bench.size(48, 400)  # 240 made start-up a third of a run at 100 ms
    latency = bench.pick_latencies([100.0])[0]
    if bench.quick:
        shapes = [(1, 4), (2, 4), (4, 4), (1, 1), (1, 2), (1, 8)]
    else:  # pages 1-8 on one actor, then more actors at the pages that did best
        shapes = [(1, 1), (1, 2), (1, 4), (1, 8), (2, 2), (2, 4), (2, 8), (4, 4)]
    # the default budget beside the fixed settings: it must not be slower than the best
    contenders = bench.keep([landmark_default(), *(landmark(a, p) for a, p in shapes)])
    cells = [{"mode": mode, "latency_ms": latency} for mode in bench.pick_modes(["click"])]
    rows = _run_cells(bench, cells, contenders, items, bench.reps(1, 2))
    return {
        "params": {"items": items, "repeats": bench.reps(1, 2), "cells": cells, "shapes": shapes},
        "runs": rows,
    }


def depth(bench: Bench) -> dict[str, Any]:
    """Latency per decile of position over a deep gallery (age penalty off)."""
    items = bench.size(300, 2000)
    # The seeds' baseline, one position per decile: it scrolls from the top for each one,
    # and three per decile took 25 of this scenario's 27 minutes at the full size.
    positions = [int((d + 0.5) * items / 10) for d in range(10)]
    contenders = bench.keep([landmark(2, 4), bare(8), baseline(0.1, len(positions))])
    mode = bench.pick_modes(["click"])[0]
    latency = bench.pick_latencies([0.0])[0]
    cell = {"mode": mode, "latency_ms": latency}
    rows = []
    config = SiteConfig(items=items, latency_ms=latency, age_penalty=0.0, label_variants=True)
    with site(config) as running:
        truth = running.truth()
        for repeat, contender in interleaved(contenders, bench.reps(1, 1)):
            extra = {"positions": positions} if contender.kind == "baseline" else {}
            count = len(positions) if contender.kind == "baseline" else items
            subset = [truth[p] for p in positions] if extra else truth
            spec = contender.spec(
                [running.url],
                mode,
                count,
                bench.scratch / "runs" / contender.name,
                timeout_s=3600.0,
                **extra,
            )
            reset_site(running.url)
            rows.append(bench.run(contender, spec, subset, cell, repeat, keep_latencies=True))
    return {
        "params": {"items": items, "baseline_positions": positions, "cells": [cell]},
        "runs": rows,
    }


def memory(bench: Bench) -> dict[str, Any]:
    """RSS of landmark's whole process tree, sampled every second through a long run.

    The gallery is virtualised (about three screens of cards in the DOM, as long galleries
    keep): in one that keeps every card, each page holds all the cards above its own, and
    that growth is the site's, not landmark's (at 10,000 cards, 8 pages held ~400 MB each).
    """
    items = bench.size(2000, 10_000)
    contender = landmark(2, 4)
    if not bench.keep([contender]):
        return {
            "params": {"items": items, "skipped": "landmark not among --contenders"},
            "runs": [],
        }
    cell = {"mode": bench.pick_modes(["click"])[0], "latency_ms": bench.pick_latencies([0.0])[0]}
    config = SiteConfig(
        items=items, latency_ms=cell["latency_ms"], label_variants=True, virtualize=True
    )
    with site(config) as running:
        truth = running.truth()
        spec = contender.spec(
            [running.url],
            cell["mode"],
            items,
            bench.scratch / "runs" / contender.name,
            timeout_s=3600.0,
        )
        row = bench.run(contender, spec, truth, cell, interval=1.0, keep_series=True)
    return {"params": {"items": items, "cells": [cell], "virtualized": True}, "runs": [row]}


def spike(bench: Bench, sources: int = 10) -> dict[str, Any]:
    """Ten galleries at once under a memory limit set just above a calm run's peak."""
    items = bench.size(30, 200)
    contender = landmark(2, 4)
    if not bench.keep([contender]):
        return {
            "params": {"sources": sources, "skipped": "landmark not among --contenders"},
            "runs": [],
        }
    mode = bench.pick_modes(["click"])[0]
    latency = bench.pick_latencies([50.0])[0]
    configs = [
        SiteConfig(items=items, seed=seed, latency_ms=latency, label_variants=True)
        for seed in range(1, sources + 1)
    ]
    with contextlib.ExitStack() as stack:
        sites = [stack.enter_context(site(config)) for config in configs]
        truths = [running.truth() for running in sites]
        calm_cell = {"mode": mode, "latency_ms": latency, "phase": "calm", "sources": 1}
        calm_spec = contender.spec([sites[0].url], mode, items, bench.scratch / "runs" / "calm")
        calm = bench.run(contender, calm_spec, truths[0], calm_cell)
        peak = calm["memory"].get("node_used_max") or 0
        if calm.get("error") or not peak:
            return {
                "params": {"sources": sources, "skipped": "the calm run failed"},
                "runs": [calm],
            }
        throttle, shed = peak + GiB // 4, peak + GiB // 2
        for running in sites:
            reset_site(running.url)
        cell = {
            "mode": mode,
            "latency_ms": latency,
            "phase": "spike",
            "sources": sources,
            "memory_throttle": throttle,
            "memory_shed": shed,
        }
        spec = contender.spec(
            [s.url for s in sites],
            mode,
            items,
            bench.scratch / "runs" / "spike",
            memory_throttle=throttle,
            memory_shed=shed,
            timeout_s=1800.0,
        )
        row = bench.run(
            contender, spec, [t for truth in truths for t in truth], cell, keep_series=True
        )
    used = row["memory"].get("node_used_max") or 0
    summary = row.get("landmark") or {}
    row["checks"] = {
        "under_shed_limit": used <= shed,
        "oom_kills_zero": summary.get("oom_kills", 0) == 0,
        "nothing_lost": row["score"]["lost"] == 0 and row["score"]["duplicates"] == 0,
    }
    for name, ok in row["checks"].items():
        if not ok:
            bench.failures.append(f"spike: check {name} failed")
    return {
        "params": {
            "items_per_source": items,
            "sources": sources,
            "calm_peak": peak,
            "memory_throttle": throttle,
            "memory_shed": shed,
        },
        "runs": [calm, row],
    }


SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "throughput": throughput,
    "efficiency": efficiency,
    "scaling": scaling,
    "depth": depth,
    "memory": memory,
    "spike": spike,
}


# -- rows ---------------------------------------------------------------------------------------


def _row(
    contender: Contender,
    spec: RunSpec,
    outcome: Outcome,
    samples: Samples,
    truth: list[dict],
    cell: dict[str, Any],
    repeat: int,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "contender": contender.name,
        "kind": contender.kind,
        "cell": cell,
        "repeat": repeat,
        "items": spec.items,
        "concurrency": spec.concurrency,
        "unavailable": outcome.unavailable,
        "error": outcome.error,
        "wall_s": round(outcome.wall_s, 3),
        "startup_s": round(outcome.startup_s, 3),
        "first_record_s": outcome.first_record_s,
        "memory": samples.summary(),
    }
    if outcome.unavailable or outcome.error:
        return row
    records = [{"id": r.id, "fields": r.fields} for r in outcome.records]
    result = score(truth, records)
    latencies = sorted(r.latency_ms for r in outcome.records)
    by_id = {item["id"]: item for item in truth}
    site_ms = sum(by_id[r.id]["latency_ms"] for r in outcome.records if r.id in by_id)
    wall = outcome.wall_s or float("nan")
    row.update(
        {
            "records": len(outcome.records),
            "failed_records": sum(not r.ok for r in outcome.records),
            "per_min": round(len(outcome.records) / wall * 60, 1),
            "p50_ms": round(_quantile(latencies, 0.5), 1),
            "p95_ms": round(_quantile(latencies, 0.95), 1),
            "site_ms": round(site_ms, 1),
            "wall_share": round(site_ms / 1000 / (wall * spec.concurrency), 4),
            "container_share": round(site_ms / sum(latencies), 4) if sum(latencies) else None,
            "score": {
                "items": result.items,
                "records": result.records,
                "lost": result.lost,
                "duplicates": result.duplicates,
                "unknown_ids": result.unknown_ids,
                "accuracy": round(result.accuracy, 4),
                "wrong": result.wrong,
            },
        }
    )
    summary = outcome.extra.get("summary")
    if summary:
        row["landmark"] = {
            key: summary.get(key)
            for key in (
                "wall_s",
                "startup_s",
                "startup_parts_s",
                "per_minute",
                "latency_ms",
                "retries",
                "actor_deaths",
                "oom_kills",
                "shed_events",
                "throttle_events",
                "shed_requests",
                "peak_tree_rss",
                "by_status",
                "duplicates_dropped",
                "adaptive_limit",
                "pages",
                "coordinator",
            )
        }
    return row


def _positions_and_latencies(outcome: Outcome, truth: list[dict]) -> list[list[float]]:
    position = {item["id"]: item["position"] for item in truth}
    return [[position[r.id], round(r.latency_ms, 1)] for r in outcome.records if r.id in position]


def _problem(row: dict[str, Any]) -> str | None:
    if row.get("unavailable"):
        return None
    if row.get("error"):
        return f"error: {row['error']}"
    result = row["score"]
    if result["lost"] or result["duplicates"]:
        return f"lost {result['lost']}, duplicated {result['duplicates']}"
    return None


def _one_line(row: dict[str, Any]) -> str:
    head = f"{row['contender']:<14} {_cell_text(row['cell']):<22} #{row['repeat']}"
    if row.get("unavailable") or row.get("error"):
        return f"{head} {row.get('unavailable') or row.get('error')}"
    result = row["score"]
    return (
        f"{head} {row['records']:>5} rec {row['wall_s']:7.2f}s {row['per_min']:8.1f}/min "
        f"p50 {row['p50_ms']:7.0f}ms p95 {row['p95_ms']:7.0f}ms acc {result['accuracy']:.3f} "
        f"lost {result['lost']} dup {result['duplicates']}"
    )


def _cell_text(cell: dict[str, Any]) -> str:
    text = f"{cell.get('mode')} {cell.get('latency_ms', 0):g}ms"
    return f"{text} {cell['phase']}" if "phase" in cell else text


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[round(q * 100) - 1]
