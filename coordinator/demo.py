"""``landmark demo``: the whole product in one command, scored against ground truth.

Starts the Gallery site in its own process (so it does not share the driver's
GIL with what it measures), runs the example job against it and prints the
accuracy. The README's first command runs this.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from rich.console import Console

from benchmarks.scoring import score
from benchmarks.site import SiteConfig, start_site_process
from config.loading import load_job
from coordinator.driver import check_browser, job_overrides, run_job
from coordinator.report import print_summary
from coordinator.store import read_results

EXAMPLE_JOB = Path(str(resources.files("config").joinpath("examples/gallery.yaml")))


def run_demo(args: argparse.Namespace) -> int:
    overrides = job_overrides(args)
    overrides["containers.open"] = args.mode
    overrides.setdefault("output.dir", "runs/demo")
    site_config = SiteConfig(
        items=args.items,
        latency_ms=args.latency_ms,
        label_variants=True,
        missing_rate=0.05,
    )
    console = Console()
    with start_site_process(site_config) as site:
        overrides["sources.urls"] = [site.url]
        job = load_job(EXAMPLE_JOB, overrides)
        check_browser(job)
        console.print(
            f"[bold]landmark demo[/]: {args.items} items at {site.url} "
            f"({args.mode} mode, {job.budget.actors} actors × {job.budget.pages_per_actor} pages)"
        )
        summary = run_job(
            job,
            job.source_urls(),
            out_dir=job.output.dir,
            address=args.address,
            show_progress=not args.quiet,
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
    return 0 if summary["completed"] else 1
