"""``landmark submit | status | results | pause | resume | cancel``: a running ``landmark serve``
driven from the shell, through :class:`~landmark.coordinator.client.Client`.

Every command takes ``--server URL`` (``LANDMARK_SERVER``, default http://127.0.0.1:8650)
and ``--token`` (``LANDMARK_TOKEN``). Exit status as the other commands': 0 done, 2 for bad
input (an invalid job, an unknown id, a call the job's state refuses, a wrong token), 1 when
the service cannot be reached or fails, or when a job waited for (``submit --wait``) ends
failed or cancelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from landmark.coordinator.cli import EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_OK
from landmark.coordinator.client import (
    FORMATS,
    SERVER_ENV,
    TOKEN_ENV,
    Client,
    ServiceError,
    ServiceUnreachableError,
)
from landmark.logs import log_to_file_only

Handler = Callable[[Client, argparse.Namespace], int]
ACTIONS = {
    "pause": "pause a job of the service (its pages finish what they hold first)",
    "resume": "resume a paused job of the service",
    "cancel": "cancel a job of the service (its records so far stay)",
}
TABLE = (  # (heading, how to show it) for `landmark status`
    ("ID", lambda job: str(job.get("id"))),
    ("NAME", lambda job: str(job.get("name"))),
    ("STATE", lambda job: str(job.get("state"))),
    ("PRI", lambda job: str(job.get("priority"))),
    ("DONE/KNOWN", lambda job: f"{_finished(job)}/{job.get('known') or 0}"),
    ("FAILED", lambda job: str(job.get("failed") or 0)),
    ("RATE", lambda job: f"{job.get('rate') or 0:.1f}/s"),
    ("ETA", lambda job: _eta(job.get("eta_s")) if job.get("state") == "running" else ""),
    ("VERDICT", lambda job: str(job.get("verdict") or "")),
)


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """The service's commands, each with ``--server`` and ``--token``."""
    submit = commands.add_parser("submit", help="send a job file to a running `landmark serve`")
    submit.add_argument("job", type=Path, help="a job file (YAML or JSON)")
    submit.add_argument("--priority", type=int, default=0, help="0 to 9 (default 0)")
    submit.add_argument(
        "--wait", action="store_true", help="follow the job; exit 0 when it is done"
    )
    submit.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long"
    )
    _common(submit, _submit)

    status = commands.add_parser("status", help="the service's jobs, or one job in detail")
    status.add_argument("id", nargs="?", help="a job's id (default: every job)")
    _common(status, _status)

    results = commands.add_parser("results", help="a service job's records so far")
    results.add_argument("id", help="the job's id")
    results.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="jsonl (default), csv, or xlsx (a finished job; needs --to)",
    )
    results.add_argument(
        "--to", type=Path, metavar="FILE", help="write to FILE (default: standard output)"
    )
    _common(results, _results)

    for action, about in ACTIONS.items():
        parser = commands.add_parser(action, help=about)
        parser.add_argument("id", help="the job's id")
        _common(parser, _action(action))


def _common(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.add_argument(
        "--server", metavar="URL", help=f"the service (env: {SERVER_ENV}; default: "
        "http://127.0.0.1:8650)"
    )  # fmt: skip
    parser.add_argument("--token", help=f"the service's token (env: {TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=lambda args: run_client_command(args, handler))


def run_client_command(args: argparse.Namespace, handler: Handler) -> int:
    """Run ``handler`` with a client; the service's refusals become one line and an exit
    status (the CLI's conventions), never a traceback."""
    try:
        return handler(Client(args.server, args.token), args)
    except ServiceUnreachableError as error:
        return _fail(error.message, EXIT_INCOMPLETE)
    except ServiceError as error:
        message = str(error)
        if error.status == 401:
            message += f" (pass --token or set {TOKEN_ENV})"
        return _fail(message, EXIT_INCOMPLETE if error.status >= 500 else EXIT_BAD_INPUT)
    except TimeoutError as error:
        return _fail(str(error), EXIT_INCOMPLETE)


def _submit(client: Client, args: argparse.Namespace) -> int:
    if not args.job.is_file():
        return _fail(f"{args.job}: no such job file", EXIT_BAD_INPUT)
    if not 0 <= args.priority <= 9:
        return _fail(f"--priority {args.priority}: expected 0 to 9", EXIT_BAD_INPUT)
    status = client.submit(args.job, priority=args.priority)
    job_id = status["id"]
    if args.json and not args.wait:
        _print_json(status)
    else:
        print(
            f"submitted {status.get('name')} as {job_id} (priority {status.get('priority')}, "
            f"{status.get('state')}); follow it: landmark status {job_id}"
        )
    if not args.wait:
        return EXIT_OK
    try:
        final = client.wait(job_id, timeout_s=args.timeout, on_progress=_progress_printer())
    except KeyboardInterrupt:
        print(f"stopped waiting; {job_id} goes on in the service", file=sys.stderr)
        raise
    if args.json:
        _print_json(final)
    else:
        print(f"{job_id}: {final.get('state')} — {_counts(final)}")
    if final.get("state") == "done":
        return EXIT_OK
    reason = f": {final['error']}" if final.get("error") else ""
    return _fail(f"job {job_id} ended {final.get('state')}{reason}", EXIT_INCOMPLETE)


def _progress_printer(every_s: float = 5.0) -> Callable[[dict[str, Any]], None]:
    """A line when the state changes, else at most one every ``every_s`` seconds."""
    last: dict[str, Any] = {"state": None, "at": 0.0}

    def show(status: dict[str, Any]) -> None:
        now = time.monotonic()
        if status.get("state") == last["state"] and now - last["at"] < every_s:
            return
        last.update(state=status.get("state"), at=now)
        rate = status.get("rate") or 0
        eta = _eta(status.get("eta_s"))
        print(
            f"{status.get('id')}: {status.get('state')} {_counts(status)} · {rate:.1f}/s"
            + (f" · ETA {eta}" if eta and status.get("state") == "running" else ""),
            flush=True,
        )

    return show


def _status(client: Client, args: argparse.Namespace) -> int:
    answer = client.status(args.id)
    if args.json:
        _print_json(answer)
    elif args.id is None:
        print(_table(answer) if answer else "no jobs in the service")
    else:
        width = max(len(key) for key in answer)
        for key, value in answer.items():
            print(f"{key:<{width}}  {'' if value is None else value}")
    return EXIT_OK


def _results(client: Client, args: argparse.Namespace) -> int:
    fmt = args.format or _format_of(args.to)
    if args.to is not None:
        path = client.download(args.id, args.to, fmt)
        print(f"{args.id}: {fmt} results written to {path}")
        return EXIT_OK
    if fmt == "xlsx":
        return _fail("xlsx is a binary file: give --to FILE", EXIT_BAD_INPUT)
    out = sys.stdout.buffer
    for chunk in client.chunks(args.id, fmt):
        out.write(chunk)
        out.flush()
    return EXIT_OK


def _format_of(path: Path | None) -> str:
    suffix = path.suffix.lower().lstrip(".") if path is not None else ""
    return suffix if suffix in FORMATS else "jsonl"


def _action(name: str) -> Handler:
    def act(client: Client, args: argparse.Namespace) -> int:
        status = getattr(client, name)(args.id)
        if args.json:
            _print_json(status)
        else:
            print(f"{args.id}: {name} ok — {status.get('state')} · {_counts(status)}")
        return EXIT_OK

    return act


def _table(jobs: list[dict[str, Any]]) -> str:
    rows = [[heading for heading, _ in TABLE]]
    rows += [[show(job) for _, show in TABLE] for job in jobs]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _finished(job: dict[str, Any]) -> int:
    return (job.get("done") or 0) + (job.get("failed") or 0)


def _counts(job: dict[str, Any]) -> str:
    failed = job.get("failed") or 0
    return f"{_finished(job)}/{job.get('known') or 0} records" + (
        f" ({failed} failed)" if failed else ""
    )


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _fail(message: str, status: int) -> int:
    """One line on stderr (and in the log file, with --log-file), as ``cli.main`` does."""
    print(f"landmark: {message}", file=sys.stderr)
    log_to_file_only(logging.getLogger("landmark.cli"), logging.ERROR, message)
    return status
