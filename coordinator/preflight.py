"""Checks made before Ray starts (and by ``landmark validate``): a run that cannot write
its output, or that asks for more browsers than the machine can hold, fails in a second
with a sentence, not after a minute of start-up with a traceback.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from landmark.config.job import JobSpec

ACTORS_PER_CPU = 4  # each BrowserActor runs a Chromium; past this they only queue
CPUS_PER_ACTOR = 2  # budget.actors: auto (see actors_for)


class OutputError(ValueError):
    """The output directory cannot be used; the message says why (exit 2)."""


class BudgetError(ValueError):
    """The job asks for more than the machine or cluster can run (exit 2)."""


def check_output(out_dir: Path, names: Iterable[str] = (), *, create: bool = True) -> Path:
    """An absolute, writable output directory, or an OutputError saying what is wrong.

    ``names`` are files the run writes (the results, the summary, the record log, which
    may be in a subfolder such as ``.landmark/``): none may be a folder, nor sit under a
    file; ``create=True`` makes their folders. ``create=False`` (validate) proves the
    folder could be made without leaving it behind.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    for parent in [out_dir, *out_dir.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"output directory {out_dir}: {parent} is a file, not a folder")
    folders = {out_dir}
    for name in names:
        folders.add(_check_file(out_dir, name))
    try:
        if create:
            for folder in sorted(folders):  # the record log may live in .landmark/
                folder.mkdir(parents=True, exist_ok=True)
            probe = out_dir / ".landmark-write-test"
            probe.write_text("ok")
            probe.unlink()
        else:
            nearest = next(p for p in [out_dir, *out_dir.parents] if p.exists())
            os.rmdir(tempfile.mkdtemp(prefix=".landmark-write-test-", dir=nearest))
    except OSError as error:
        raise OutputError(f"output directory {out_dir} is not writable: {error.strerror}") from None
    return out_dir


def _check_file(out_dir: Path, name: str) -> Path:
    """The folder ``name`` goes in, after checking it can be a file there."""
    path = out_dir / name
    if path.is_dir():
        raise OutputError(f"output file {path} is a folder")
    for parent in path.parents:
        if parent == out_dir or out_dir not in parent.parents:
            break
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"output file {path}: {parent} is a file, not a folder")
    return path.parent


def actors_for(node_cpus: Iterable[float]) -> int:
    """``budget.actors: auto``: on each node with a CPU, one BrowserActor per
    :data:`CPUS_PER_ACTOR` of its CPUs, at least one; at least one in all.

    Why two: a BrowserActor keeps far more than its own process busy (its Chromium's
    renderers, browser and GPU processes, Playwright's driver; ``landmark bench profile``
    shows ~36 ms of CPU per container over those processes, 5 ms of it in the actor's
    Python), and on the 2-core machine ``landmark bench scaling`` measured one actor × 4
    pages at 455 containers/min against 370 for two actors × 4 and 198 for four. Counted
    per node because a browser's processes run on its actor's node. Pages per actor then
    come from each node's memory (:mod:`~coordinator.placement`)."""
    per_node = [max(1, int(cpus) // CPUS_PER_ACTOR) for cpus in node_cpus if cpus >= 1]
    return max(1, sum(per_node))


def resolve_actors(job: JobSpec, node_cpus: Iterable[float]) -> JobSpec:
    """``job`` with ``budget.actors`` a number: ``auto`` becomes :func:`actors_for`."""
    if job.budget.actors is not None:  # None: auto
        return job
    budget = job.budget.model_copy(update={"actors": actors_for(node_cpus)})
    return job.model_copy(update={"budget": budget})


def check_actors_fit(actors: int, cpus: float, where: str) -> None:
    """``budget.actors`` bounded by the CPUs that will run them."""
    bound = max(1, int(cpus)) * ACTORS_PER_CPU
    if actors > bound:
        raise BudgetError(
            f"budget.actors is {actors}, more than {ACTORS_PER_CPU} × the {cpus:g} CPUs of "
            f"{where} ({bound}): each BrowserActor runs a Chromium, and more than "
            f"{ACTORS_PER_CPU} per core only queue behind each other. Lower budget.actors "
            "(or --actors), or join a bigger cluster with --address."
        )
