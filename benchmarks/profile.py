"""``landmark bench profile``: where one container's time and CPU go, landmark beside a bare loop.

The throughput scenarios say *that* landmark is slower than a bare Playwright loop; this
says *where*. It runs the same containers of the Gallery site through both contenders
of ``actor_bench``, each on its own Chromium with the same number of pages, in spans that
alternate between the two (so a noisy machine hurts both alike):

- **landmark**: a ``BrowserWorker`` (the BrowserActor without Ray) in this process, fed
  batches as ``actor_bench`` feeds it (``actor_concurrent``);
- **bare**: ``actor_bench``'s bare loop (one in-page call per container).

and measures each span with instruments of the browser and of Python
(``profile_meters.py``): wall time and latency, this process's CPU, the Playwright
client's calls (each one a round trip to the driver, which sends CDP commands) in number,
bytes and time, the renderer's own counters (CDP ``Performance.getMetrics``), CPU per
process (psutil), the site's request counters, and, over a shorter pass under a
Chromium trace, CPU per thread and kind of work (script, style, layout, paint, raster)
and the bytes loaded; py-spy samples this process meanwhile when it is installed.

What a Ray run adds is not run here (no Ray is started): the coordinator's CPU per
container comes from a real run's ``summary.json`` (the newest under ``runs/``, or
``--summary``; in ``bench all``, from the throughput scenario just run), and the pickling
of a batch and its records, which Ray does at both ends of every call, is timed on this
run's own containers and records. The table's last column names the source of every
figure. The JSON goes to the results folder, where ``bench report`` makes it RESULTS.md's
*profile* section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landmark.benchmarks.profile_meters import (
    TRACE_CATEGORIES,
    PageMetrics,
    ProtocolMeter,
    ProtocolTally,
    PySpy,
    analyse_trace,
    browser_figures,
    quantile,
    summarise_stacks,
)
from landmark.benchmarks.scenarios import DEFAULT_LANDMARK

if TYPE_CHECKING:
    from landmark.benchmarks.actor_bench import Run

ITEMS, QUICK_ITEMS = 200, 40
TRACE_ITEMS, QUICK_TRACE_ITEMS = 40, 16
PAGES = 4  # per contender: bare-4's, and the default budget's pages_at_start
CHUNKS = 4  # spans per contender, alternating between the two
OS_KINDS = ("python", "driver", "browser", "renderer", "other", "site")
EXIT_OK, EXIT_FAILED = 0, 1


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("profile (cost per container; see benchmarks/profile.py)")
    group.add_argument("--mode", choices=["click", "link"], default="click", help="open mode")
    group.add_argument(
        "--latency-ms", type=float, default=0.0, help="the site's mean latency (default 0)"
    )
    group.add_argument(
        "--concurrency", type=int, default=PAGES, help=f"pages per contender (default {PAGES})"
    )
    group.add_argument(
        "--trace-items",
        type=int,
        help=f"containers in the traced pass, after the measured ones (default {TRACE_ITEMS}; "
        f"quick {QUICK_TRACE_ITEMS})",
    )
    group.add_argument(
        "--summary",
        type=Path,
        help="a real run's summary.json for the coordinator's share (default: newest in runs/)",
    )
    group.add_argument(
        "--out",
        type=Path,
        help="a copy of the JSON beside the results folder's (default for 'bench profile': "
        "runs/profile/profile-MODE-TIME.json; 'bench all': none)",
    )
    group.add_argument("--no-py-spy", action="store_true", help="do not sample with py-spy")
    group.add_argument(
        "--keep-traces",
        action="store_true",
        help="save each contender's trace beside the JSON (open it in Perfetto or chrome://tracing)",
    )


@dataclass(slots=True)
class Options:
    """The command line, resolved: sizes from --quick unless given, the output paths, and
    the summary.json the coordinator's share is read from."""

    items: int
    mode: str
    latency_ms: float
    pages: int
    trace_items: int
    summary: Path | None
    out: Path | None  # a copy of the JSON beside the results folder's
    traces: Path  # kept traces go beside this path
    py_spy: bool
    keep_traces: bool
    quick: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_out: bool = True) -> Options:
        """``default_out`` False: no copy under runs/ unless ``--out`` asks for one (``bench
        all`` keeps its JSON in the results folder only)."""
        items = args.items or (QUICK_ITEMS if args.quick else ITEMS)
        traced = args.trace_items or (QUICK_TRACE_ITEMS if args.quick else TRACE_ITEMS)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        default = Path("runs") / "profile" / f"profile-{args.mode}-{stamp}.json"
        return cls(
            items=items,
            mode=args.mode,
            latency_ms=args.latency_ms,
            pages=max(1, args.concurrency),
            trace_items=max(1, traced),
            summary=args.summary or newest_summary(Path("runs")),
            out=args.out or (default if default_out else None),
            traces=args.out or default,
            py_spy=not args.no_py_spy,
            keep_traces=args.keep_traces,
            quick=args.quick,
        )


def run_profile_command(args: argparse.Namespace) -> int:
    """Profile both contenders, save the JSON, print the table; 1 if a container failed."""
    from landmark.benchmarks.harness import run_context

    options = Options.from_args(args)
    began = time.monotonic()
    document = run_profile(options)
    for path in save_profile(document, options, args.results_dir, run_context(began)):
        say(f"wrote {path}")
    from landmark.benchmarks.profile_table import print_profile

    print_profile(document)
    for problem in document["failures"]:
        print(f"landmark bench profile: FAILED {problem}", file=sys.stderr)
    return EXIT_FAILED if document["failures"] else EXIT_OK


def run_profile(options: Options, coordinator: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile's document; ``coordinator`` (figures as :func:`coordinator_figures` gives
    them) stands in for the summary.json when the caller has a fresher run's."""
    return asyncio.run(profile(options, coordinator))


def save_profile(
    document: dict[str, Any], options: Options, results_dir: Path, context: dict[str, Any]
) -> list[Path]:
    """The document in the results folder, where ``bench report`` finds it, with the run's
    context (command, machine, versions, duration) as every scenario's has it; and at
    ``options.out`` too unless that is None (``bench all`` without ``--out``)."""
    from landmark.benchmarks.report import save_result

    started = datetime.fromisoformat(document["started"])
    paths = [save_result("profile", document, results_dir, started, context)]
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_bytes(paths[0].read_bytes())
        paths.append(options.out)
    return paths


def say(message: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the stage both contenders share ------------------------------------------------------------


@dataclass(slots=True)
class Stage:
    """What both contenders share: one site (its truth and pid: its CPU is metered apart),
    one browser binary, one protocol meter."""

    options: Options
    found: Any  # FoundBrowser
    url: str
    site_pid: int
    truth: list[dict[str, Any]]
    scratch: Path
    meter: ProtocolMeter = field(default_factory=ProtocolMeter)

    @property
    def latency(self) -> dict[str, float]:
        return {item["id"]: item["latency_ms"] for item in self.truth}

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in self.truth]


@dataclass(slots=True)
class Contender:
    """One side, ready to measure: its warmed pages, its browser, the processes it started,
    and how to run the containers at some positions (the Run's ``per_container_ms`` is each
    container's time with a page in hand)."""

    name: str
    pages: list[Any]
    browser: Any
    roots: set[int]  # its Playwright driver(s): the browser tree hangs under them
    run_span: Callable[[range], Awaitable[Run]]
    extra: Callable[[], dict[str, Any]] = dict


@dataclass(slots=True)
class Totals:
    """One contender's figures, summed over its chunks."""

    trackers: list[PageMetrics]
    tally: ProtocolTally = field(default_factory=ProtocolTally)
    latency_ms: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    python_s: float = 0.0
    os_cpu_s: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)


async def profile(options: Options, coordinator: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both contenders measured on one site; the JSON document (what the table shows) less
    the run's context, which :func:`save_profile` adds."""
    from landmark.actors.browser import find_browser
    from landmark.benchmarks.site import SiteConfig, start_site_process
    from landmark.config.settings import Settings

    found = find_browser(Settings.from_env().browser)
    # The traced pass takes containers of its own after the measured ones: revisited ones
    # would come partly from the browser's cache.
    total_items = options.items + options.trace_items
    config = SiteConfig(items=total_items, latency_ms=options.latency_ms)
    started = datetime.now(UTC)
    with (
        start_site_process(config) as site,
        tempfile.TemporaryDirectory(prefix="landmark-profile-") as scratch,
    ):
        stage = Stage(options, found, site.url, site.pid, site.truth(), Path(scratch))
        say(f"site {site.url}: {total_items} items, {options.mode} mode, {options.pages} pages")
        with stage.meter.installed():
            async with bare_contender(stage) as bare, landmark_contender(stage) as ours:
                contenders = await measure_both(stage, [bare, ours])
    return {
        "scenario": "profile",
        "quick": options.quick,
        "started": started.isoformat(timespec="seconds"),
        "load_average": os.getloadavg()[0],
        "params": {
            "items": options.items,
            "mode": options.mode,
            "latency_ms": options.latency_ms,
            "pages": options.pages,
            "chunks": CHUNKS,
            "trace_items": options.trace_items,
            "quick": options.quick,
        },
        "contenders": contenders,
        "coordinator": coordinator or coordinator_share(options.summary),
        "failures": failures(contenders),
    }


def failures(contenders: dict[str, dict[str, Any]]) -> list[str]:
    """A profile of a run that lost containers would explain the wrong thing: it fails."""
    problems = []
    for name, figures in contenders.items():
        if figures["failed"] or figures["records"] != figures["containers"]:
            problems.append(
                f"{name}: {figures['failed']} failed, {figures['records']} records of "
                f"{figures['containers']} containers"
            )
    return problems


# -- the contenders ---------------------------------------------------------------------------


@asynccontextmanager
async def bare_contender(stage: Stage) -> AsyncIterator[Contender]:
    """actor_bench's bare loop on warmed pages of its own browser; the processes that
    appear while it starts are its tree, metered apart from the other contender's."""
    from landmark.benchmarks.actor_bench import bare_loop, bare_pages, bare_warm, build_job

    options = stage.options
    viewport = build_job(stage.url, options.mode, 1, stage.scratch).browser.viewport
    ids = stage.ids
    say("bare: launching, warming the pages")
    before = _children()
    async with bare_pages(stage.found, options.pages, viewport) as slots:
        roots = _children() - before
        await bare_warm(slots, options.mode, stage.url, ids)

        async def run_span(span: range) -> Run:
            return await bare_loop(slots, options.mode, stage.url, ids, stage.latency, span)

        yield Contender("bare", slots, slots[0].context.browser, roots, run_span)


@asynccontextmanager
async def landmark_contender(stage: Stage) -> AsyncIterator[Contender]:
    """A BrowserWorker that has discovered the gallery and warmed its pages (as in
    actor_bench), with a clock on its page waits; its tree is metered apart too."""
    from landmark.benchmarks.actor_bench import (
        actor_concurrent,
        build_job,
        discover_all,
        started_worker,
        warm_pages,
    )

    options = stage.options
    job = build_job(stage.url, options.mode, options.pages, stage.scratch)
    say("landmark: starting a BrowserWorker, discovering, warming the pages")
    before = _children()
    async with started_worker(job, stage.found) as worker:
        roots = _children() - before
        found = await discover_all(worker, stage.url)
        containers = sorted(found, key=lambda container: container.position)
        await warm_pages(worker, containers, options.pages)
        clock = ServiceClock(worker)

        async def run_span(span: range) -> Run:
            clock.service_ms.clear()
            run = await actor_concurrent(worker, [containers[i] for i in span], "landmark")
            run.per_container_ms = list(clock.service_ms)
            return run

        def extra() -> dict[str, Any]:
            measured = list(clock.records)  # called before the traced pass
            return {
                "ray": ray_share(containers[: options.items], measured, job.budget.batch_size),
                "phases_ms": phase_medians(measured),
                "dom_cache": worker.stats()["cache"],
            }

        yield Contender(
            "landmark",
            [slot.page for slot in worker.session._slots],
            worker.session._browser,
            roots,
            run_span,
            extra,
        )


class ServiceClock:
    """Per container, the time it had a page (the record's ``total`` less ``queued``, its
    wait for a free page: ``actor_concurrent`` keeps more containers in flight than there
    are pages, as the coordinator does), and the records themselves. It wraps this worker's
    ``reader.extract_one`` on the instance."""

    def __init__(self, worker: Any) -> None:
        self.service_ms: list[float] = []
        self.records: list[Any] = []
        extract_one = worker.reader.extract_one

        async def timed_extract_one(container: Any) -> Any:
            record = await extract_one(container)
            timings = record.timings
            self.service_ms.append(timings.get("total", 0.0) - timings.get("queued", 0.0))
            self.records.append(record)
            return record

        worker.reader.extract_one = timed_extract_one


def phase_medians(records: list[Any]) -> dict[str, float]:
    """The median of each phase landmark times itself (``record.timings``): in click mode
    ``queued`` is the wait for a free page, close, seek and click are measured in the page,
    ``wait`` is the rest of the call (settling, reading), ``total`` the whole container."""
    phases: dict[str, list[float]] = {}
    for record in records:
        for name, value in record.timings.items():
            phases.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in phases.items()}


# -- measuring ---------------------------------------------------------------------------------


async def measure_both(stage: Stage, contenders: list[Contender]) -> dict[str, dict[str, Any]]:
    """Every container through each contender in CHUNKS spans, the contenders alternating
    (A B, B A, A B, ...) so that whatever else the machine does hurts both alike; then each
    contender's traced pass."""
    totals = {}
    for contender in contenders:
        trackers = [await PageMetrics.attach(page, stage.meter) for page in contender.pages]
        for page, tracker in zip(contender.pages, trackers, strict=True):
            tracker.guard_goto(page)
        totals[contender.name] = Totals(trackers)
    items = stage.options.items
    bounds = [round(items * k / CHUNKS) for k in range(CHUNKS + 1)]
    say(f"measuring {items} containers each, in {CHUNKS} alternating chunks")
    for k in range(CHUNKS):
        order = contenders if k % 2 == 0 else contenders[::-1]
        for contender in order:
            span = range(bounds[k], bounds[k + 1])
            await measure_chunk(stage, contender, totals[contender.name], span)
    figures = {}
    for contender in contenders:
        total = totals[contender.name]
        figures[contender.name] = contender_figures(stage, total, items) | contender.extra()
        for tracker in total.trackers:
            await tracker.detach()  # the traced pass is not counted in the figures above
        say(f"{contender.name}: {stage.options.trace_items} containers under a Chromium trace")
        traced, py_spy = await traced_pass(stage, contender)
        figures[contender.name] |= {"trace": traced, "py_spy": py_spy}
    return figures


async def measure_chunk(stage: Stage, contender: Contender, total: Totals, span: range) -> None:
    """One span of containers under the cheap instruments, added to the contender's totals.
    The clocks cover the run of the span only, not the readings around it."""
    from landmark.benchmarks import actor_bench

    for tracker in total.trackers:
        await tracker.read(count=False)  # what the pages did while idle is not counted
    reset_site(stage.url)
    processes = actor_bench.CpuMeter(contender.roots | {stage.site_pid})
    processes.start()
    with stage.meter.watching(total.tally), unmetered(actor_bench):
        cpu, began = time.process_time(), time.monotonic()
        run = await contender.run_span(span)
        total.python_s += time.process_time() - cpu
        total.wall_s += time.monotonic() - began
    total.os_cpu_s.update(processes.stop())
    for tracker in total.trackers:
        await tracker.read()
    total.requests.update(site_requests(stage.url))
    total.latency_ms += run.per_container_ms
    total.records += run.records


class _NoMeter:
    """Stands in for ``actor_bench.CpuMeter`` inside a chunk (see :func:`unmetered`)."""

    def __init__(self, roots: set[int] | None = None) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> dict[str, float]:
        return {}


@contextmanager
def unmetered(module: Any) -> Iterator[None]:
    """``actor_bench``'s runs meter every child process's CPU themselves, a process-tree walk
    at the start and the end of each call that would count as the contender's Python time;
    the profile meters the contender's own tree once per chunk instead."""
    real = module.CpuMeter
    module.CpuMeter = _NoMeter
    try:
        yield
    finally:
        module.CpuMeter = real


def contender_figures(stage: Stage, total: Totals, items: int) -> dict[str, Any]:
    from landmark.benchmarks.actor_bench import Run, accuracy

    count = max(1, items)
    statuses = [record["status"] for record in total.records]
    scored = Run("scored", items, total.wall_s, records=total.records)
    return {
        "containers": items,
        "records": len(total.records),
        "failed": statuses.count("failed"),
        "accuracy": accuracy(stage.truth, scored),
        "wall_s": total.wall_s,
        "wall_ms": total.wall_s * 1000 / count,
        "latency_ms": _spread(total.latency_ms),
        "python_cpu_ms": total.python_s * 1000 / count,
        "os_cpu_ms": {kind: total.os_cpu_s[kind] * 1000 / count for kind in OS_KINDS}
        | {"python": total.python_s * 1000 / count},
        "protocol": total.tally.as_dict(items),
        "browser": browser_figures(total.trackers, items),
        "network": {"site_requests": _per(dict(total.requests), items)},
    }


async def traced_pass(stage: Stage, contender: Contender) -> tuple[dict[str, Any], dict]:
    """Containers of their own (after the measured ones: none comes from the browser's
    cache) under a Chromium trace of every process of the browser, and py-spy on this one.
    Both cost CPU and pause us (py-spy stops the process for each sample), so this pass
    gives proportions; the chunks, which run without them, give the totals."""
    from landmark.benchmarks import actor_bench

    browser = contender.browser
    items = stage.options.items
    await browser.start_tracing(categories=list(TRACE_CATEGORIES))
    try:
        spy = start_py_spy(stage, contender.name)
        began = time.monotonic()
        try:
            with unmetered(actor_bench):
                run = await contender.run_span(range(items, items + stage.options.trace_items))
        finally:
            wall = time.monotonic() - began
            stacks = spy.stop() if isinstance(spy, PySpy) else None
    finally:
        data = await browser.stop_tracing()
    figures = await asyncio.to_thread(analyse_trace, data, run.count)
    figures |= {"wall_ms": wall * 1000 / max(1, run.count), "trace_bytes": len(data)}
    if stage.options.keep_traces:
        kept = stage.options.traces.with_suffix(f".{contender.name}.trace.json")
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(data)
        figures["trace_file"] = str(kept)
    if stacks is None:
        return figures, {"note": spy}
    return figures, summarise_stacks(stacks) if stacks else {"note": "py-spy took no sample"}


def start_py_spy(stage: Stage, name: str) -> PySpy | str:
    """A py-spy on this process (it attaches in milliseconds), or why there is none."""
    if not stage.options.py_spy:
        return "off (--no-py-spy)"
    if PySpy.binary() is None:
        return "py-spy not installed (.venv/bin/pip install -e '.[profile]'); figures without it"
    spy = PySpy.start(os.getpid(), stage.scratch / f"{name}.pyspy.txt")
    return spy if spy is not None else "py-spy could not attach to this process (ptrace?)"


def _children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children()}


# -- the site's counters, Ray's share, the coordinator's ------------------------------------------


def reset_site(url: str) -> None:
    from landmark.benchmarks.scenarios import reset_site as reset

    reset(url)


def site_requests(url: str) -> dict[str, int]:
    """Requests the site served since the last reset, by route (its own counters)."""
    with urllib.request.urlopen(url.rstrip("/") + "/api/stats", timeout=10) as response:
        stats = json.load(response)
    counts = dict(stats.get("requests") or {})
    counts.pop("api_stats", None)
    counts.pop("api_reset", None)
    return counts


def ray_share(containers: list[Any], records: list[Any], batch: int) -> dict[str, Any]:
    """What Ray's serialisation costs per container: each batch pickled and unpickled (the
    coordinator sends it, the actor receives it) and its records likewise on the way back,
    with pickle protocol 5 as Ray uses. Best of three rounds. Ray's transport (gRPC, the
    raylet, the actor's task queue) is not included: it needs a running Ray."""
    by_id = {record.id: record for record in records}
    batches = [containers[i : i + batch] for i in range(0, len(containers), batch)]
    pairs = [(part, [by_id[c.id] for c in part if c.id in by_id]) for part in batches]
    best = float("inf")
    sizes = 0
    for _round in range(3):
        began = time.perf_counter()
        sizes = 0
        for sent, answered in pairs:
            for payload in (sent, answered):
                data = pickle.dumps(payload, protocol=5)
                sizes += len(data)
                pickle.loads(data)
        best = min(best, time.perf_counter() - began)
    count = max(1, len(containers))
    return {
        "pickle_ms": best * 1000 / count,
        "pickle_bytes": sizes / count,
        "batch_size": batch,
        "calls": len(batches) / count,
    }


def newest_summary(runs: Path) -> Path | None:
    found = [path for path in runs.glob("**/summary.json") if path.is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def coordinator_share(path: Path | None) -> dict[str, Any]:
    """The coordinator's CPU and wake-ups per container, from a real run's summary.json."""
    if path is None:
        return {"note": "no summary.json under runs/: run `landmark demo --items 400` first"}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat("T", "seconds")
        return coordinator_figures(summary, f"summary.json: {path}", written)
    except (OSError, KeyError, TypeError, ValueError) as error:
        return {"note": f"{path}: no coordinator figures ({type(error).__name__}: {error})"}


def coordinator_figures(summary: dict[str, Any], source: str, written: str) -> dict[str, Any]:
    """The profile's coordinator figures from a summary (``records``, ``coordinator``,
    ``actors`` as a list or a count, ``per_minute``), whichever run it comes from."""
    coordinator = summary["coordinator"]
    records = max(1, int(summary["records"]))
    actors = summary.get("actors") or []
    return {
        "source": source,
        "written": written,
        "records": summary["records"],
        "actors": actors if isinstance(actors, int) else len(actors),
        "cpu_ms": coordinator["us_per_record"] / 1000,
        "core_share": coordinator.get("core_share"),
        "wakes": sum((coordinator.get("wakes") or {}).values()) / records,
        "per_minute": summary.get("per_minute"),
    }


def throughput_coordinator(document: dict[str, Any], options: Options) -> dict[str, Any] | None:
    """The coordinator figures of a throughput document's landmark run of one actor (the
    default budget on a 2-CPU node, or 1 x the profile's pages), in the profile's cell if
    it ran there, of the run with the median CPU per container; None when no such run kept
    them."""
    names = {DEFAULT_LANDMARK, f"landmark-1x{options.pages}"}
    runs = [
        run
        for run in document.get("runs", [])
        if run.get("contender") in names and (run.get("landmark") or {}).get("coordinator")
    ]
    cell = {"mode": options.mode, "latency_ms": options.latency_ms}
    same = [run for run in runs if {k: run["cell"].get(k) for k in cell} == cell]
    runs = sorted(same or runs, key=lambda run: run["landmark"]["coordinator"]["us_per_record"])
    if not runs:
        return None
    run = runs[(len(runs) - 1) // 2]
    where = f"{run['cell']['mode']} mode, {run['cell']['latency_ms']:g} ms"
    summary = {**run["landmark"], "records": run["records"], "actors": 1}
    source = (
        f"throughput {document.get('_file', '')}: {run['contender']}, {where}, "
        f"median-CPU run of {len(runs)}"
    )
    return coordinator_figures(summary, source, document.get("started", ""))


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "p50": quantile(ordered, 0.5),
        "p95": quantile(ordered, 0.95),
    }


def _per(counts: dict[str, int], containers: int) -> dict[str, float]:
    per = max(1, containers)
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return {"total": sum(counts.values()) / per} | {name: n / per for name, n in ordered}
