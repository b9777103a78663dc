"""The driver side of ``landmark run``: check the output, start or join Ray, start the
Coordinator, show progress, survive the Coordinator's death, write the summary.

The driver holds no run state: the store does. It checks before Ray starts that the
output directory is usable and holds no other job's run; it starts a Coordinator and, if
that one dies, another on the same store, which resumes where the first stopped. Ctrl-C
asks for a clean stop (batches in flight finish, the rest stays pending for a resume); a
second Ctrl-C asks the Coordinator to make what it merged durable, and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from landmark.actors.browser import find_browser
from landmark.config.job import JobSpec
from landmark.config.loading import load_job
from landmark.config.settings import Settings, parse_set_options
from landmark.coordinator.node_watch import read_alive_nodes
from landmark.coordinator.preflight import (
    OutputError,
    check_actors_fit,
    check_output,
    resolve_actors,
)
from landmark.coordinator.ray_setup import (
    NAMESPACE,
    RayStartError,
    coordinator_name,
    in_submitted_job,
    init_ray,
)
from landmark.coordinator.store import JobChangedError, JobIdentity, Prior
from landmark.coordinator.store_config import StoreConfig

COORDINATOR_RESTARTS = 3
logger = logging.getLogger("landmark")


class RunFailedError(RuntimeError):
    """The run could not go on (e.g. no BrowserActor could start); the message says why."""


def job_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``LANDMARK_*`` variables, then CLI options, then ``--set`` pairs, as dotted job keys
    applied before validation so errors name them (later ones win)."""
    overrides: dict[str, Any] = Settings.from_env().job_overrides()
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
    if getattr(args, "no_cache", False):
        overrides["cache.enabled"] = False
    overrides.update(parse_set_options(getattr(args, "set", None) or []))
    return overrides


def check_browser(job: JobSpec) -> None:
    """Fail before Ray starts when no browser exists: the message says what to do."""
    find_browser(job.browser.executable or Settings.from_env().browser)


def prepare_store(
    store: StoreConfig, identity: JobIdentity, *, fresh: bool, say: Callable[[str], None]
) -> Prior:
    """Decide between a new run, a resume and a refusal, before anything starts."""
    backend = store.open_store()
    prior = backend.inspect(identity)
    where = prior.where or store.description
    if prior.kind != "none" and prior.differences and not fresh:
        listed = "\n  ".join(prior.differences[:10])
        raise JobChangedError(
            f"{where} holds a run of a different job ({prior.records} records); what differs:"
            f"\n  {listed}\nUse --fresh to start over (deletes those records), or another --out."
        )
    if fresh and (prior.kind != "none" or prior.records):
        say(f"--fresh: deleting {prior.records} records and the run state in {where}")
        backend.reset()
    elif prior.kind == "finished":
        say(f"{where} holds a finished run of this job; starting a new one (records cached "
            "from it are reused unless the cache is off)")  # fmt: skip
        backend.reset()
    elif prior.kind == "unfinished":
        say(f"resuming the run in {where}: {prior.records} records already written")
    elif prior.records:
        say(f"overwriting {prior.records} records in {where} (no run state found with them)")
        backend.reset()
    return prior


def run_job(
    job: JobSpec,
    sources: list[str],
    *,
    out_dir: Path,
    address: str | None = None,
    show_progress: bool = True,
    store_url: str | None = None,
    fresh: bool = False,
    actor_class: Any = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``job`` to the end (or a stop) and return its summary; writes results + summary."""
    from landmark.coordinator.exporters import ExportError, export_results

    say = say or _say
    warn_relative_out_in_job(out_dir)
    out_dir = check_output(out_dir, (job.output.results, job.output.summary, job.output.record_log))
    browsers = actor_class is None  # the coordinator bench's no-op actors run no browser
    joining = address or os.environ.get("RAY_ADDRESS")
    if not joining:
        job = resolve_actors(job, [os.cpu_count() or 1])
    if browsers and not joining:
        check_actors_fit(job.budget.actors, os.cpu_count() or 1, "this machine")
    store_url = store_url or Settings.from_env().redis_url
    store = StoreConfig.for_job(job, out_dir, store_url)
    prepare_store(store, JobIdentity.of(job, sources), fresh=fresh, say=say)
    try:
        init_ray(address, job.budget.actors or 1)  # joining: resolved from the cluster below
    except RayStartError as error:
        raise RunFailedError(str(error)) from None
    if joining:
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
        job = resolve_actors(job, [node.cpus for node in read_alive_nodes()])
        if browsers:
            check_actors_fit(job.budget.actors, cpus, "the cluster")
    if joining:
        check_out_dir_is_shared(out_dir)
    try:
        summary = _run_with_restarts(job, sources, store, actor_class, show_progress, say)
    except BaseException:  # what was done, in the format asked for, before the error shows
        with contextlib.suppress(ExportError):
            export_results(job, out_dir)
        raise
    summary["out_dir"] = str(out_dir)
    (out_dir / job.output.summary).write_text(json.dumps(summary, indent=2, default=str))
    try:
        export_results(job, out_dir)
    except ExportError as error:
        log = out_dir / job.output.record_log
        raise RunFailedError(f"{error}; the records are in {log}") from None
    return summary


def warn_relative_out_in_job(out_dir: Path) -> None:
    """Inside ``ray job submit`` the working directory is the job's copy of its
    ``working_dir`` in Ray's temp dir on the head: results written under it are easy to lose
    and Ray may delete them, so a relative output folder is said, with where it lands."""
    if Path(out_dir).expanduser().is_absolute() or not in_submitted_job():
        return
    logger.warning(
        f"inside a Ray job, the output folder {str(out_dir)!r} is relative to the job's "
        f"working directory: results go to {Path(out_dir).resolve()}, in Ray's copy of the "
        "job's working_dir, which Ray may delete after the job; pass an absolute --out"
    )


def _run_with_restarts(job, sources, store, actor_class, show_progress, say) -> dict[str, Any]:
    from landmark.coordinator.progress import ProgressView
    from landmark.coordinator.run_follower import CoordinatorDied, follow_run

    view = ProgressView(enabled=show_progress)
    with view:
        for attempt in range(COORDINATOR_RESTARTS + 1):
            asked = time.time()
            coordinator = _start_coordinator(job, sources, store, actor_class)
            try:
                summary = follow_run(coordinator, view, store, say)
            except CoordinatorDied as died:
                if attempt == COORDINATOR_RESTARTS:
                    raise RunFailedError(
                        f"the Coordinator died {attempt + 1} times; last: {died}. The run is "
                        "resumable: run the same command again."
                    ) from None
                say(f"the Coordinator died ({died}); starting another on the same store")
                continue
            # from the ask to the Coordinator's start: a Ray worker process and its imports
            parts = summary.setdefault("startup_parts_s", {})
            parts["coordinator_up"] = round(summary["started_at"] - asked, 3)
            return summary
    raise AssertionError("unreachable")


def check_out_dir_is_shared(
    out_dir: Path, seen_on_head: Callable[[str], bool] | None = None
) -> None:
    """Through Ray Client (``ray://``) the driver's work runs on the head, and so does the
    Coordinator that writes the results: the output folder must be the one this machine
    sees, or the records land on another disk while the summary lands here. A file made
    here must be visible there, at the same path; otherwise an OutputError says what to do."""
    import ray

    if seen_on_head is None:
        if not ray.util.client.ray.is_connected():
            return  # the driver runs on a node: the Coordinator is pinned to it, same disk
        seen_on_head = _exists_where_the_coordinator_goes
    marker = out_dir / f".landmark-shared-{uuid.uuid4().hex}"
    marker.write_text("written by the driver\n")
    try:
        seen = seen_on_head(str(marker))
    finally:
        marker.unlink(missing_ok=True)
    if not seen:
        raise OutputError(
            f"the output folder {out_dir} is not on a disk the Ray head shares with this "
            "machine: through ray:// the Coordinator writes results on the head, so they "
            "would land on the head's disk. Pass an --out on a shared file system (the same "
            "path on both), or run landmark on the head (ray job submit; see cluster/README.md)"
        )


def _exists_where_the_coordinator_goes(path: str) -> bool:
    """``os.path.exists`` as a Ray task on the node the Coordinator is pinned to."""
    import ray

    task = ray.remote(num_cpus=0, max_retries=0)(os.path.exists)
    return ray.get(task.options(scheduling_strategy=driver_node()).remote(path), timeout=60)


def driver_node():
    """Hard affinity to the driver's node (through Ray Client: the head)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _start_coordinator(job, sources, store, actor_class):
    import ray

    from landmark.coordinator.actor import RemoteCoordinator

    name = coordinator_name(job.name)
    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        pass
    else:
        raise RunFailedError(
            f"a run of job {job.name!r} is already going on this cluster; "
            f"stop it with: landmark control cancel {job.name}"
        )
    options = {"scheduling_strategy": driver_node(), "name": name, "namespace": NAMESPACE}
    args = (job, sources, store) if actor_class is None else (job, sources, store, actor_class)
    return RemoteCoordinator.options(**options).remote(*args)


def _say(message: str) -> None:
    logger.info(message)


def run_job_command(args: argparse.Namespace) -> int:
    from landmark.coordinator.report import print_summary

    job = load_job(args.job, job_overrides(args))
    check_browser(job)
    sources = job.source_urls()
    summary = run_job(
        job,
        sources,
        out_dir=job.output.dir,
        address=args.address,
        show_progress=not args.quiet,
        store_url=args.store,
        fresh=args.fresh,
    )
    print_summary(summary)
    return exit_status(summary)


def exit_status(summary: dict[str, Any]) -> int:
    """0 when the run completed (failed records included), 1 when it stopped short."""
    if summary["completed"]:
        return 0
    if summary.get("stopped") == "interrupted":
        pending = summary["pending"]
        logger.warning(
            f"stopped with {pending} containers pending; run the same command again to resume"
        )
    elif summary.get("failure"):
        logger.warning(f"the run could not finish: {summary['failure']}")
    return 1
