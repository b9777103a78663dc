"""The ``landmark`` command: run, demo, validate, doctor, site, bench.

Exit status: 0 when the command did its job (a run with failed records
included), 1 when it could not finish, 2 for bad input. A user's mistake is
one readable message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from actors.browser import BrowserNotFoundError
from config.loading import JobFileError
from config.settings import SettingsError
from coordinator.driver import RunFailedError

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line or the environment that the user can fix."""


def _cmd_validate(args: argparse.Namespace) -> int:
    from config.loading import load_job

    job = load_job(args.job)
    print(
        f"{args.job}: valid job {job.name!r}: {len(job.sources.urls)} URL(s)"
        f"{' + ' + str(job.sources.file) if job.sources.file else ''}, "
        f"{len(job.fields)} field(s), open={job.containers.open}"
    )
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from coordinator.doctor import doctor

    return doctor(browser=args.browser)


def _cmd_site(args: argparse.Namespace) -> int:
    from benchmarks.site import SiteConfigError, run_site, site_config_from_args

    try:
        config = site_config_from_args(args)
    except SiteConfigError as error:
        raise UsageError(str(error)) from None
    return run_site(config, args.port)


def _cmd_run(args: argparse.Namespace) -> int:
    from coordinator.driver import run_job_command

    return run_job_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from coordinator.demo import run_demo

    return run_demo(args)


def _cmd_control(args: argparse.Namespace) -> int:
    from coordinator.control import NoSuchRunError, control_command

    try:
        return control_command(args)
    except NoSuchRunError as error:
        raise UsageError(str(error)) from None


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.harness import run_bench_command

    return run_bench_command(args)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actors", type=int, help="BrowserActors to start (job: budget.actors)")
    parser.add_argument("--pages", type=int, help="pages per actor (job: budget.pages_per_actor)")
    parser.add_argument("--address", help="a Ray cluster to join, e.g. ray://head:10001 or auto")
    parser.add_argument("--out", type=Path, help="output folder (job: output.dir)")
    parser.add_argument("--max-items", type=int, help="stop after this many containers per source")
    parser.add_argument("--browser", help="a Chromium/Chrome executable (env: LANDMARK_BROWSER)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landmark",
        description="Extract structured metadata from JavaScript-rendered galleries at scale.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a job file")
    run.add_argument("job", type=Path, help="a job file (YAML or JSON)")
    _add_run_options(run)
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser(
        "demo", help="serve the Gallery site, run the example job on it, score the output"
    )
    demo.add_argument("--items", type=int, default=300, help="gallery items (default 300)")
    demo.add_argument("--mode", choices=["click", "link"], default="click", help="open mode")
    demo.add_argument("--latency-ms", type=float, default=0.0, help="site latency (default 0)")
    _add_run_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    from coordinator.control import add_control_arguments

    control = commands.add_parser(
        "control", help="pause, resume, cancel or show a running job (from another shell)"
    )
    add_control_arguments(control)
    control.set_defaults(handler=_cmd_control)

    validate = commands.add_parser("validate", help="check a job file; exit 2 if invalid")
    validate.add_argument("job", type=Path)
    validate.set_defaults(handler=_cmd_validate)

    doctor = commands.add_parser("doctor", help="versions, the browser found, Redis")
    doctor.add_argument("--browser", help="a Chromium/Chrome executable to check")
    doctor.set_defaults(handler=_cmd_doctor)

    from benchmarks.site import add_site_arguments

    site = commands.add_parser("site", help="serve the synthetic Gallery site on 127.0.0.1")
    add_site_arguments(site)
    site.set_defaults(handler=_cmd_site)

    bench = commands.add_parser("bench", help="research load tests (see benchmarks/README.md)")
    from benchmarks.harness import add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (JobFileError, SettingsError, UsageError) as error:
        print(f"landmark: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrowserNotFoundError as error:
        print(f"landmark: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailedError as error:
        print(f"landmark: the run could not finish: {error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("landmark: interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
