"""Logging for the ``landmark`` command, the Python API and the actors.

Every part logs through Python's ``logging`` under the ``landmark`` logger. The command
sets the level (``-v``/``-q``, ``--log-level``, ``LANDMARK_LOG_LEVEL``), an optional log
file, and colour only on a terminal with ``NO_COLOR`` unset. Actors run in Ray's worker
processes: :func:`configure_worker_logging` gives them the same level (carried to every
node by ``LANDMARK_LOG_LEVEL`` in the job's runtime environment), and Ray routes their
stderr to the driver with the actor's name in front.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

LEVEL_ENV = "LANDMARK_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
ROOT = "landmark"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Ray's own loggers and the libraries under it: their INFO lines are for Ray's developers.
QUIET_LOGGERS = ("ray", "asyncio", "filelock", "urllib3", "aiohttp.access")
_COLOURS = {logging.WARNING: "\033[33m", logging.ERROR: "\033[31m", logging.CRITICAL: "\033[31m"}


class LoggingSetupError(ValueError):
    """A log level we do not know (the message lists the ones we do), or a log file that
    cannot be opened."""


def parse_level(name: str | None, origin: str = "--log-level") -> int:
    """``info``, ``WARNING`` or ``warn`` → the level number; anything else is an error that
    names where the value came from."""
    text = (name or DEFAULT_LEVEL).strip().upper()
    text = {"WARN": "WARNING", "FATAL": "ERROR"}.get(text, text)
    if text not in LEVELS:
        known = ", ".join(LEVELS).lower()
        raise LoggingSetupError(f"{origin}: unknown log level {name!r}: use one of {known}")
    return logging.getLevelName(text)


def level_from(verbose: int, quiet: int, explicit: str | None) -> int:
    """The chosen level: ``--log-level`` (or ``LANDMARK_LOG_LEVEL``), then one step down
    per ``-v`` and one up per ``-q`` (``-v`` shows debug, ``-q`` warnings only)."""
    base = parse_level(explicit) if explicit else parse_level(os.environ.get(LEVEL_ENV), LEVEL_ENV)
    steps = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
    index = steps.index(base) - verbose + quiet
    return steps[max(0, min(len(steps) - 1, index))]


def colour_wanted(stream: TextIO) -> bool:
    """Colour only for a person at a terminal: never in a file or pipe, never with NO_COLOR
    (https://no-color.org: any non-empty value)."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class _ConsoleFormatter(logging.Formatter):
    """``landmark: message`` for information, ``landmark: warning: message`` for trouble;
    the label coloured only when asked."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().removeprefix("landmark: ")
        if record.exc_info and record.levelno >= logging.ERROR:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno < logging.WARNING:
            return f"landmark: {message}"
        label = record.levelname.lower()
        if self.colour:
            label = f"{_COLOURS.get(record.levelno, '')}{label}\033[0m"
        return f"landmark: {label}: {message}"


def configure_logging(
    level: int, log_file: Path | None = None, stream: TextIO | None = None
) -> None:
    """The command's logging: a console handler at ``level`` and, with ``log_file``, a file
    with timestamps at the same level. Sets ``LANDMARK_LOG_LEVEL`` so that actors started
    from here log at the same level; turns Ray's coloured prefixes off when we have no colour."""
    stream = stream or sys.stderr
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(stream)
    console.setFormatter(_ConsoleFormatter(colour_wanted(stream)))
    console.addFilter(lambda record: getattr(record, "console", True))
    root.addHandler(console)
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as error:
            raise LoggingSetupError(f"--log-file {log_file}: {error.strerror or error}") from None
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        root.addHandler(file_handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    os.environ[LEVEL_ENV] = logging.getLevelName(level)
    if not colour_wanted(stream):
        os.environ["RAY_COLOR_PREFIX"] = "0"  # Ray reads it each time it prints a worker line


def log_to_file_only(logger: logging.Logger, level: int, message: str) -> None:
    """A line for the log file that the console has already shown its own way."""
    logger.log(level, message, extra={"console": False})


def configure_worker_logging() -> None:
    """In an actor's process: the ``landmark`` logger at ``LANDMARK_LOG_LEVEL`` to stderr,
    which Ray forwards to the driver (``(BrowserActor pid=…) landmark: …``). Idempotent:
    several actors may share a worker process; outside an actor (a test creating the class
    in-process, a user's program) it leaves logging to its owner."""
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return
    root = logging.getLogger(ROOT)
    try:
        level = parse_level(os.environ.get(LEVEL_ENV))
    except LoggingSetupError:
        level = logging.INFO
    root.setLevel(level)
    if not any(getattr(h, "_landmark", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ConsoleFormatter(colour=False))
        handler._landmark = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False  # Ray may give the worker's root logger a handler of its own
