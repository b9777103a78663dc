"""The commands this package adds to ``landmark`` (registered in pyproject.toml under the
``landmark.commands`` entry-point group): ``demo``, ``site`` and ``bench``.

Each function adds one subcommand; heavy imports wait until the command runs.
"""

from __future__ import annotations

import argparse

from landmark.coordinator.cli import UsageError, add_run_options


def add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="serve the Gallery site, run the example job on it, score the output"
    )
    demo.add_argument("--items", type=int, default=300, help="gallery items (default 300)")
    demo.add_argument("--mode", choices=["click", "link"], default="click", help="open mode")
    demo.add_argument("--latency-ms", type=float, default=0.0, help="site latency (default 0)")
    demo.add_argument(
        "--panel",
        choices=["div", "dialog"],
        default="div",
        help="the site's detail panel: a div, or a native <dialog> closed in place "
        "(the job then says panel_selector: dialog)",
    )
    add_run_options(demo)
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from landmark.benchmarks.demo import run_demo

    return run_demo(args)


def add_site(commands: argparse._SubParsersAction) -> None:
    from landmark.benchmarks.site.config import add_site_arguments

    site = commands.add_parser("site", help="serve the synthetic Gallery site on 127.0.0.1")
    add_site_arguments(site)
    site.set_defaults(handler=_run_site)


def _run_site(args: argparse.Namespace) -> int:
    from landmark.benchmarks.site import SiteConfigError, run_site, site_config_from_args

    try:
        config = site_config_from_args(args)
    except SiteConfigError as error:
        raise UsageError(str(error)) from None
    return run_site(config, args.port)


def add_bench(commands: argparse._SubParsersAction) -> None:
    from landmark.benchmarks.harness import add_bench_arguments

    bench = commands.add_parser("bench", help="research load tests (see benchmarks/README.md)")
    add_bench_arguments(bench)
    bench.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from landmark.benchmarks.harness import run_bench_command

    return run_bench_command(args)
