"""The ``landmark`` command: run, validate, control, doctor, export, serve and the service's
client commands (submit, status, results, pause, resume, cancel) — and the commands that other
packages register (``demo``, ``site`` and ``bench`` come from ``benchmarks``, through the
``landmark.commands`` entry-point group, so the runtime never imports the research harness).

Exit status: 0 when the command did its job (a run with failed records included), 1 when
it could not finish, 2 for bad input, 130 when interrupted. A user's mistake is one
readable message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from landmark.actors.browser import BrowserNotFoundError
from landmark.config.loading import JobFileError
from landmark.config.settings import SettingsError
from landmark.coordinator.driver import RunFailedError
from landmark.coordinator.exporters import ExportError
from landmark.coordinator.preflight import BudgetError, OutputError
from landmark.coordinator.store import JobChangedError, StoreError
from landmark.coordinator.store_config import StoreUrlError
from landmark.logs import (
    LEVEL_ENV,
    LoggingSetupError,
    configure_logging,
    level_from,
    log_to_file_only,
)

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
COMMAND_GROUP = "landmark.commands"


class UsageError(Exception):
    """A mistake in the command line or the environment that the user can fix."""


def _cmd_validate(args: argparse.Namespace) -> int:
    from landmark.config.loading import load_job
    from landmark.coordinator.driver import job_overrides
    from landmark.coordinator.preflight import check_output

    job = load_job(args.job, job_overrides(args))  # LANDMARK_* and --set, as `run` reads them
    check_output(job.output.dir, (job.output.results, job.output.summary), create=False)
    print(
        f"{args.job}: valid job {job.name!r}: {len(job.source_urls())} source URL(s), "
        f"{len(job.fields)} field(s), open={job.containers.open}"
    )
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from landmark.coordinator.doctor import doctor

    return doctor(browser=args.browser, store=args.store, address=args.address)


def _cmd_run(args: argparse.Namespace) -> int:
    from landmark.coordinator.driver import run_job_command

    return run_job_command(args)


def _cmd_control(args: argparse.Namespace) -> int:
    from landmark.coordinator.control import NoSuchRunError, control_command

    try:
        return control_command(args)
    except NoSuchRunError as error:
        raise UsageError(str(error)) from None


def _cmd_export(args: argparse.Namespace) -> int:
    from landmark.coordinator.export_command import export_command

    return export_command(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from landmark.coordinator.api import ServeConfigError, bind_check

    try:
        bind_check(args.host, args.token)
        from landmark.coordinator.serve import serve_command

        return serve_command(args)
    except ServeConfigError as error:
        raise UsageError(str(error)) from None


def _actors_value(text: str) -> int | str:
    """``--actors``: a count, or ``auto`` (one per two CPUs of each node)."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of actors or auto, not {text!r}")
    return int(text)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``landmark serve``: one warm pool of BrowserActors, jobs sent over HTTP."""
    from landmark.coordinator.client import DEFAULT_PORT, TOKEN_ENV

    parser.add_argument("--address", help="a Ray cluster to join, e.g. ray://head:10001 or auto")
    parser.add_argument(
        "--host", default="127.0.0.1", help="where to listen (default 127.0.0.1; any other "
        "address needs --token)"
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"a bearer token every request must carry (env: {TOKEN_ENV})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("runs/service"),
        metavar="DIR",
        help="where jobs' records and state are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--actors", type=_actors_value, metavar="N|auto", help="BrowserActors in the pool"
    )
    parser.add_argument("--pages", type=int, metavar="N", help="pages per actor")
    parser.add_argument(
        "--allow-local-files",
        action="store_true",
        help="let jobs name files on this machine (sources.file, browser.storage_state)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``run`` (and of commands that run a job, such as ``demo``)."""
    parser.add_argument("--actors", type=int, help="BrowserActors to start (job: budget.actors)")
    parser.add_argument(
        "--pages",
        type=int,
        help="most pages per actor (job: budget.pages_per_actor; an actor starts on "
        "budget.pages_at_start, default 4, and adds pages while its node's CPU has room)",
    )
    parser.add_argument("--address", help="a Ray cluster to join, e.g. ray://head:10001 or auto")
    parser.add_argument("--out", type=Path, help="output folder (job: output.dir)")
    parser.add_argument("--max-items", type=int, help="stop after this many containers per source")
    parser.add_argument("--browser", help="a Chromium/Chrome executable (env: LANDMARK_BROWSER)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="redis://… to keep the run's state in Redis (env: LANDMARK_REDIS_URL); "
        "default: under the output folder",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming an unfinished run"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="extract everything, ignoring the record cache"
    )
    add_set_option(parser)


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a job setting, e.g. --set budget.actors=4 --set fields.0.css=.price "
        "(the value is read as YAML; repeatable)",
    )


def add_logging_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-v``/``-q``, ``--log-level`` and ``--log-file``, accepted before the command and
    after it (``landmark -v run job.yaml`` and ``landmark run job.yaml -v``; counts add)."""
    here = "" if top else "_here"
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", dest=f"verbose{here}", action="count", default=0,
        help="more detail: debug messages too",
    )  # fmt: skip
    group.add_argument(
        "-q", "--quiet", dest=f"quiet{here}", action="count", default=0,
        help="no progress bar, warnings and errors only (-qq: errors only)",
    )  # fmt: skip
    group.add_argument(
        "--log-level",
        default=None if top else argparse.SUPPRESS,
        metavar="LEVEL",
        help=f"debug, info, warning or error (env: {LEVEL_ENV}; default: info)",
    )
    group.add_argument(
        "--log-file",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        metavar="PATH",
        help="also write the log, with timestamps, to this file (fatal errors included)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landmark",
        description="Extract structured metadata from JavaScript-rendered galleries at scale.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    add_logging_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a job file (resumes an unfinished run)")
    run.add_argument("job", type=Path, help="a job file (YAML or JSON)")
    add_run_options(run)
    run.set_defaults(handler=_cmd_run)

    from landmark.coordinator.control import add_control_arguments

    control = commands.add_parser(
        "control", help="pause, resume, cancel or show a running job (from another shell)"
    )
    add_control_arguments(control)
    control.set_defaults(handler=_cmd_control)

    validate = commands.add_parser("validate", help="check a job file; exit 2 if invalid")
    validate.add_argument("job", type=Path)
    add_set_option(validate)
    validate.set_defaults(handler=_cmd_validate)

    doctor = commands.add_parser("doctor", help="versions, the browser found, the store")
    doctor.add_argument("--browser", help="a Chromium/Chrome executable to check")
    doctor.add_argument("--store", metavar="URL", help="a redis:// store to check")
    doctor.add_argument(
        "--address", help="check every node of this Ray cluster (e.g. 127.0.0.1:6379 or auto)"
    )
    doctor.set_defaults(handler=_cmd_doctor)

    from landmark.coordinator.export_command import add_export_arguments

    export = commands.add_parser("export", help="a run's records as csv, xlsx or parquet")
    add_export_arguments(export)
    export.set_defaults(handler=_cmd_export)

    serve = commands.add_parser("serve", help="a long-running service: jobs over HTTP, one pool")
    add_serve_arguments(serve)
    serve.set_defaults(handler=_cmd_serve)

    from landmark.coordinator.client_cli import add_client_commands

    add_client_commands(commands)  # submit, status, results, pause, resume, cancel

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(commands)
    for command in commands.choices.values():
        add_logging_options(command)
    return parser


def version_line() -> str:
    """``landmark 0.2.0 (Python 3.11.2, Ray 2.52.0, Playwright 1.55.0)``: for bug reports."""
    from importlib.metadata import PackageNotFoundError, version

    import landmark

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    return (
        f"landmark {landmark.__version__} (Python {python}, Ray {of('ray')}, "
        f"Playwright {of('playwright')})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        verbose = args.verbose + getattr(args, "verbose_here", 0)
        quiet = args.quiet + getattr(args, "quiet_here", 0)
        args.quiet = quiet  # what commands read to hide their progress bar
        configure_logging(level_from(verbose, quiet, args.log_level), args.log_file)
        return handler(args)
    except (
        LoggingSetupError,
        JobFileError,
        SettingsError,
        UsageError,
        BrowserNotFoundError,
        JobChangedError,
        OutputError,
        BudgetError,
        StoreUrlError,
        ExportError,
    ) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except (RunFailedError, StoreError) as error:
        return _fail(f"the run could not finish: {error}", EXIT_INCOMPLETE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, status: int) -> int:
    """The one line a user reads on stderr, also in the log file (``--log-file``)."""
    print(f"landmark: {message}", file=sys.stderr)
    log_to_file_only(logging.getLogger("landmark.cli"), logging.ERROR, message)
    return status


if __name__ == "__main__":
    sys.exit(main())
