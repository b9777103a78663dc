"""A contender's own process: reads ``RunSpec`` lines on stdin, answers with outcome files.

Each contender runs in a worker of its own so that its memory is its own
process tree, a crash or hang costs one run rather than the harness, and
per-process start-up (imports, Ray) is paid once per scenario, not per run.
Protocol: one JSON ``RunSpec`` per stdin line; the worker writes the
``Outcome`` as JSON to ``<out_dir>/outcome.json`` and prints
``@@outcome <path>`` on stdout (other libraries may print too; the harness
skips lines without the marker). EOF on stdin ends the worker.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from pathlib import Path

from landmark.benchmarks.contenders.spec import MARKER, READY, Kind, Outcome, RunSpec


def run_one(spec: RunSpec) -> Outcome:
    if spec.kind == "landmark":
        from landmark.benchmarks.contenders.landmark import run_landmark

        return run_landmark(spec)
    if spec.kind == "bare":
        from landmark.benchmarks.contenders.bare import run_bare

        return asyncio.run(run_bare(spec))
    if spec.kind == "baseline":
        from landmark.benchmarks.contenders.baseline import run_baseline

        return asyncio.run(run_baseline(spec))
    from landmark.benchmarks.contenders.peer_crawlee import run_crawlee

    return asyncio.run(run_crawlee(spec))


def _startup(kind: Kind) -> float:
    """Pay the one-off costs before the first run is timed."""
    began = time.monotonic()
    if kind == "landmark":
        from landmark.benchmarks.contenders.landmark import start_ray

        start_ray()
    else:
        import playwright.async_api  # noqa: F401

        if kind == "crawlee":
            from landmark.benchmarks.contenders.peer_crawlee import crawlee_unavailable

            crawlee_unavailable()
    return time.monotonic() - began


def serve(kind: Kind) -> int:
    startup = _startup(kind)
    print(READY, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = RunSpec.model_validate_json(line)
        Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
        try:
            outcome = run_one(spec)
        except Exception as error:
            traceback.print_exc()
            outcome = Outcome(
                label=spec.label,
                kind=spec.kind,
                error=f"{type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}",
            )
        outcome.startup_s, startup = startup, 0.0
        path = Path(spec.out_dir) / "outcome.json"
        path.write_text(json.dumps(outcome.to_json()), encoding="utf-8")
        print(f"{MARKER}{path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))  # type: ignore[arg-type]
