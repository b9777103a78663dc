"""``python -m landmark.benchmarks.dead_domain``: how long a job against a dead host takes to end.

A host that refuses every connection (a loopback port nothing listens on), N item pages
on it (``open: self``), the job's default retries and breaker, real BrowserActors. The
run must end on its own, every container ``failed`` with the reason, and the wall time
printed is what the breaker's give-up rule costs (before the rule, 12 such containers
took 717 s and 300 would have taken about five hours).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from landmark.config.job import JobSpec
from landmark.coordinator.driver import run_job
from landmark.coordinator.store import read_results
from landmark.logs import configure_logging, level_from


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.benchmarks.dead_domain", description=__doc__
    )
    parser.add_argument("--containers", type=int, default=300)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args(argv)
    configure_logging(level_from(0, 0, None))
    host = f"127.0.0.1:{closed_port()}"
    out = Path(tempfile.mkdtemp(prefix="dead-domain-"))
    job = JobSpec.model_validate(
        {
            "name": "dead-domain",
            "sources": {"urls": [f"http://{host}/item/{i}" for i in range(args.containers)]},
            "containers": {"open": "self"},
            "fields": [{"name": "title", "labels": ["Title"]}],
            "budget": {"actors": args.actors},
            "output": {"dir": str(out)},
            "cache": False,
        }
    )
    started = time.monotonic()
    summary = run_job(job, job.source_urls(), out_dir=out, show_progress=False)
    wall = time.monotonic() - started
    records = list(read_results(out / "results.jsonl"))
    statuses = Counter(r["status"] for r in records)
    reasons = Counter(r["errors"][-1]["reason"].split(" (last:")[0][:80] for r in records)
    print(f"dead_domain: {args.containers} containers on {host} (refuses every connection)")
    print(f"  wall {wall:.1f} s (run_job, Ray start included); statuses {dict(statuses)}")
    print(f"  records {len(records)}, retries {summary['retries']}, given up {summary['given_up']}")
    for reason, count in reasons.most_common(3):
        print(f"  {count:4d} × {reason}")
    ok = statuses == Counter({"failed": args.containers})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
