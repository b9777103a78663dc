"""``python -m landmark.benchmarks SCENARIO [options]``: the same as ``landmark bench``."""

from __future__ import annotations

import argparse
import sys

from landmark.benchmarks.harness import add_bench_arguments, run_bench_command
from landmark.logs import configure_logging, level_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.benchmarks",
        description="Research load tests against the Gallery site.",
    )
    add_bench_arguments(parser)
    configure_logging(level_from(0, 0, None))  # the runs' messages, as `landmark bench` shows
    return run_bench_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
