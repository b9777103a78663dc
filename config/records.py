"""The shapes that travel between the coordinator and the actors: containers in, records out.

These cross Ray's object store thousands of times a second, so they are plain
slotted dataclasses (cheap to pickle) rather than pydantic models; the job spec
at the edge is where validation happens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit


def domain_of(url: str) -> str:
    """The host a URL loads from, lower-cased, with its port: the unit that budgets, breakers,
    learners and caches are keyed by (two sites on one host but different ports are different
    sites; the Gallery site in tests is exactly that).

    Called for every container several times: the URL is cut at its third slash and the
    authority parsed once per distinct authority, not once per URL (every item has its own).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _domain_of_authority(url, "")
    return _domain_of_authority(rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0], scheme)


@lru_cache(maxsize=4096)
def _domain_of_authority(authority: str, scheme: str) -> str:
    parts = urlsplit(f"{scheme}://{authority}/" if scheme else authority)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


# A refusal by the site's own rules (robots.txt): the host answered, so it says nothing
# about the host's health and must not count towards giving the host up.
ROBOTS_REFUSAL = "robots.txt of "


class Status(StrEnum):
    OK = "ok"  # every required field found
    PARTIAL = "partial"  # opened and read, but a required field is missing
    FAILED = "failed"  # could not be opened or read at all


class Phase(StrEnum):
    """Where in a container's life a problem happened."""

    DISCOVER = "discover"
    OPEN = "open"
    WAIT = "wait"
    EXTRACT = "extract"
    DOWNLOAD = "download"
    DISPATCH = "dispatch"  # the coordinator's side: a dead actor, an expired lease, a breaker


@dataclass(slots=True, frozen=True)
class Container:
    """One gallery item: where it lives and how to open it. ``id`` is stable across runs."""

    id: str
    source: str
    position: int
    open: str  # an OpenMode value: "link" | "click" | "self"
    url: str | None = None  # its own page, when it has one

    @property
    def target(self) -> str:
        """The URL whose domain this container loads: its own page, else its gallery."""
        return self.url or self.source

    @classmethod
    def for_page(cls, url: str, position: int, id: str | None = None) -> Container:
        """An item page that is itself one container (``open: self``): its id is the URL's
        (hashed), unless the job's id_pattern took one from it."""
        return cls(id=id or text_hash(url), source=url, position=position, open="self", url=url)


def hosts_of(urls: Iterable[str]) -> set[str]:
    """The host names of ``urls``: what a browser must be allowed to resolve for them."""
    return {host for url in urls if (host := urlsplit(url).hostname)}


def text_hash(text: str) -> str:
    """A short stable id from text, whitespace-insensitive (ids from card text or a URL)."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Problem:
    phase: str
    reason: str
    field: str | None = None


@dataclass(slots=True)
class Record:
    """Exactly one per container: the merged, final word on it."""

    id: str
    source: str
    position: int
    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    attempts: int = 1
    # milliseconds per phase: queued (waiting in the actor for a free page), close, seek and
    # click (in the page), wait (opening to fields read), open (an opening that failed),
    # download, and total (all of it)
    timings: dict[str, float] = field(default_factory=dict)
    strategies: dict[str, str] = field(default_factory=dict)  # field -> strategy that found it
    actor: str | None = None
    download: dict[str, Any] | None = None  # path, bytes, sha256, truncated
    retryable: bool = False  # worth another attempt (timeouts, HTTP 5xx, crashes)
    cached: bool = False  # served from the record cache, not extracted by this run
    blocked: list[str] = field(default_factory=list)  # hosts the page was refused while read

    @classmethod
    def failure(
        cls,
        container: Container,
        phase: str,
        reason: str,
        *,
        retryable: bool = True,
        actor: str | None = None,
    ) -> Record:
        return cls(
            id=container.id,
            source=container.source,
            position=container.position,
            status=Status.FAILED,
            errors=[Problem(phase=phase, reason=reason)],
            actor=actor,
            retryable=retryable,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The results.jsonl line. Built by hand: ``dataclasses.asdict`` deep-copies
        recursively and was a fifth of the coordinator's time per record."""
        return {
            "id": self.id,
            "source": self.source,
            "position": self.position,
            "status": str(self.status),
            "fields": self.fields,
            "errors": [
                {"phase": str(p.phase), "reason": p.reason, "field": p.field} for p in self.errors
            ],
            "attempts": self.attempts,
            "timings": self.timings,
            "strategies": self.strategies,
            "actor": self.actor,
            "download": self.download,
            "cached": self.cached,
            **({"blocked": self.blocked} if self.blocked else {}),
        }

    def to_json_line(self) -> str:
        """The record as one JSON text, made once and shared by the results and the cache."""
        return json.dumps(self.to_json_dict(), ensure_ascii=False, default=str)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Record:
        """A record read back from a results line or the record cache."""
        return cls(
            id=data["id"],
            source=data["source"],
            position=data["position"],
            status=data["status"],
            fields=dict(data.get("fields") or {}),
            errors=[
                Problem(p["phase"], p["reason"], p.get("field")) for p in data.get("errors", [])
            ],
            attempts=data.get("attempts", 1),
            timings=dict(data.get("timings") or {}),
            strategies=dict(data.get("strategies") or {}),
            actor=data.get("actor"),
            download=data.get("download"),
            cached=bool(data.get("cached", False)),
            blocked=list(data.get("blocked") or []),
        )
