"""``landmark demo``: the whole product in one command, scored against ground truth.

Starts the Gallery site in its own process (so it does not share the driver's GIL with
what it measures), runs the example job against it and prints the accuracy. The README's
first command runs this. Each demo starts fresh in its output folder (the site's port
changes from one demo to the next); the record cache is kept, so a second demo of the
same gallery is served from it unless ``--no-cache`` is given.
"""

from __future__ import annotations

import argparse
import os
import socket
from importlib import resources
from pathlib import Path

from rich.console import Console

from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import SiteConfig, start_site_process
from landmark.benchmarks.site.config import DEFAULT_PORT, HOST
from landmark.config.loading import load_job
from landmark.coordinator.driver import check_browser, exit_status, job_overrides, run_job
from landmark.coordinator.preflight import resolve_actors
from landmark.coordinator.report import print_summary
from landmark.coordinator.store import read_results

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))


def _demo_port() -> int:
    """The example job's own port when it is free, so a repeated demo is the same site (and
    the record cache serves it); any free port otherwise."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, DEFAULT_PORT))
        except OSError:
            return 0
    return DEFAULT_PORT


def run_demo(args: argparse.Namespace) -> int:
    overrides = job_overrides(args)
    overrides["containers.open"] = args.mode
    panel = getattr(args, "panel", "div")
    if panel == "dialog":
        overrides["containers.panel_selector"] = "dialog"
    overrides.setdefault("output.dir", "runs/demo")
    site_config = SiteConfig(
        items=args.items,
        latency_ms=args.latency_ms,
        label_variants=True,
        missing_rate=0.05,
        panel=panel,
    )
    console = Console()
    with start_site_process(site_config, port=_demo_port()) as site:
        overrides["sources.urls"] = [site.url]
        job = load_job(EXAMPLE_JOB, overrides)
        check_browser(job)
        if not (args.address or os.environ.get("RAY_ADDRESS")):
            job = resolve_actors(job, [os.cpu_count() or 1])  # what the run will do, said first
        actors, budget = job.budget.actors or "auto", job.budget
        pages = f"{budget.first_pages}"
        if budget.adaptive_pages:  # the page governor takes them up while the CPU has room
            pages += f"-{budget.pages_per_actor}"
        console.print(
            f"[bold]landmark demo[/]: {args.items} items at {site.url} ({args.mode} mode, "
            f"{actors} actor{'' if actors == 1 else 's'} × {pages} pages)"
        )
        summary = run_job(
            job,
            job.source_urls(),
            out_dir=job.output.dir,
            address=args.address,
            show_progress=not args.quiet,
            store_url=args.store,
            fresh=True,
        )
        truth = site.truth()
    print_summary(summary, console)
    result = score(truth, read_results(job.output.dir / job.output.results))
    console.print(
        f"accuracy: [bold]{result.accuracy:.2%}[/] of {result.fields_total:,} fields "
        f"({result.records:,}/{result.items:,} items with a record, {result.lost} lost, "
        f"{result.duplicates} duplicated; {result.missing_reported}/{result.missing_expected} "
        "missing fields reported missing)"
    )
    for example in result.wrong:
        console.print(f"  wrong: {example}")
    return exit_status(summary)
