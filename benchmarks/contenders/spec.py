"""What the harness asks one contender run to do, and what comes back.

A ``RunSpec`` crosses a process boundary (the harness runs every contender in
its own worker process, see ``pool``), so it is a pydantic model validated on
arrival; an ``Outcome`` is plain JSON so the harness can store it unchanged.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MARKER = "@@outcome "  # worker -> harness: the outcome file is written
READY = "@@ready"  # worker -> harness: start-up done

Kind = Literal["landmark", "bare", "baseline", "crawlee"]
Mode = Literal["click", "link"]


class RunSpec(BaseModel):
    """One run of one contender against one or more running Gallery sites."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    label: str = Field(description="How tables name this contender, e.g. 'landmark 2x4'.")
    sources: list[str] = Field(min_length=1, description="Gallery URLs (one per site).")
    mode: Mode = "click"
    items: int = Field(ge=1, description="Containers per source: the first `items` positions.")
    positions: list[int] | None = Field(
        default=None, description="Baseline only: exactly these positions instead of the first N."
    )
    actors: int = Field(default=1, ge=1, description="landmark: BrowserActors.")
    pages: int = Field(
        default=4, ge=1, description="Pages per actor (landmark) or in all (others)."
    )
    adaptive_pages: bool = Field(
        default=False,
        description="landmark: pages is the most, and the job's pages_at_start and page "
        "governor decide how many are worked (the default budget); else exactly pages.",
    )
    delay_scale: float = Field(default=1.0, gt=0, description="Baseline: x the seeds' fixed waits.")
    memory_throttle: int | None = Field(default=None, description="landmark: bytes, node memory.")
    memory_shed: int | None = Field(default=None, description="landmark: bytes, node memory.")
    out_dir: str = Field(description="A scratch folder this run may write to.")
    timeout_s: float = Field(default=600.0, gt=0, description="The run is killed after this.")

    @property
    def concurrency(self) -> int:
        """Containers the contender may have open at once."""
        return self.actors * self.pages if self.kind == "landmark" else self.pages


@dataclass(slots=True)
class ItemResult:
    """One container's extraction, in the shape ``benchmarks.scoring.score`` reads."""

    id: str
    fields: dict[str, Any]
    latency_ms: float
    ok: bool = True
    error: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it was made (this process's clock)


@dataclass(slots=True)
class Outcome:
    """A finished run: records and timings, or why there are none (``unavailable``/``error``)."""

    label: str
    kind: str
    records: list[ItemResult] = field(default_factory=list)
    wall_s: float = 0.0  # the job: browser launch to last record (runtime start-up excluded)
    startup_s: float = 0.0  # runtime start-up (Ray init, first import) paid once per worker
    first_record_s: float | None = None  # the job's start (as wall_s) to its first record
    unavailable: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        records = [ItemResult(**record) for record in data.pop("records", [])]
        return cls(records=records, **data)


def first_record_s(records: list[ItemResult], started: float) -> float | None:
    """Seconds from ``started`` (``time.monotonic``, this process) to the first record made."""
    return round(min(r.at for r in records) - started, 3) if records else None
