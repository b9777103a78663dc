"""``python -m landmark.benchmarks.site``: serve the Gallery site in the foreground."""

from __future__ import annotations

import argparse
import sys

from landmark.benchmarks.site.config import (
    SiteConfigError,
    add_site_arguments,
    site_config_from_args,
)
from landmark.benchmarks.site.runner import run_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.benchmarks.site", description="Serve the synthetic Gallery site."
    )
    add_site_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = site_config_from_args(args)
    except SiteConfigError as error:
        parser.error(str(error))
    return run_site(config, args.port)


if __name__ == "__main__":
    sys.exit(main())
