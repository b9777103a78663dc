"""Human-friendly units for job files: durations ("500ms", "5s") and sizes ("4GiB", "75%").

Job files are written by people; ``timeout: 5s`` reads better than ``timeout: 5.0``
and is harder to get wrong by a factor of 1000. Every duration is stored as a
``timedelta`` and every size as bytes or a fraction, so code never guesses units.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

MAX_DURATION_S = 366 * 86400  # no setting needs more; timedelta itself ends at 999999999 days
MAX_SIZE = 2**50

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_duration(value: object) -> timedelta:
    """Accept a timedelta, a number of seconds, or a string such as "250ms", "5s", "2m"."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5s or 250ms, not a boolean")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        seconds = float(number) * _DURATION_UNITS[unit]
    if seconds is None or math.isnan(seconds):
        raise ValueError(f"expected a duration such as 5s, 250ms or 2m, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration of at most {MAX_DURATION_S // 86400} days, got {value!r}")
    return timedelta(seconds=seconds)


def parse_size(value: object) -> int:
    """Accept a number of bytes or a string such as "512MiB", "4GB"."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MiB, not a boolean")
    size: float | None = None
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = match.groups()
        size = float(number) * _SIZE_UNITS[unit.lower() if unit else None]
    if size is None:
        raise ValueError(f"expected a size such as 512MiB or 4GB, got {value!r}")
    if size < 0:
        raise ValueError("a size cannot be negative")
    if size > MAX_SIZE:
        raise ValueError(f"a size of at most 1PiB, got {value!r}")
    return int(size)


def _serialize_duration(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_serialize_duration)
]
ByteSize = Annotated[int, BeforeValidator(parse_size)]


class ResourceLimit(BaseModel):
    """A limit given either as a share of the node ("75%") or as an absolute amount ("6GiB").

    A share travels with the job from a laptop to a cluster node; an absolute
    amount suits a shared machine where the job must stay inside a quota.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float | None = None
    absolute: int | None = None

    def resolve(self, total: float) -> float:
        """The limit in the same unit as ``total`` (bytes for memory, percent for CPU)."""
        if self.fraction is not None:
            return total * self.fraction
        assert self.absolute is not None
        return float(self.absolute)

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        return f"{self.absolute} bytes"


def parse_limit(value: object) -> ResourceLimit:
    if isinstance(value, ResourceLimit):
        return value
    if isinstance(value, dict):
        return ResourceLimit(**value)
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1]
        try:
            percent = float(number)
        except ValueError:
            raise ValueError(f"expected a percentage such as 75%, got {value!r}") from None
        if not 0 < percent <= 100:
            raise ValueError(f"a percentage must be in (0, 100], got {value!r}")
        return ResourceLimit(fraction=percent / 100)
    return ResourceLimit(absolute=parse_size(value))


Limit = Annotated[ResourceLimit, BeforeValidator(parse_limit), PlainSerializer(str)]
