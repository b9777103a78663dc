"""``python -m landmark.benchmarks.actor_bench``: one BrowserWorker on the Gallery site, no Ray.

Issue 3's figures, printed: what one container costs us beyond the site's own
latency (concurrency 1), what one worker with several pages sustains, the same
measured for a bare-Playwright loop on the same site, browser binary and flags
(so "within 80% of bare" is a ratio of two numbers taken in one run), the DOM
cache hit ratio, and whether the learner's chain order pays on a site where the
first listed strategy usually fails.

The site runs in its own process (``start_site_process``) so it does not share
this process's GIL; everything else shares one event loop, as in a BrowserActor.
CPU milliseconds per container are reported for this process and for the
browser tree apart, because on a two-core machine CPU is what caps throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import psutil

from landmark.actors.browser import FoundBrowser, find_browser, launch_browser
from landmark.actors.dom_cache import DomCache
from landmark.actors.learner import DEFAULT_CHAIN, PerformanceLearner
from landmark.actors.worker import BrowserWorker
from landmark.benchmarks.contenders.bare import OPEN_CARD_JS, STEP_TIMEOUT_MS
from landmark.benchmarks.contenders.fields import EXAMPLE_JOB, READ_ROWS_JS, fields_from_rows
from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import SiteConfig, class_prefix, start_site_process
from landmark.config.browser_spec import BrowserSpec
from landmark.config.job import JobSpec
from landmark.config.loading import load_job
from landmark.config.records import Container, Record
from landmark.config.settings import Settings

MODES = ("click", "link")
SEQUENTIAL_MAX = 200  # containers per concurrency-1 run
BATCH = 4  # containers per extract call in the throughput runs
BATCHES_IN_FLIGHT = 3  # so a page never waits for the next call to arrive
JOB_ORDER = ("css", "landmark")  # the chain variant's order: the failing css first
CSS_HIT_SUFFIX = "0"  # the chain variant's css matches ids ending in this (1 in 16)
# Where each field sits in the site's panel body (img first; the hidden decoy row sits
# before the model row): nth-child indexes, correct while missing_rate is 0.
PANEL_ROW = {"created": 2, "prompt": 3, "model": 5, "seed": 6, "dimensions": 7}
WRONG_ROW = {"created": 3, "prompt": 2, "model": 6, "seed": 7, "dimensions": 5}


# -- measurements ---------------------------------------------------------------------


def process_kind(proc: psutil.Process) -> str:
    """driver (Playwright's node), browser (Chromium's main process), renderer, site (the
    Gallery site's process: its CPU competes for the same cores), or other (Chromium's
    network, GPU and utility processes)."""
    try:
        command = proc.cmdline()
    except psutil.Error:
        return "other"
    if not command:
        return "other"
    if "landmark.benchmarks.site" in command:  # `python -m landmark.benchmarks.site`
        return "site"
    if Path(command[0]).name == "node":
        return "driver"
    if "chrom" not in Path(command[0]).name:
        return "other"
    types = [part for part in command if part.startswith("--type=")]
    if not types:
        return "browser"
    return "renderer" if types[0] == "--type=renderer" else "other"


def direct_children() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


class CpuMeter:
    """CPU seconds by process kind between start() and stop(): this process ("python", only
    when no roots are given) and the process trees under ``roots`` (default: all children).
    A process that exits in between takes its CPU time with it."""

    def __init__(self, roots: set[int] | None = None) -> None:
        self._roots = roots
        self._procs: dict[int, psutil.Process] = {}
        self._start: dict[int, tuple[str, float]] = {}

    def _read(self) -> dict[int, tuple[str, float]]:
        me = psutil.Process()
        readings: dict[int, tuple[str, float]] = {}
        if self._roots is None:
            readings[me.pid] = ("python", sum(me.cpu_times()[:2]))
            tops = me.children()
        else:
            tops = [psutil.Process(pid) for pid in self._roots if psutil.pid_exists(pid)]
        for top in tops:
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                continue
            for child in tree:
                proc = self._procs.setdefault(child.pid, child)
                try:
                    readings[proc.pid] = (process_kind(proc), sum(proc.cpu_times()[:2]))
                except psutil.Error:
                    continue
        return readings

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pid, (kind, seconds) in self._read().items():
            before = self._start.get(pid, (kind, 0.0))[1]
            used[kind] = used.get(kind, 0.0) + seconds - before
        return used


@dataclass(slots=True)
class Run:
    """One measured run: per-container wall times, what came back, wall and CPU."""

    name: str
    count: int
    wall_s: float
    per_container_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds by process kind
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.wall_s if self.wall_s else 0.0


def quantile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measured(name: str, body: Callable[[Run], Awaitable[None]]) -> Run:
    run = Run(name, 0, 0.0)
    meter = CpuMeter()
    meter.start()
    began = time.monotonic()
    await body(run)
    run.wall_s = time.monotonic() - began
    run.cpu = meter.stop()
    return run


# -- jobs and workers -------------------------------------------------------------------


class NoCache(DomCache):
    """A DomCache that never offers a path: isolates the strategy chain."""

    def field_paths(self, key: str) -> dict[str, list[int]]:
        return {}


class JobOrderLearner(PerformanceLearner):
    """The real learner, starting from the job's order (the failing css first)."""

    def order(self, domain: str, field: str, chain: tuple[str, ...] = DEFAULT_CHAIN) -> list[str]:
        return super().order(domain, field, JOB_ORDER)


class FixedChainLearner(PerformanceLearner):
    """A learner that never learns an order: the job's order, always."""

    def order(self, domain: str, field: str, chain: tuple[str, ...] = DEFAULT_CHAIN) -> list[str]:
        return list(JOB_ORDER)


def build_job(url: str, mode: str, pages: int, out_dir: Path) -> JobSpec:
    overrides = {
        "sources.urls": [url],
        "containers.open": mode,
        "budget.pages_per_actor": pages,
        "budget.pages_at_start": pages,  # one actor, no coordinator: no page governor
        "browser.recycle_after": 1_000_000,  # no recycle inside a measurement
        "output.dir": str(out_dir),
    }
    return load_job(EXAMPLE_JOB, overrides)


def with_css(job: JobSpec, seed: int, wrong: bool) -> JobSpec:
    """Every field gets a css fallback: matching nothing in most panels, or the wrong row."""
    prefix = class_prefix(seed)
    data = job.model_dump()
    for spec in data["fields"]:
        name = spec["name"]
        if name == "image":
            spec["css"] = f'[data-item$="{CSS_HIT_SUFFIX}"] a[download]'
        elif wrong:
            spec["css"] = f".{prefix}-body > :nth-child({WRONG_ROW[name]}) > .{prefix}-value"
        else:
            row = PANEL_ROW[name]
            spec["css"] = (
                f'[data-item$="{CSS_HIT_SUFFIX}"] .{prefix}-body > :nth-child({row})'
                f" > .{prefix}-value"
            )
    return JobSpec.model_validate(data)


@asynccontextmanager
async def started_worker(job: JobSpec, found: FoundBrowser, **kwargs: Any):
    worker = BrowserWorker(job, "bench", found=found, **kwargs)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


async def discover_all(worker: BrowserWorker, url: str) -> list[Container]:
    found: list[Container] = []
    async for chunk in worker.discover(url):
        found.extend(chunk)
    return found


def record_dict(record: Record) -> dict[str, Any]:
    return {"id": record.id, "fields": record.fields, "status": record.status}


def add_timings(run: Run, record: Record) -> None:
    for name, value in record.timings.items():
        run.timings.setdefault(name, []).append(value)


# -- the actor runs -----------------------------------------------------------------------


async def actor_concurrent(worker: BrowserWorker, containers: list[Container], name: str) -> Run:
    """Batches of BATCH, BATCHES_IN_FLIGHT calls at a time: every page stays busy."""
    batches = iter([containers[i : i + BATCH] for i in range(0, len(containers), BATCH)])

    async def lane(run: Run) -> None:
        for batch in batches:
            for record in await worker.extract(batch):
                run.records.append(record_dict(record))
                add_timings(run, record)
                run.per_container_ms.append(record.timings.get("total", 0.0))

    async def body(run: Run) -> None:
        await asyncio.gather(*(lane(run) for _ in range(BATCHES_IN_FLIGHT)))
        run.count = len(containers)

    run = await measured(name, body)
    run.extra["cache"] = worker.stats()["cache"]
    return run


async def warm_pages(worker: BrowserWorker, containers: list[Container], pages: int) -> None:
    """The last containers, one per page at once: every page loads and scrolls the gallery."""
    await worker.extract(containers[-pages:])


# -- the bare-Playwright reference -----------------------------------------------------------


@asynccontextmanager
async def bare_pages(found: FoundBrowser, count: int, viewport: tuple[int, int]):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # The browser landmark's worker runs by default (browser.load_images off): the same.
        browser = await launch_browser(playwright, found, load_images=BrowserSpec().load_images)
        try:
            context = await browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]}
            )
            yield [await context.new_page() for _ in range(count)]
        finally:
            await browser.close()


async def bare_click_one(page, index: int) -> dict[str, Any]:
    answer = await page.evaluate(OPEN_CARD_JS, [index, STEP_TIMEOUT_MS])
    if answer.get("done") or "error" in answer:
        return {"id": answer.get("id"), "fields": {}, "status": "failed"}
    return {"id": answer["id"], "fields": fields_from_rows(answer["rows"]), "status": "ok"}


async def bare_link_one(page, base: str, cid: str) -> dict[str, Any]:
    response = await page.goto(urljoin(base, f"/item/{cid}"), wait_until="domcontentloaded")
    if response is None or not response.ok:
        return {"id": cid, "fields": {}, "status": "failed"}
    rows = await page.evaluate(READ_ROWS_JS, None)
    return {"id": cid, "fields": fields_from_rows(rows), "status": "ok"}


async def bare_run(
    found: FoundBrowser,
    mode: str,
    base: str,
    ids: list[str],
    pages: int,
    latency: dict[str, float],
    viewport: tuple[int, int],
) -> Run:
    """Each page takes every pages-th container; warmed like the actor's pages first."""
    async with bare_pages(found, pages, viewport) as slots:
        await bare_warm(slots, mode, base, ids)
        return await bare_loop(slots, mode, base, ids, latency)


async def bare_warm(slots: list, mode: str, base: str, ids: list[str]) -> None:
    """Every page opens the gallery and its last cards (click) or an item (link), as
    ``warm_pages`` does for the actor's pages, so neither side measures its first load."""
    if mode == "click":
        await asyncio.gather(*(p.goto(base, wait_until="domcontentloaded") for p in slots))
        last = len(ids) - 1
        await asyncio.gather(*(bare_click_one(p, last - k) for k, p in enumerate(slots)))
    else:
        await asyncio.gather(*(bare_link_one(p, base, ids[k]) for k, p in enumerate(slots)))


async def bare_loop(
    slots: list,
    mode: str,
    base: str,
    ids: list[str],
    latency: dict[str, float],
    span: range | None = None,
) -> Run:
    """The measured bare loop on warmed pages over the positions in ``span`` (default: all):
    page k takes the k-th of them, the k+len(slots)-th, ..."""
    pages = len(slots)
    positions = span if span is not None else range(len(ids))

    async def one(page, index: int) -> dict[str, Any]:
        if mode == "click":
            return await bare_click_one(page, index)
        return await bare_link_one(page, base, ids[index])

    async def slot_loop(run: Run, k: int) -> None:
        for index in positions[k::pages]:
            began = time.monotonic()
            record = await one(slots[k], index)
            wall_ms = (time.monotonic() - began) * 1000
            run.per_container_ms.append(wall_ms)
            run.overhead_ms.append(wall_ms - latency.get(record["id"] or "", 0.0))
            run.records.append(record)

    async def body(run: Run) -> None:
        await asyncio.gather(*(slot_loop(run, k) for k in range(pages)))
        run.count = len(positions)

    return await measured(f"bare {mode} {pages}p", body)


# -- reporting ----------------------------------------------------------------------------


def accuracy(truth: list[dict[str, Any]], run: Run) -> float:
    wanted = {record["id"] for record in run.records}
    return score([item for item in truth if item["id"] in wanted], run.records).accuracy


def cpu_per_container(run: Run) -> str:
    if not run.count or not run.cpu:
        return "cpu/container: not measured"
    kinds = ("python", "driver", "browser", "renderer", "other")
    parts = [f"{kind} {run.cpu.get(kind, 0.0) / run.count * 1000:.1f}" for kind in kinds]
    ours = sum(run.cpu.get(kind, 0.0) for kind in kinds) / run.count * 1000
    site = run.cpu.get("site", 0.0) / run.count * 1000
    return f"cpu ms/container: {', '.join(parts)}; total {ours:.1f} (+ site {site:.1f})"


def phase_medians(run: Run) -> str:
    parts = [
        f"{name} {statistics.median(values):.1f}"
        for name, values in sorted(run.timings.items())
        if values
    ]
    return "phase medians (ms): " + ", ".join(parts) if parts else ""


def print_sequential(run: Run, truth: list[dict[str, Any]]) -> None:
    print(
        f"  {run.name:<28} n={run.count:<4} overhead median {quantile(run.overhead_ms, 0.5):6.1f}"
        f" ms  p95 {quantile(run.overhead_ms, 0.95):6.1f} ms  (wall median "
        f"{quantile(run.per_container_ms, 0.5):.1f} ms)  accuracy {accuracy(truth, run):.3f}"
    )
    print(f"      {cpu_per_container(run)}")
    if run.timings:
        print(f"      {phase_medians(run)}")


def print_throughput(run: Run, truth: list[dict[str, Any]]) -> None:
    print(
        f"  {run.name:<28} n={run.count:<4} {run.rate:7.1f} containers/s  wall {run.wall_s:.2f} s"
        f"  latency p50 {quantile(run.per_container_ms, 0.5):.1f} ms p95 "
        f"{quantile(run.per_container_ms, 0.95):.1f} ms  accuracy {accuracy(truth, run):.3f}"
    )
    print(f"      {cpu_per_container(run)}")
    if run.timings:
        print(f"      {phase_medians(run)}")
    if "cache" in run.extra:
        print(f"      DOM cache {run.extra['cache']}")


# -- the benchmark --------------------------------------------------------------------------


@dataclass(slots=True)
class Bench:
    found: FoundBrowser
    url: str
    seed: int
    truth: list[dict[str, Any]]
    pages: int
    out_dir: Path
    sequential: int = SEQUENTIAL_MAX
    repeats: int = 2

    @property
    def latency(self) -> dict[str, float]:
        return {item["id"]: item["latency_ms"] for item in self.truth}

    def job(self, mode: str, pages: int) -> JobSpec:
        return build_job(self.url, mode, pages, self.out_dir)


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


async def bench_sequential(bench: Bench, mode: str) -> Run:
    """Concurrency 1, actor and bare alternating container by container (a noisy machine
    hurts both alike): per-container wall time minus the site's injected latency. CPU is
    metered per browser tree, and this process's CPU per side by thread time (the loop
    runs one side at a time)."""
    job = bench.job(mode, 1)
    before = direct_children()
    async with started_worker(job, bench.found) as worker:
        actor_tree = direct_children() - before
        async with bare_pages(bench.found, 1, job.browser.viewport) as (page,):
            bare_tree = direct_children() - before - actor_tree
            containers = (await discover_all(worker, bench.url))[: bench.sequential]
            await worker.extract(containers[:2])  # first navigation, first learner samples
            if mode == "click":
                await page.goto(bench.url, wait_until="domcontentloaded")
            actor = Run(f"actor {mode} 1p (c=1)", len(containers), 0.0)
            bare = Run(f"bare {mode} 1p (c=1)", len(containers), 0.0)
            meters = {"actor": CpuMeter(actor_tree), "bare": CpuMeter(bare_tree)}
            python = {"actor": 0.0, "bare": 0.0}
            for meter in meters.values():
                meter.start()
            for container in containers:
                began, cpu = time.monotonic(), time.thread_time()
                (record,) = await worker.extract([container])
                python["actor"] += time.thread_time() - cpu
                note(actor, container.id, began, bench.latency, record_dict(record))
                add_timings(actor, record)
                began, cpu = time.monotonic(), time.thread_time()
                if mode == "click":
                    answer = await bare_click_one(page, container.position)
                else:
                    answer = await bare_link_one(page, bench.url, container.id)
                python["bare"] += time.thread_time() - cpu
                note(bare, container.id, began, bench.latency, answer)
            for name, run in (("actor", actor), ("bare", bare)):
                run.cpu = meters[name].stop() | {"python": python[name]}
            actor.extra["cache"] = worker.stats()["cache"]
    print_sequential(actor, bench.truth)
    print_sequential(bare, bench.truth)
    return actor


def note(run: Run, cid: str, began: float, latency: dict[str, float], record: dict) -> None:
    wall_ms = (time.monotonic() - began) * 1000
    run.per_container_ms.append(wall_ms)
    run.overhead_ms.append(wall_ms - latency[cid])
    run.records.append(record)


async def actor_throughput(bench: Bench, mode: str) -> Run:
    async with started_worker(bench.job(mode, bench.pages), bench.found) as worker:
        containers = await discover_all(worker, bench.url)
        await warm_pages(worker, containers, bench.pages)
        return await actor_concurrent(worker, containers, f"actor {mode} {bench.pages}p")


async def bench_throughput(bench: Bench, mode: str) -> float:
    """Actor and bare runs alternating (A B B A ...); the median rate of each."""
    viewport = bench.job(mode, 1).browser.viewport
    ids = [item["id"] for item in bench.truth]
    actors: list[Run] = []
    bares: list[Run] = []
    for repeat in range(bench.repeats):
        order = ("actor", "bare") if repeat % 2 == 0 else ("bare", "actor")
        for who in order:
            if who == "actor":
                actors.append(await actor_throughput(bench, mode))
            else:
                bares.append(
                    await bare_run(
                        bench.found, mode, bench.url, ids, bench.pages, bench.latency, viewport
                    )
                )
    for run in actors + bares:
        print_throughput(run, bench.truth)
    actor_rate = statistics.median(run.rate for run in actors)
    bare_rate = statistics.median(run.rate for run in bares)
    ratio = actor_rate / bare_rate if bare_rate else float("nan")
    print(
        f"  median of {bench.repeats}: actor {actor_rate:.1f}/s, bare {bare_rate:.1f}/s,"
        f" actor / bare = {ratio:.2f}  ({load()})"
    )
    return ratio


async def bench_mode(bench: Bench, mode: str) -> dict[str, float]:
    print(f"\n== {mode} mode ({load()}) ==")
    seq = await bench_sequential(bench, mode)
    ratio = await bench_throughput(bench, mode)
    return {"overhead_median": quantile(seq.overhead_ms, 0.5), "ratio": ratio}


CHAIN_VARIANTS = (
    ("css matches nothing in most panels, DomCache on", False, False),
    ("css matches nothing in most panels, DomCache off", True, False),
    ("css returns a WRONG value in every panel, DomCache on", False, True),
)


async def bench_chain(bench: Bench) -> None:
    """Fixed versus learned chain order, css listed first; the two alternate per container."""
    print(f"\n== chain order (click, c=1, fixed and learned alternating; {load()}) ==")
    base = bench.job("click", 1)
    for title, no_cache, wrong in CHAIN_VARIANTS:
        print(f"  -- {title} (css hits only ids ending in {CSS_HIT_SUFFIX!r}: 1 in 16)")
        if wrong:
            print("     (text fields' css picks a neighbour row; image as above)")
        job = with_css(base, bench.seed, wrong)
        async with (
            started_worker(job, bench.found, learner=FixedChainLearner()) as fixed,
            started_worker(job, bench.found, learner=JobOrderLearner()) as learned,
        ):
            workers = {"fixed": fixed, "learned": learned}
            runs = {}
            for name, worker in workers.items():
                if no_cache:
                    worker.cache = NoCache()
                containers = (await discover_all(worker, bench.url))[: bench.sequential]
                runs[name] = Run(name, len(containers), 0.0)
            for index, container in enumerate(containers):
                names = list(workers) if index % 2 == 0 else list(reversed(workers))
                for name in names:
                    began = time.monotonic()
                    (record,) = await workers[name].extract([container])
                    note(runs[name], container.id, began, bench.latency, record_dict(record))
                    add_timings(runs[name], record)
            for name, worker in workers.items():
                print_sequential(runs[name], bench.truth)
                chains = worker.learner.summary()["chains"]
                print(
                    f"      winners {strategy_counts(worker)}  chain(created) {first_chain(chains)}"
                )


def strategy_counts(worker: BrowserWorker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (_domain, _field, strategy), stats in worker.learner._strategies.items():
        counts[strategy] = counts.get(strategy, 0) + stats.successes
    return counts


def first_chain(chains: dict[str, list[str]]) -> list[str] | None:
    return next((chain for key, chain in chains.items() if key.endswith(" created")), None)


async def main_async(args: argparse.Namespace) -> int:
    found = find_browser(Settings.from_env().browser)
    config = SiteConfig(items=args.items, latency_ms=args.latency_ms)
    out_dir = Path(tempfile.mkdtemp(prefix="actor-bench-"))
    with start_site_process(config) as site:
        bench = Bench(
            found,
            site.url,
            config.seed,
            site.truth(),
            args.pages,
            out_dir,
            min(args.items, SEQUENTIAL_MAX),
            args.repeats,
        )
        print(
            f"actor_bench: site {site.url} items={args.items} latency_ms={args.latency_ms}"
            f" pages={args.pages} browser={found.path} cpus={os.cpu_count()}"
        )
        summary = {}
        for mode in args.modes:
            summary[mode] = await bench_mode(bench, mode)
        if not args.no_chain:
            await bench_chain(bench)
    shutil.rmtree(out_dir, ignore_errors=True)
    print("\n== summary ==")
    for mode, figures in summary.items():
        print(
            f"  {mode}: overhead median {figures['overhead_median']:.1f} ms at c=1;"
            f" actor/bare throughput {figures['ratio']:.2f}"
        )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.benchmarks.actor_bench", description=__doc__
    )
    parser.add_argument("--items", type=_positive, default=400, help="gallery items")
    parser.add_argument("--pages", type=_positive, default=4, help="pages in the throughput runs")
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the site's mean latency")
    parser.add_argument("--repeats", type=_positive, default=2, help="throughput runs each")
    parser.add_argument("--no-chain", action="store_true", help="skip the chain-order runs")
    args = parser.parse_args(argv)
    args.modes = list(MODES) if args.mode == "both" else [args.mode]
    return args


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
