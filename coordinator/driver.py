"""The driver side of ``landmark run``: join or start Ray, start the run, show progress, write
the summary.

The driver holds no run state: the Coordinator actor does. The driver only
polls ``progress()`` for the bar and, on Ctrl-C, asks for a clean cancel so the
output stays consistent (one record per container seen so far).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from actors.browser import find_browser
from config.job import JobSpec
from config.loading import load_job
from config.settings import Settings

PROGRESS_INTERVAL_S = 0.5
NAMESPACE = "landmark"


def coordinator_name(job_name: str) -> str:
    """The Coordinator is a named actor, so ``landmark control`` can find a running job."""
    return f"coordinator:{job_name}"


PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_EXCLUDES = [".venv", "runs", ".git", "**/__pycache__", "benchmarks/results"]


def job_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI options as dotted job keys, applied before validation so errors name them."""
    overrides: dict[str, Any] = {}
    if getattr(args, "actors", None) is not None:
        overrides["budget.actors"] = args.actors
    if getattr(args, "pages", None) is not None:
        overrides["budget.pages_per_actor"] = args.pages
    if getattr(args, "out", None) is not None:
        overrides["output.dir"] = str(args.out)
    if getattr(args, "max_items", None) is not None:
        overrides["containers.limit"] = args.max_items
    if getattr(args, "browser", None):
        overrides["browser.executable"] = args.browser
    return overrides


def check_browser(job: JobSpec) -> None:
    """Fail before Ray starts when no browser exists: the message says what to do."""
    find_browser(job.browser.executable or Settings.from_env().browser)


def init_ray(address: str | None, actors: int) -> None:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": RUNTIME_EXCLUDES},
                logging_level="WARNING",
            )
        except ConnectionError as error:
            raise RunFailedError(f"cannot reach the Ray cluster at {address!r}: {error}") from None
        return
    ray.init(
        address="local",
        namespace=NAMESPACE,
        num_cpus=max(os.cpu_count() or 1, actors + 1),
        include_dashboard=False,
        logging_level="WARNING",
        configure_logging=True,
    )


def run_job(
    job: JobSpec,
    sources: list[str],
    *,
    out_dir: Path,
    address: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run ``job`` to the end (or a cancel) and return its summary; writes results + summary."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from actors.metrics_actor import create_metrics_actor
    from coordinator.actor import RemoteCoordinator
    from coordinator.progress import ProgressView

    # Absolute: on a cluster the Coordinator's working directory is Ray's unpacked copy of
    # the project, where a relative path would land the results out of the user's sight.
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    init_ray(address, job.budget.actors)
    metrics = create_metrics_actor(job.budget)
    here = NodeAffinitySchedulingStrategy(
        node_id=ray.get_runtime_context().get_node_id(), soft=False
    )
    try:
        ray.get_actor(coordinator_name(job.name), namespace=NAMESPACE)
    except ValueError:
        pass
    else:
        raise RunFailedError(
            f"a run of job {job.name!r} is already going on this cluster; "
            f"stop it with: landmark control cancel {job.name}"
        )
    coordinator = RemoteCoordinator.options(
        scheduling_strategy=here, name=coordinator_name(job.name), namespace=NAMESPACE
    ).remote(job, sources, str(out_dir), metrics)
    done = coordinator.run.remote()
    view = ProgressView(enabled=show_progress)
    try:
        with view:
            _follow(coordinator, done, view)
    except KeyboardInterrupt:
        print(
            "\nlandmark: stopping: finishing the batches in flight (Ctrl-C again to abort)",
            file=sys.stderr,
        )
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        ray.get(coordinator.cancel.remote())
    try:
        summary = ray.get(done)
    except ray.exceptions.RayTaskError as error:
        raise RunFailedError(_cause(error)) from None
    with contextlib.suppress(ray.exceptions.RayError):
        ray.get(metrics.stop.remote())
    ray.kill(metrics)
    ray.kill(coordinator)
    summary["out_dir"] = str(out_dir)
    (out_dir / job.output.summary).write_text(json.dumps(summary, indent=2, default=str))
    return summary


class RunFailedError(RuntimeError):
    """The run could not go on (e.g. no BrowserActor could start); the message says why."""


def _cause(error: BaseException) -> str:
    """The coordinator's own message, without Ray's remote traceback around it."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__


def _follow(coordinator, done, view) -> None:
    import ray

    while True:
        ready, _ = ray.wait([done], timeout=PROGRESS_INTERVAL_S)
        if ready:
            return
        view.update(ray.get(coordinator.progress.remote()))


def run_job_command(args: argparse.Namespace) -> int:
    from coordinator.report import print_summary

    job = load_job(args.job, job_overrides(args))
    check_browser(job)
    sources = job.source_urls()
    summary = run_job(
        job,
        sources,
        out_dir=job.output.dir,
        address=args.address,
        show_progress=not args.quiet,
    )
    print_summary(summary)
    return 0 if summary["completed"] else 1
