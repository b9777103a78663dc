"""The progress bar of a run: done/total, rate, ETA, memory and the load verdict (the worst
node's, and how many nodes are in each state when there are several).

``total`` grows while discovery scrolls, so the bar is honest about what it
knows: "done of known", with the number of sources still being discovered.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


class ProgressView:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressView:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]landmark[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("run", total=None, detail="starting actors")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)

    def update(self, progress: dict[str, Any]) -> None:
        if self._progress is None:
            return
        finished = progress["done"] + progress["failed"]
        self._progress.update(
            self._task,
            completed=finished,
            total=progress["known"] or None,
            detail=describe(progress),
        )


def describe(progress: dict[str, Any]) -> str:
    """``12.3/s ETA 40s · failed 2 · limit 16 · mem 41% ok · discovering 1 · resumed 394``"""
    finished = progress["done"] + progress["failed"]
    remaining = max(0, progress["known"] - finished)
    rate = progress["rate"]
    parts = [f"{rate:.1f}/s"]
    if rate > 0 and remaining:
        parts.append(f"ETA {remaining / rate:.0f}s")
    if progress["failed"]:
        parts.append(f"failed {progress['failed']}")
    parts.append(f"limit {progress['limit']}")
    memory = progress.get("memory_fraction")
    verdict = progress["verdict"]
    parts.append(f"mem {memory * 100:.0f}% {verdict}" if memory is not None else verdict)
    states = node_states(progress.get("nodes") or {})
    if states:
        parts.append(states)
    if progress["discovering"]:
        parts.append(f"discovering {progress['discovering']}")
    for key, label in (("resumed", "resumed"), ("cached", "cached"),
                       ("failed_sources", "sources failed"),
                       ("discovery_cuts", "sources cut short")):  # fmt: skip
        if progress.get(key):
            parts.append(f"{label} {progress[key]}")
    if progress.get("given_up"):
        parts.append("gave up on " + ", ".join(progress["given_up"]))
    for key in ("store", "monitor"):
        if progress.get(key):
            parts.append(str(progress[key]))
    if progress["paused"]:
        parts.append("PAUSED" + (" (store)" if "store" in progress["paused"] else ""))
    return " · ".join(parts)


def node_states(nodes: dict[str, int]) -> str:
    """``2 nodes ok, 1 shed`` (mildest first); empty for one node or none, where the verdict
    beside the memory already says it all."""
    if sum(nodes.values()) <= 1:
        return ""
    counts = [(state, nodes[state]) for state in ("ok", "throttle", "shed") if nodes.get(state)]
    (state, count), rest = counts[0], counts[1:]
    first = f"{count} node{'s' if count != 1 else ''} {state}"
    return ", ".join([first, *(f"{n} {s}" for s, n in rest)])
