"""``python -m landmark.benchmarks.coordinator_bench``: the Coordinator alone, with no-op actors.

Issue 4's figure: containers per second through discovery, dispatch, Ray
calls, the ledger, merge and the JSONL sink, with ``NoopActor``s
(``benchmarks/noop_actor.py``) that answer every batch at once, so nothing
but the coordinator's own work is measured. Printed: containers/s end to end
(``run()`` called → summary back), the coordinator's own wall and rate, and the
time to the first record. ``--profile`` samples the coordinator's process with
py-spy for the whole run and prints where its time goes.

The stand-in gets in through the Coordinator's ``actor_class`` argument.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from shutil import rmtree, which
from typing import Any

import psutil

from landmark.benchmarks.contenders.fields import EXAMPLE_JOB
from landmark.benchmarks.noop_actor import NoopActor
from landmark.config.loading import load_job
from landmark.coordinator.actor import Coordinator
from landmark.coordinator.driver import prepare_store
from landmark.coordinator.store import JobIdentity
from landmark.coordinator.store_config import StoreConfig
from landmark.logs import configure_logging, level_from

SOURCE = "http://127.0.0.1:9/"  # never opened: NoopActor discovers without a browser
POLL_S = 0.005  # progress polling until the first record, then none
TARGET_PER_S = 5_000
RAY_START_ATTEMPTS = 3


class NoopCoordinator(Coordinator):
    """The real Coordinator (given NoopActor as its actor class), which tells its pid."""

    async def pid(self) -> int:
        return os.getpid()


def start_ray(actors: int, attempts: int = RAY_START_ATTEMPTS) -> bool:
    """A local Ray; on a busy machine its 30 s node start-up limit can pass, so try again."""
    import ray

    from landmark.coordinator.ray_setup import init_ray

    for attempt in range(1, attempts + 1):
        try:
            init_ray(None, actors)
            return True
        except Exception as error:  # Ray raises a bare Exception when its node is slow
            ray.shutdown()
            print(f"coordinator_bench: Ray did not start (try {attempt}/{attempts}): {error}")
    return False


UNLIMITED = 100_000  # BudgetSpec's upper bound for these settings


def build_job(args: argparse.Namespace, out_dir: Path):
    overrides = {
        "sources.urls": [SOURCE],
        "containers.limit": args.containers,
        "budget.actors": args.actors,
        "budget.pages_per_actor": args.pages,
        "budget.pages_at_start": args.pages,
        "budget.batch_size": args.batch_size,
        # the most the job allows: nothing but the coordinator limits the rate
        "budget.max_in_flight": UNLIMITED,
        "budget.domain_concurrency": UNLIMITED,
        "budget.domain_rate": UNLIMITED,
        "output.dir": str(out_dir),
        "cache.enabled": not args.no_cache,
    }
    return load_job(EXAMPLE_JOB, overrides)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("coordinator_bench: py-spy not found (.venv/bin/pip install py-spy); no profile")
        return None
    command = [spy, "record", "-p", str(pid), "-o", str(out), "--format", "raw", "-r", "200"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(process: subprocess.Popen[bytes], out: Path, top: int = 20) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not out.exists():
        print("coordinator_bench: py-spy wrote no profile (permissions?)")
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [frame.split(" (")[0] + _where(frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    print(f"\n== py-spy, coordinator process: {total} samples ({out}) ==")
    print("  self time:")
    for frame, samples in own.most_common(top):
        print(f"    {samples / total:6.1%}  {frame}")
    print("  inclusive (project code):")
    project = [(f, s) for f, s in inclusive.most_common() if _is_project(f)]
    for frame, samples in project[:top]:
        print(f"    {samples / total:6.1%}  {frame}")


def _where(frame: str) -> str:
    """' (file:line)' shortened to the file name."""
    if " (" not in frame:
        return ""
    location = frame.split(" (", 1)[1].rstrip(")")
    path, _, _line = location.rpartition(":")
    return f" ({'/'.join(Path(path).parts[-2:])})"


def _is_project(frame: str) -> bool:
    return any(f"({package}/" in frame for package in ("coordinator", "config", "benchmarks"))


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def wait_first_record(coordinator, done, started: float) -> float | None:
    """Seconds from ``started`` until the coordinator reports one record (None: never)."""
    import ray

    while True:
        ready, _ = ray.wait([done], timeout=0)
        progress = ray.get(coordinator.progress.remote())
        if progress["done"] + progress["failed"] > 0:
            return time.monotonic() - started
        if ready:
            return None
        time.sleep(POLL_S)  # the driver's poll; the coordinator itself never sleeps


def run(args: argparse.Namespace) -> int:
    import ray

    out_dir = Path(tempfile.mkdtemp(prefix="coordinator-bench-"))
    job = build_job(args, out_dir)
    began = time.monotonic()
    if not start_ray(args.actors):
        return 1
    ray_s = time.monotonic() - began
    remote = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1000)(NoopCoordinator)
    store = StoreConfig.for_job(job, out_dir, args.store)
    prepare_store(store, JobIdentity.of(job, [SOURCE]), fresh=True, say=print)  # a Redis job too
    coordinator = remote.remote(job, [SOURCE], store, NoopActor)
    pid = ray.get(coordinator.pid.remote())
    profile = out_dir / "coordinator.pyspy.txt" if args.profile else None
    profiler = start_profiler(pid, profile) if profile else None
    process = psutil.Process(pid)
    cpu_before = _cpu_s(process)
    started = time.monotonic()
    done = coordinator.run.remote()
    first_s = wait_first_record(coordinator, done, started)
    summary = ray.get(done)
    wall = time.monotonic() - started
    cpu_s = _cpu_s(process) - cpu_before
    if profiler is not None and profile is not None:
        stop_profiler(profiler, profile)
    ray.kill(coordinator)
    print_figures(args, summary, wall, first_s, ray_s)
    per = cpu_s / max(1, summary["records"])
    print(
        f"  coordinator process CPU: {cpu_s:.2f} s = {per * 1e6:.0f} µs/container"
        f"  →  {1 / per if per else 0:,.0f} containers/s per busy core"
    )
    if not args.keep:
        rmtree(out_dir, ignore_errors=True)
    return 0 if summary["records"] == args.containers else 1


def print_figures(
    args: argparse.Namespace,
    summary: dict[str, Any],
    wall: float,
    first_s: float | None,
    ray_s: float,
) -> None:
    records = summary["records"]
    rate = records / wall if wall else 0.0
    own = summary["wall_s"]
    print(
        f"\ncoordinator_bench: containers={args.containers} actors={args.actors} "
        f"batch_size={args.batch_size} pages={args.pages} cpus={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.1f} (ray start {ray_s:.1f} s, not counted)"
    )
    statuses = {str(status): count for status, count in summary["by_status"].items()}
    print(f"  records {records}  by status {statuses}  store {summary['store']}")
    print(
        f"  end to end (run() → summary): {wall:.2f} s  →  {rate:,.0f} containers/s"
        f"  (target ≥ {TARGET_PER_S:,}/s: {'met' if rate >= TARGET_PER_S else 'NOT met'})"
    )
    print(f"  coordinator's own wall: {own:.2f} s  →  {records / own:,.0f} containers/s")
    first = "none" if first_s is None else f"{first_s * 1000:.0f} ms"
    print(f"  time to first record (run() called → progress shows one): {first}")
    print(
        f"  adaptive limit at the end {summary['adaptive_limit']}, retries {summary['retries']},"
        f" expired leases {summary['expired_leases']}, dup dropped "
        f"{summary['duplicates_dropped']}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.benchmarks.coordinator_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--containers", type=_positive, default=100_000)
    parser.add_argument("--actors", type=_positive, default=2)
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument("--pages", type=_positive, default=4, help="pages_per_actor (slots)")
    parser.add_argument("--profile", action="store_true", help="py-spy the coordinator")
    parser.add_argument("--store", metavar="URL", help="redis://… (default: the local store)")
    parser.add_argument("--no-cache", action="store_true", help="no record cache")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(level_from(0, 0, None))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
