"""``landmark bench chaos [--trials N] [--seed S] [--targets T,...]``: kill trials against the
Gallery site.

Each trial runs ``landmark run`` (a separate process, as a user runs it) on a fresh output
folder, and at a moment drawn from the seed kills one process of the run:

- ``chromium-launch``: a browser as soon as it appears (it is still launching);
- ``chromium-discovery``: a browser while the gallery is being scrolled;
- ``chromium-extraction``: a browser while items are being read;
- ``browser-actor``: a BrowserActor's Ray worker (half the time before any item is opened,
  while discovery may still be scrolling);
- ``metrics-actor``: the MetricsActor;
- ``coordinator``: the Coordinator (the driver starts another on the same store);
- ``driver``: the ``landmark run`` process itself, then the same command again.

A trial passes when the run ends on its own within the bound, with exit status 0, and
``results.jsonl`` holds every item of the gallery exactly once with every field equal to
the site's truth. The table counts, per target: trials, passed, lost, duplicated, wrong
(fields), hung (no end within the bound) and the exit statuses seen. A failed trial
prints how to replay it: trial *i* of a suite seeded *S* has seed *S + i*, so
``landmark bench chaos --trials 1 --seed S+i --targets T`` runs it again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from random import Random
from typing import Any

import psutil
import yaml

from landmark.benchmarks.scenarios import reset_site
from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import SiteConfig, start_site_process

TARGETS = (
    "chromium-launch",
    "chromium-discovery",
    "chromium-extraction",
    "browser-actor",
    "metrics-actor",
    "coordinator",
    "driver",
)
ITEMS = 160
BOUND_S = 300.0  # a trial that has not ended by then counts as hung
POLL_S = 0.05  # the harness's own polling of the site and the process table


@dataclass
class Trial:
    target: str
    seed: int
    killed: str = ""  # what was killed, and when
    exit_codes: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    hung: bool = False
    error: str = ""

    @property
    def passed(self) -> bool:
        clean = self.exit_codes[-1:] == [0] and not self.error
        return clean and not (self.lost or self.duplicated or self.wrong or self.hung)


def run_chaos(
    trials: int, seed: int, targets: tuple[str, ...] = TARGETS, say: Callable = print
) -> list[Trial]:
    """``trials`` trials, targets in turn, each with its own seed drawn from ``seed``."""
    config = SiteConfig(items=ITEMS, page_size=16, latency_ms=30, jitter="none")
    done: list[Trial] = []
    with start_site_process(config) as site, tempfile.TemporaryDirectory() as scratch:
        for index in range(trials):
            trial = Trial(targets[index % len(targets)], seed + index)
            run_trial(trial, site, Path(scratch) / f"trial-{index}")
            say(_line(trial))
            done.append(trial)
    return done


def run_trial(trial: Trial, site: Any, folder: Path) -> None:
    rng = Random(trial.seed)
    reset_site(site.url)  # the site's counters are this trial's own
    job = _write_job(folder, site.url)
    started = time.monotonic()
    run = _start(job, folder)
    try:
        victims = _kill(trial, run, site, rng, started)
        trial.exit_codes.append(_wait(run, started, trial))
        if trial.target == "driver" and not trial.hung:
            _kill_all(victims)  # what the dead driver left running (Ray's agents)
            rerun = _start(job, folder)
            trial.exit_codes.append(_wait(rerun, started, trial))
    except Exception as error:  # a harness problem is a failed trial, with its reason
        trial.error = f"{type(error).__name__}: {error}"
    finally:
        trial.wall_s = round(time.monotonic() - started, 1)
    _check(trial, folder, site)


def _write_job(folder: Path, url: str) -> Path:
    folder.mkdir(parents=True)
    example = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
    job = yaml.safe_load(example.read_text())
    job["sources"]["urls"] = [url]
    job["output"] = {"dir": str(folder / "out")}
    job["cache"] = False
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _start(job: Path, folder: Path) -> subprocess.Popen[str]:
    landmark = str(Path(sys.executable).with_name("landmark"))
    log = (folder / "runs.log").open("a")
    return subprocess.Popen(
        [landmark, "run", str(job), "--quiet"], cwd=folder, stdout=log, stderr=log, text=True
    )


def _kill(trial: Trial, run: subprocess.Popen[str], site: Any, rng: Random, started: float):
    """Wait for the trial's moment, kill its target; the processes of the run, for cleanup."""
    moment = rng.randint(10, ITEMS - 60)  # items opened before the kill
    if trial.target == "browser-actor" and rng.random() < 0.5:
        moment = 0  # while it may still be scrolling the gallery (discovery)
    pages = -(-ITEMS // site.config.page_size)
    root = psutil.Process(run.pid)
    while time.monotonic() - started < BOUND_S:
        if run.poll() is not None:
            trial.killed = "nothing: the run ended before its kill point"
            return []
        victim = _victim(trial.target, root, _stats(site), moment, pages)
        if victim is not None:
            everything, name = _tree(root), _name(victim)
            victim.send_signal(signal.SIGKILL)
            trial.killed = f"{name} at {time.monotonic() - started:.1f}s"
            return everything
        time.sleep(POLL_S)  # the harness polls; the product under test never does
    return []


def _victim(target: str, root: psutil.Process, stats: dict, moment: int, pages: int):
    opened = stats.get("items_attempted", 0)
    listing = stats.get("requests", {}).get("api_items", 0)
    actors = _find(root, "ray::BrowserActor")
    if target == "chromium-launch":  # a browser less than a second old is still launching
        return _first([b for b in map(_browser, actors) if b is not None and _age(b) < 1.0])
    if target == "chromium-discovery" and 1 <= listing < pages - 1:
        return _first([_browser(actor) for actor in actors])
    if opened < moment:
        return None
    if target == "chromium-extraction":
        return _first([_browser(actor) for actor in actors])
    if target == "browser-actor":
        return _first(actors)
    if target == "metrics-actor":
        return _first(_find(root, "ray::MetricsActor"))
    if target == "coordinator":
        return _first(_find(root, "ray::Coordinator"))
    if target == "driver":
        return root
    return None


def _wait(run: subprocess.Popen[str], started: float, trial: Trial) -> int:
    try:
        return run.wait(timeout=max(1.0, BOUND_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        trial.hung = True
        _kill_all(_tree(psutil.Process(run.pid)))
        return run.wait()


def _check(trial: Trial, folder: Path, site: Any) -> None:
    results = folder / "out" / "results.jsonl"
    lines = (
        [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    )
    result = score(site.truth(), lines)
    trial.lost, trial.duplicated = result.lost, result.duplicates
    per_item = len(site.truth()[0]["fields"])
    trial.wrong = result.fields_total - result.fields_correct - result.lost * per_item


def _stats(site: Any) -> dict:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{site.url}api/stats", timeout=5) as response:
            return json.load(response)
    except OSError:
        return {}


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _find(root: psutil.Process, title: str) -> list[psutil.Process]:
    found = []
    for process in _tree(root)[1:]:
        try:
            if " ".join(process.cmdline()).startswith(title):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _browser(actor: psutil.Process) -> psutil.Process | None:
    """The main Chromium under an actor (its parent is not itself a Chromium)."""
    for process in _tree(actor)[1:]:
        try:
            name, parent = process.name().lower(), process.parent()
            if "chrom" in name and not (parent and "chrom" in parent.name().lower()):
                return process
        except psutil.Error:
            continue
    return None


def _age(process: psutil.Process) -> float:
    try:
        return time.time() - process.create_time()
    except psutil.Error:
        return float("inf")


def _first(candidates: list) -> Any:
    return next((c for c in candidates if c is not None), None)


def _name(process: psutil.Process) -> str:
    try:
        first = process.cmdline()[0]
    except (psutil.Error, IndexError):
        return str(process.pid)
    return first if first.startswith("ray::") else Path(first).name


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue


def _line(trial: Trial) -> str:
    verdict = "ok" if trial.passed else "FAILED"
    return (
        f"chaos {verdict:6} {trial.target:20} killed {trial.killed or '-'}; exit "
        f"{trial.exit_codes} in {trial.wall_s}s; lost {trial.lost} dup {trial.duplicated} "
        f"wrong {trial.wrong}{' HUNG' if trial.hung else ''}"
        f"{'; ' + trial.error if trial.error else ''}"
        + (
            ""
            if trial.passed
            else f"  (replay: --trials 1 --seed {trial.seed} --targets {trial.target})"
        )
    )


def table(trials: list[Trial]) -> list[dict[str, Any]]:
    """One row per target: trials, passed, lost, duplicated, wrong, hung, exit statuses."""
    rows = []
    for target in dict.fromkeys(t.target for t in trials):
        mine = [t for t in trials if t.target == target]
        rows.append(
            {
                "target": target,
                "trials": len(mine),
                "passed": sum(t.passed for t in mine),
                "lost": sum(t.lost for t in mine),
                "duplicated": sum(t.duplicated for t in mine),
                "wrong": sum(t.wrong for t in mine),
                "hung": sum(t.hung for t in mine),
                "exit_codes": sorted({code for t in mine for code in t.exit_codes}),
                "wall_s_max": max(t.wall_s for t in mine),
            }
        )
    return rows


def as_documents(trials: list[Trial]) -> list[dict[str, Any]]:
    return [asdict(t) | {"passed": t.passed} for t in trials]
