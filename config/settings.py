"""Settings that differ by machine, not by job: read from ``LANDMARK_*`` environment variables.

A job file travels between a laptop and a cluster; where the browser lives, which Redis
to use or how many browsers this machine can hold does not belong in it. Each field
below is read from ``LANDMARK_<NAME>`` (``LANDMARK_ACTORS=4``) and validated like a job
setting. Precedence, lowest first: the job file, then these variables, then the
command line (``--actors``, ``--set``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "LANDMARK_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    browser: Path | None = Field(default=None, description="A Chromium/Chrome executable to use.")
    redis_url: str | None = Field(
        default=None, description="Redis for the run's state and the record cache (redis://…)."
    )
    headless: bool = Field(default=True, description="0 to watch the browser.")
    log_level: str | None = Field(default=None, description="debug, info, warning or error.")
    actors: int | None = Field(default=None, ge=1, le=1024, description="budget.actors.")
    pages_per_actor: int | None = Field(
        default=None, ge=1, le=64, description="budget.pages_per_actor."
    )
    out: Path | None = Field(default=None, description="output.dir.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings this process's environment gives; an unusable value is a
        :class:`SettingsError` naming the variable."""
        env = os.environ if environ is None else environ
        values = {name: env[variable(name)] for name in cls.model_fields if env.get(variable(name))}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            name = variable(str(first["loc"][0]))
            raise SettingsError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None

    def job_overrides(self) -> dict[str, Any]:
        """The job settings these variables override, as dotted keys."""
        pairs = {
            "budget.actors": self.actors,
            "budget.pages_per_actor": self.pages_per_actor,
            "output.dir": str(self.out) if self.out is not None else None,
            "browser.executable": str(self.browser) if self.browser is not None else None,
            "browser.headless": self.headless if "headless" in self.model_fields_set else None,
        }
        return {key: value for key, value in pairs.items() if value is not None}


def variable(name: str) -> str:
    return f"{PREFIX}{name.upper()}"


class SettingsError(Exception):
    """An environment variable with a value we cannot use."""


def parse_set_options(options: list[str]) -> dict[str, Any]:
    """``--set budget.actors=4`` pairs as dotted overrides. A value is read as YAML, so
    ``4`` is a number, ``false`` a boolean and ``[a, b]`` a list, as in a job file."""
    import yaml

    overrides: dict[str, Any] = {}
    for option in options:
        key, equals, text = option.partition("=")
        key = key.strip()
        if not equals or not key:
            raise SettingsError(f"--set {option!r}: write it as path.to.key=value")
        try:
            overrides[key] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError as error:
            reason = getattr(error, "problem", None) or "not a YAML value"
            raise SettingsError(f"--set {key}: cannot read {text!r}: {reason}") from None
    return overrides
