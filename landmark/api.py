"""The Python API: load or check a job, run it, read what it produced.

It is the CLI's ``validate`` and ``run`` without the terminal: errors are exceptions
(``JobFileError`` for a bad job, ``RunFailedError`` when a run cannot finish), progress
goes to the ``landmark`` logger, and a run returns a :class:`RunResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landmark.config.job import JobSpec
from landmark.config.loading import JobFileError
from landmark.config.loading import load_job as _load_job
from landmark.coordinator.driver import RunFailedError

logger = logging.getLogger("landmark")

JobSource = JobSpec | str | Path | Mapping[str, Any]


def load_job(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> JobSpec:
    """A validated job from a YAML/JSON file or a mapping; ``overrides`` are dotted keys
    (``{"budget.actors": 2}``) applied before validation. Raises :class:`JobFileError`."""
    return _load_job(source, overrides)


def validate(source: JobSource, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """The problems with a job, one line each (``fields[0].lable: unknown key``); an empty
    list when the job can run, output folder included."""
    from landmark.coordinator.preflight import OutputError, check_output

    try:
        job = _as_job(source, overrides)
        check_output(job.output.dir, (job.output.results, job.output.summary), create=False)
    except JobFileError as error:
        return error.problems
    except OutputError as error:
        return [f"output.dir: {error}"]
    return []


@dataclass(frozen=True)
class RunResult:
    """What a run left behind: its summary and its records (read from the results file,
    in the format the job chose: values in a CSV come back as strings)."""

    summary: dict[str, Any]
    results_path: Path

    @property
    def completed(self) -> bool:
        return bool(self.summary.get("completed"))

    def records(self) -> Iterator[dict[str, Any]]:
        from landmark.coordinator.exporters import read_records

        return read_records(self.results_path)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.records()


def run(
    job: JobSource,
    *,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    address: str | None = None,
    store: str | None = None,
    fresh: bool = False,
    progress: bool = False,
) -> RunResult:
    """Run ``job`` to its end and return what it wrote; resumes an unfinished run in the
    same output folder unless ``fresh``. ``address`` joins a Ray cluster (default:
    ``RAY_ADDRESS``, else a local Ray on 127.0.0.1, left running for the next call; a
    process keeps one Ray connection, so another address needs ``ray.shutdown()`` first);
    ``store`` is a ``redis://`` URL."""
    from landmark.coordinator.driver import check_browser, run_job

    _check_connection(address)
    settings = dict(overrides or {})
    if out is not None:
        settings["output.dir"] = str(out)
    spec = _as_job(job, settings)
    check_browser(spec)
    summary = run_job(
        spec,
        spec.source_urls(),
        out_dir=spec.output.dir,
        address=address,
        show_progress=progress,
        store_url=store,
        fresh=fresh,
        say=logger.info,
    )
    return RunResult(summary, Path(summary["out_dir"]) / spec.output.results)


def _check_connection(address: str | None) -> None:
    """An address asked for while this process is already connected to another Ray would be
    ignored (Ray has one connection per process): say so instead."""
    import ray

    if address is None or not ray.is_initialized():
        return
    current = ray.get_runtime_context().gcs_address
    if address.removeprefix("ray://") != current:
        raise RunFailedError(
            f"this process is already connected to Ray at {current}; to run on {address}, "
            "call ray.shutdown() first (or leave address out to use the connection there is)"
        )


def _as_job(source: JobSource, overrides: Mapping[str, Any] | None) -> JobSpec:
    if isinstance(source, JobSpec):
        unread = source.browser.storage_state and source.browser.storage_state_data is None
        if not overrides and not unread:
            return source
        source = source.model_dump(exclude_unset=True)  # validated again, files read again
    return _load_job(source, overrides)
