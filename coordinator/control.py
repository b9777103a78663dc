"""``landmark control ACTION JOB``: pause, resume, cancel or inspect a run from another shell.

The Coordinator of a running job is a named Ray actor (``coordinator:JOB`` in
the ``landmark`` namespace); this joins the same Ray cluster and calls it.
"""

from __future__ import annotations

import argparse
import json

from landmark.coordinator.progress import describe
from landmark.coordinator.ray_setup import NAMESPACE, connect_to_running, coordinator_name

ACTIONS = ("status", "pause", "resume", "cancel")


class NoSuchRunError(LookupError):
    """No running job of that name on the cluster."""


def control(action: str, job_name: str, address: str = "auto") -> dict:
    import ray

    try:
        connect_to_running(address)
    except ConnectionError as error:
        raise NoSuchRunError(f"no Ray cluster at {address!r} ({error})") from None
    try:
        coordinator = ray.get_actor(coordinator_name(job_name), namespace=NAMESPACE)
    except ValueError:
        raise NoSuchRunError(f"no run of job {job_name!r} is going on at {address!r}") from None
    if action != "status":
        ray.get(getattr(coordinator, action).remote())
    return ray.get(coordinator.progress.remote())


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("job", help="the job's name (the 'name' in its job file)")
    parser.add_argument("--address", default="auto", help="the Ray cluster (default: auto)")
    parser.add_argument("--json", action="store_true", help="print the progress as JSON")


def control_command(args: argparse.Namespace) -> int:
    progress = control(args.action, args.job, args.address)
    finished = progress["done"] + progress["failed"]
    if args.json:
        print(json.dumps(progress, indent=2))
    else:
        print(
            f"{args.job}: {args.action} ok — {finished}/{progress['known']} · {describe(progress)}"
        )
    return 0
