"""``landmark bench hostile``: every page of the hostile site (``benchmarks/site/hostile.py``)
as a real job, through ``run_job`` like a user's run, each with deadlines of a few seconds.

A row is **bounded** when its run ended on its own within ``--bound`` seconds, every
container got the record the page deserves (the statuses and the reason expected of the
scenario), and the scenario's own check holds (the endless feed was cut short by its
discovery deadline; no dialog page needed a retry; popups were closed). *files left*
counts part files and downloads no record kept; any is a failure too. A run still going
at the bound is cancelled (``landmark control cancel``) and counted unbounded.

*browser peak* is the largest summed PSS of the Chromium processes under this process
(the actors' browsers and their renderers, popups included), sampled every 0.25 s: PSS,
because summed RSS counts Chromium's shared pages once per process.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from landmark.actors.process_tree import pss_of, tree_pids
from landmark.config.job import JobSpec

BOUND_S = 150.0  # a run not over by then is unbounded (its own deadlines are seconds)
CANCEL_GRACE_S = 60.0  # after a cancel, in-flight containers finish within their deadlines
SAMPLE_EVERY_S = 0.25

# The job's deadlines: short, so that the whole suite takes a few minutes.
TIMEOUTS = {
    "navigation": "5s",
    "container": "8s",
    "wait": "2s",
    "wait_min": "1s",
    "wait_max": "4s",
    "discovery_idle": "1s",
    "discovery": "4s",
    "lease_margin": "5s",
    "actor_start": "60s",
}
DOWNLOAD = {"field": "image", "idle": "1s", "timeout": "3s", "max_bytes": "1MiB"}
TITLE = {"name": "title", "labels": ["Title"], "relation": "next"}
IMAGE = {"name": "image", "labels": ["Download"], "relation": "attr", "attr": "href", "type": "url"}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One hostile page (or a few of the same kind) and what its records must say."""

    name: str
    paths: tuple[str, ...]
    what: str
    open: str = "self"  # self: each path is an item page; link: the path is a gallery
    download: bool = False
    statuses: frozenset[str] = frozenset({"ok"})  # what every record may end as
    reasons: tuple[str, ...] = ()  # every record that is not ok says one of these
    check: Callable[[dict[str, Any]], str | None] | None = None  # on the summary
    settings: tuple[tuple[str, str], ...] = ()  # dotted job keys the scenario sets itself

    def job(self, site_url: str, out_dir: Path, **overrides: Any) -> JobSpec:
        """A normal job: fields found by their labels, the scenario's pages as sources."""
        data: dict[str, Any] = {
            "name": f"hostile-{self.name}",
            "sources": {"urls": [site_url.rstrip("/") + path for path in self.paths]},
            "containers": {"open": self.open},
            "fields": [TITLE, IMAGE] if self.download else [TITLE],
            "budget": {"actors": 1, "pages_per_actor": 2},
            "timeouts": dict(TIMEOUTS),
            "retries": {"max_attempts": 2, "backoff": "100ms"},
            "output": {"dir": str(out_dir)},
            "cache": False,
        }
        if self.download:
            data["download"] = dict(DOWNLOAD)
        for dotted, value in {**dict(self.settings), **overrides}.items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        return JobSpec.model_validate(data)


def feed_was_cut(summary: dict[str, Any]) -> str | None:
    cuts = [cut for cut in summary.get("discovery_cut", []) if cut.get("kind") == "deadline"]
    return None if cuts else "the endless feed was not cut short by its discovery deadline"


def first_try(summary: dict[str, Any]) -> str | None:
    """A dialog answered wrongly fails the page after it, which a retry then hides."""
    retries = summary.get("retries", 0)
    return f"{retries} containers needed a retry" if retries else None


def popups_closed(summary: dict[str, Any]) -> str | None:
    closed = sum(actor.get("popups_closed", 0) for actor in summary.get("actors", []))
    return None if closed else "no popup was closed"


FAILED = frozenset({"failed"})
PARTIAL = frozenset({"partial"})
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("download-stall", ("/download/stall",), "a download that stops sending",
             download=True, statuses=PARTIAL, reasons=("stalled",)),
    Scenario("download-trickle", ("/download/trickle",), "a byte every 0.2 s, for ever",
             download=True, statuses=PARTIAL, reasons=("took longer than",)),
    Scenario("download-oversize", ("/download/oversize",), "4 MiB, no Content-Length",
             download=True, statuses=PARTIAL, reasons=("over download.max_bytes",)),
    Scenario("script-loop", ("/spin",), "a script that never returns",
             statuses=FAILED, reasons=("deadline", "Timeout")),
    Scenario("endless-feed", ("/feed/",), "a gallery that never ends", open="link",
             check=feed_was_cut),
    Scenario("dialogs", tuple(f"/dialogs/{n}" for n in range(4)),
             "alert, confirm, prompt, beforeunload", check=first_try),
    Scenario("redirect-server", ("/redirect/server",), "a 302 to a host not allowed",
             statuses=FAILED, reasons=("redirected off the job's hosts",)),
    Scenario("redirect-script", ("/redirect/script",), "location = a host not allowed",
             statuses=FAILED, reasons=("navigated off the job's hosts",)),
    Scenario("self-navigating", ("/selfnav/",), "replaces itself every 150 ms",
             statuses=FAILED, reasons=("navigating itself",)),
    Scenario("popups", tuple(f"/popups/{n}" for n in range(3)), "popups on load, every 100 ms",
             check=popups_closed),
    Scenario("dom-10mb", ("/bigdom",), "10 MB of DOM, the field last",
             statuses=frozenset({"ok", "failed"}), reasons=("deadline", "Timeout"),
             settings=(("timeouts.navigation", "15s"), ("timeouts.container", "20s"))),
)  # fmt: skip
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass
class Row:
    scenario: str
    wall_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    error: str = ""  # the first reason of the first record that has one
    browser_peak: int = 0  # bytes, PSS
    files_left: int = 0
    ended: bool = False  # on its own, within the bound
    problems: list[str] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        return self.ended and not self.problems

    @property
    def passed(self) -> bool:
        return self.bounded and self.files_left == 0


# -- running one scenario ------------------------------------------------------------------
def run_scenario(
    scenario: Scenario, site_url: str, folder: Path, bound_s: float = BOUND_S, **overrides: Any
) -> Row:
    """Run the scenario's job to its end (or the bound) and judge what it left."""
    from landmark.coordinator.store import read_results

    out = folder / scenario.name
    job = scenario.job(site_url, out, **overrides)
    row = Row(scenario.name)
    with BrowserPeak() as peak:
        began = time.monotonic()
        summary, error = run_bounded(job, bound_s)
        row.wall_s = round(time.monotonic() - began, 1)
    row.browser_peak = peak.bytes
    row.ended = summary is not None and summary.get("completed", False)
    if error:
        row.problems.append(error)
    records = list(read_results(out / job.output.results)) if out.exists() else []
    judge(row, scenario, records, summary or {})
    row.files_left = len(files_left(out, records))
    return row


def run_bounded(job: JobSpec, bound_s: float) -> tuple[dict[str, Any] | None, str | None]:
    """``run_job`` in a thread; past ``bound_s`` the run is cancelled: (summary, problem)."""
    from landmark.coordinator.driver import run_job

    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["summary"] = run_job(
                job, job.source_urls(), out_dir=job.output.dir, show_progress=False, say=_quiet
            )
        except Exception as error:  # reported as the row's problem
            outcome["error"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=drive, name=f"run-{job.name}", daemon=True)
    thread.start()
    thread.join(bound_s)
    if thread.is_alive():
        _cancel(job.name)
        thread.join(CANCEL_GRACE_S)
        outcome.setdefault("error", f"still running after {bound_s:g}s: cancelled")
    return outcome.get("summary"), outcome.get("error")


def _cancel(job_name: str) -> None:
    import ray

    from landmark.coordinator.ray_setup import NAMESPACE, coordinator_name

    with contextlib.suppress(ValueError, ray.exceptions.RayError):
        coordinator = ray.get_actor(coordinator_name(job_name), namespace=NAMESPACE)
        ray.get(coordinator.cancel.remote(), timeout=30)


def _quiet(message: str) -> None:
    """The driver's notes (resuming, overwriting) mean nothing for a fresh scratch folder."""


def judge(row: Row, scenario: Scenario, records: list[dict], summary: dict[str, Any]) -> None:
    """Fill in the row's statuses and first error; list what the scenario did not meet."""
    row.statuses = dict(Counter(record["status"] for record in records))
    reasons = [r["errors"][0]["reason"] for r in records if r.get("errors")]
    row.error = reasons[0] if reasons else ""
    if not records:
        row.problems.append("no record at all")
    wrong = sorted(set(row.statuses) - scenario.statuses)
    if wrong:
        row.problems.append(f"unexpected statuses {wrong}")
    expected_count = 0 if scenario.open == "link" else len(scenario.paths)
    if expected_count and len(records) != expected_count:
        row.problems.append(f"{len(records)} records for {expected_count} pages")
    if scenario.reasons:
        off = [r for r in records if r["status"] != "ok" and not _says(r, scenario.reasons)]
        if off:
            said = " or ".join(map(repr, scenario.reasons))
            row.problems.append(f"{len(off)} records do not say {said}")
    if scenario.check and (problem := scenario.check(summary)):
        row.problems.append(problem)


def _says(record: dict, reasons: tuple[str, ...]) -> bool:
    told = [problem["reason"] for problem in record.get("errors", [])]
    return any(reason in text for reason in reasons for text in told)


def files_left(out: Path, records: list[dict]) -> list[Path]:
    """Part files anywhere under ``out``, and downloads that no record kept."""
    kept = {Path(r["download"]["path"]) for r in records if r.get("download")}
    if not out.exists():
        return []
    parts = [path for path in out.rglob("*.part") if path.is_file()]
    downloads = (out / "downloads").rglob("*")  # nothing if there is no such folder
    return parts + [p for p in downloads if p.is_file() and p not in kept and p not in parts]


class BrowserPeak:
    """The largest summed PSS of the Chromium processes under this process, sampled in a
    thread while the ``with`` block runs."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.bytes = 0
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="browser-peak", daemon=True)

    def __enter__(self) -> BrowserPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.bytes = max(self.bytes, pss_of(browser_pids()))


def browser_pids() -> set[int]:
    pids = set()
    for pid in tree_pids(psutil.Process().pid):
        with contextlib.suppress(psutil.Error):
            if "chrom" in psutil.Process(pid).name().lower():
                pids.add(pid)
    return pids


# -- the command ---------------------------------------------------------------------------
def run_hostile(
    names: list[str], bound_s: float, say: Callable[[str], None] = print, **overrides: Any
) -> list[Row]:
    """Start the hostile site and a local Ray, run each named scenario; the rows."""
    import tempfile

    from landmark.benchmarks.site.hostile import HostileSite
    from landmark.coordinator.ray_setup import init_ray

    init_ray(None, 1)  # here, on the main thread: each run then reuses it
    rows = []
    with HostileSite() as site, tempfile.TemporaryDirectory(prefix="hostile-") as scratch:
        for name in names:
            row = run_scenario(BY_NAME[name], site.url, Path(scratch), bound_s, **overrides)
            say(_line(row))
            rows.append(row)
    return rows


def _line(row: Row) -> str:
    verdict = "bounded" if row.bounded else "UNBOUNDED"
    detail = f" ({'; '.join(row.problems)})" if row.problems else ""
    return f"[hostile] {row.scenario}: {row.wall_s:.1f}s {row.statuses} {verdict}{detail}"


def table(rows: list[Row]) -> list[str]:
    """The Markdown table printed at the end (and kept in the JSON's report section)."""
    lines = [
        "| scenario | wall s | statuses | errors (first reason) | browser peak | files left "
        "| bounded |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(row.statuses.items())) or "none"
        error = _short(row.error) or "-"
        bounded = "yes" if row.bounded else "NO: " + "; ".join(row.problems)
        lines.append(
            f"| {row.scenario} | {row.wall_s:.1f} | {statuses} | {error} | "
            f"{row.browser_peak / 2**20:,.0f} MiB | {row.files_left} | {bounded} |"
        )
    return lines


def _short(text: str, width: int = 90) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def as_documents(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(row) | {"bounded": row.bounded, "passed": row.passed} for row in rows]


def pick(only: list[str] | None) -> list[str]:
    """The scenarios to run, in the catalogue's order; unknown names raise ValueError."""
    if not only:
        return list(BY_NAME)
    unknown = sorted(set(only) - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown hostile scenarios {unknown}; know {list(BY_NAME)}")
    return [name for name in BY_NAME if name in only]


def add_hostile_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hostile (hostile pages; see benchmarks/hostile.py)")
    group.add_argument(
        "--only", type=_names, metavar="SCENARIO,...", help="these hostile scenarios only"
    )
    group.add_argument(
        "--bound",
        type=float,
        default=BOUND_S,
        help=f"seconds a hostile run may take before it counts as unbounded (default {BOUND_S:g})",
    )


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def write_document(
    rows: list[Row], results_dir: Path, started: datetime, context: dict[str, Any]
) -> Path:
    """``hostile-<time>.json`` beside the other scenarios' (``landmark bench report``)."""
    from landmark.benchmarks.report import save_result

    document = {
        "runs": as_documents(rows),
        "failures": [f"{r.scenario}: {'; '.join(_failure(r))}" for r in rows if not r.passed],
    }
    return save_result("hostile", document, results_dir, started, context)


def _failure(row: Row) -> Iterator[str]:
    yield from row.problems or (["did not end on its own"] if not row.ended else [])
    if row.files_left:
        yield f"{row.files_left} files left"
